// twinops pages: live countdowns, the queue's live rows, a proposal's live stage.
// Plain JavaScript, no build step. Every page works without it; this only keeps it current.
"use strict";

(function () {
  const FETCH_HEADER = "X-Twinops-Fetch";
  const QUEUE_EVERY_MS = 5000;
  const STAGE_EVERY_MS = 2500;

  function fetchOptions(accept) {
    return { headers: { [FETCH_HEADER]: "1", Accept: accept }, credentials: "same-origin", cache: "no-store" };
  }

  // The same words as the server's age_words, so a refreshed cell reads like a rendered one.
  function words(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) {
      const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
      return m ? h + " h " + m + " min" : h + " h";
    }
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    return h ? d + " d " + h + " h" : d + " d";
  }

  function tick(root) {
    const now = Date.now();
    for (const el of root.querySelectorAll("time[data-countdown]")) {
      const at = Date.parse(el.getAttribute("datetime"));
      if (Number.isNaN(at)) continue;
      const left = (at - now) / 1000;
      el.textContent = left >= 0 ? "in " + words(left) : "overdue by " + words(-left);
      el.classList.toggle("overdue", left < 0);
    }
    for (const el of root.querySelectorAll("time[data-age]")) {
      const at = Date.parse(el.getAttribute("datetime"));
      if (!Number.isNaN(at)) el.textContent = words((now - at) / 1000);
    }
  }

  function signedOut(where) {
    if (document.getElementById("signed-out")) return;
    const note = document.createElement("div");
    note.id = "signed-out";
    note.className = "banner warn";
    note.setAttribute("role", "alert");
    const link = document.createElement("a");
    link.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    link.textContent = "Sign in again";
    note.append("Your session has ended, so this page no longer updates. ", link, ".");
    where.before(note);
  }

  function liveQueue() {
    const live = document.getElementById("queue-live");
    const body = document.getElementById("queue-rows");
    if (!live || !body) return;
    const url = live.dataset.rowsUrl + location.search;
    const count = live.querySelector("[data-waiting]");
    const updated = live.querySelector("[data-updated]");
    let timer = 0;
    async function refresh() {
      if (document.hidden) return;
      try {
        const r = await fetch(url, fetchOptions("text/html"));
        if (r.status === 401) { clearInterval(timer); signedOut(live); return; }
        if (!r.ok) { updated.textContent = "· could not update (" + r.status + "), retrying"; return; }
        const waiting = r.headers.get("X-Twinops-Waiting") || "0";
        body.innerHTML = await r.text();  // the server's own escaped rendering of the rows
        tick(body);
        if (count.textContent !== waiting) count.textContent = waiting;
        document.title = (waiting !== "0" ? "(" + waiting + ") " : "") + live.dataset.titleSuffix;
        updated.textContent = "· updated " + new Date().toLocaleTimeString();
      } catch (err) {
        updated.textContent = "· offline, retrying";
      }
    }
    timer = setInterval(refresh, QUEUE_EVERY_MS);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
  }

  function liveProposal() {
    const root = document.getElementById("proposal");
    if (!root) return;
    // After a decision the address is the form's action; put the page's own back, so a reload does not post again.
    if (location.pathname !== root.dataset.canonical) history.replaceState(null, "", root.dataset.canonical);
    const outcome = document.getElementById("outcome");
    if (outcome) outcome.focus();
    if (root.dataset.terminal === "true") return;
    const stage = document.getElementById("live-stage");
    const note = document.getElementById("live-note");
    let last = stage.textContent.trim();
    let timer = 0;
    async function refresh() {
      if (document.hidden) return;
      let s;
      try {
        const r = await fetch(root.dataset.liveUrl, fetchOptions("application/json"));
        if (r.status === 401) { clearInterval(timer); signedOut(root); return; }
        if (!r.ok) return;
        s = await r.json();
      } catch (err) {
        return;
      }
      stage.textContent = s.stage_words;
      stage.className = "badge stage stage-" + s.stage;
      const requirement = document.getElementById("live-requirement");
      if (requirement) requirement.textContent = s.requirement;
      const approvals = document.getElementById("live-approvals");
      if (approvals) approvals.textContent = s.approvals.length ? s.approvals.join(", ") : "nobody yet";
      const decide = document.getElementById("decide");
      if (decide) decide.hidden = !s.decidable;
      const cancel = document.getElementById("cancel");
      if (cancel && s.terminal) cancel.hidden = true;
      if (s.stage_words !== last) {
        last = s.stage_words;
        note.textContent = "Stage is now " + s.stage_words + (s.terminal ? " (final)." : ".");
        document.title = document.title.replace(/^[^:]*:/, s.stage_words + ":");
      }
      if (s.terminal) {
        clearInterval(timer);
        root.dataset.terminal = "true";
      }
    }
    timer = setInterval(refresh, STAGE_EVERY_MS);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
  }

  function start() {
    tick(document);
    setInterval(function () { tick(document); }, 15000);
    liveQueue();
    liveProposal();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
