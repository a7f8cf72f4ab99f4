// Verify a remediation's trail in the browser: each event's entry hashes to its leaf, its RFC 6962
// inclusion proof (RFC 9162 §2.1.3.2) leads to the root of a signed checkpoint, and the checkpoint's
// Ed25519 signature verifies with the log's key (c2sp.org/signed-note). SHA-256 and Ed25519 come from
// WebCrypto; nothing here trusts the server's word that an event is in the log.
"use strict";

(function () {
  const DASH = "\u2014 ";
  const ENTRY_FIELDS = ["seq", "event_id", "time", "remediation_id", "workflow_id", "run_id", "actor", "kind",
    "target_nodes", "payload"];
  const utf8 = new TextEncoder();

  // ---- JSON that keeps each number's text, so an entry re-serializes to the exact bytes that were hashed.
  class RawNumber { constructor(text) { this.text = text; } }

  function parseJson(text) {
    let i = 0;
    const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    function ws() { while (i < text.length && " \t\n\r".includes(text[i])) i++; }
    function fail(what) { throw new Error("unreadable JSON at " + i + ": " + what); }
    function string() {
      if (text[i] !== '"') fail("expected a string");
      const start = i++;
      while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      if (i >= text.length) fail("unterminated string");
      i++;
      return JSON.parse(text.slice(start, i));
    }
    function value() {
      ws();
      const c = text[i];
      if (c === "{") {
        i++;
        const obj = new Map();
        ws();
        if (text[i] === "}") { i++; return obj; }
        for (;;) {
          ws();
          const key = string();
          ws();
          if (text[i++] !== ":") fail("expected ':'");
          obj.set(key, value());
          ws();
          if (text[i] === ",") { i++; continue; }
          if (text[i++] !== "}") fail("expected '}'");
          return obj;
        }
      }
      if (c === "[") {
        i++;
        const arr = [];
        ws();
        if (text[i] === "]") { i++; return arr; }
        for (;;) {
          arr.push(value());
          ws();
          if (text[i] === ",") { i++; continue; }
          if (text[i++] !== "]") fail("expected ']'");
          return arr;
        }
      }
      if (c === '"') return string();
      for (const [word, v] of [["true", true], ["false", false], ["null", null]]) {
        if (text.startsWith(word, i)) { i += word.length; return v; }
      }
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(text);
      if (!m) fail("unexpected character");
      i = NUMBER.lastIndex;
      return new RawNumber(m[0]);
    }
    const result = value();
    ws();
    if (i !== text.length) fail("trailing data");
    return result;
  }

  // Python's json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False): what the ledger hashes.
  function canonical(v) {
    if (v instanceof RawNumber) return v.text;
    if (v === null) return "null";
    if (v === true) return "true";
    if (v === false) return "false";
    if (typeof v === "string") return JSON.stringify(v);
    if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
    const keys = [...v.keys()].sort();
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(v.get(k))).join(",") + "}";
  }

  function plain(v) {
    if (v instanceof RawNumber) return Number(v.text);
    if (Array.isArray(v)) return v.map(plain);
    if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, plain(x)]));
    return v;
  }

  // ---- bytes
  function hex(bytes) { return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(""); }
  function fromHex(text) {
    if (!/^(?:[0-9a-f]{2})*$/i.test(text)) throw new Error("not hex");
    return Uint8Array.from(text.match(/../g) || [], (h) => parseInt(h, 16));
  }
  function fromB64(text) { return Uint8Array.from(atob(text), (c) => c.charCodeAt(0)); }
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  async function sha256(bytes) { return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)); }
  const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
  const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

  // RFC 9162 §2.1.3.2, with division instead of bit shifts so sizes past 2^31 work too.
  async function rootFromInclusion(leaf, index, size, path) {
    if (!(index >= 0 && index < size)) return null;
    let fn = index, sn = size - 1, r = leaf;
    for (const p of path) {
      if (p.length !== 32 || sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  // ---- signed checkpoints
  function parseCheckpoint(text) {
    const cut = text.indexOf("\n\n");
    if (cut < 0) throw new Error("checkpoint is not a signed note");
    const body = text.slice(0, cut + 1);
    const lines = body.slice(0, -1).split("\n");
    if (lines.length !== 4 || !lines[3].startsWith("time ")) throw new Error("checkpoint has the wrong shape");
    const root = fromB64(lines[2]);
    if (root.length !== 32) throw new Error("checkpoint root is not 32 bytes");
    return { body, origin: lines[0], size: Number(lines[1]), root, signatures: text.slice(cut + 2).split("\n").filter(Boolean) };
  }

  function parseKey(verifierKey) {
    const a = verifierKey.indexOf("+"), b = verifierKey.indexOf("+", a + 1);
    if (a < 0 || b < 0) throw new Error("verifier key is not name+id+key");
    const raw = fromB64(verifierKey.slice(b + 1).trim());
    if (raw.length !== 33 || raw[0] !== 1) throw new Error("verifier key is not an Ed25519 key");
    return { name: verifierKey.slice(0, a), id: verifierKey.slice(a + 1, b).toLowerCase(), pub: raw.slice(1) };
  }

  // true: signature verifies; false: it does not (or none by our key); null: this browser has no Ed25519.
  async function signatureVerifies(checkpoint, key) {
    const id = hex((await sha256(concat(utf8.encode(key.name + "\n"), Uint8Array.of(1), key.pub))).slice(0, 4));
    if (id !== key.id) return false;
    let publicKey;
    try {
      publicKey = await crypto.subtle.importKey("raw", key.pub, { name: "Ed25519" }, false, ["verify"]);
    } catch (err) {
      return null;
    }
    for (const line of checkpoint.signatures) {
      if (!line.startsWith(DASH)) continue;
      const rest = line.slice(DASH.length), space = rest.indexOf(" ");
      if (rest.slice(0, space) !== key.name) continue;
      const sig = fromB64(rest.slice(space + 1));
      if (sig.length !== 68 || hex(sig.slice(0, 4)) !== key.id) continue;
      return crypto.subtle.verify({ name: "Ed25519" }, publicKey, sig.slice(4), utf8.encode(checkpoint.body));
    }
    return false;
  }

  // ---- the page
  class NotYetSigned extends Error {}

  async function getText(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" });
    // 409: the event is newer than the newest signed head; the writers sign the next one soon.
    if (r.status === 409) throw new NotYetSigned("not under a signed head yet");
    if (!r.ok) throw new Error(url + " answered " + r.status);
    return r.text();
  }

  const VERDICTS = { ok: "\u2713 verified", failed: "\u2717 failed", waiting: "\u29d7 not signed yet" };

  function mark(row, verdict, text) {
    const cell = row.querySelector("[data-verdict]");
    cell.textContent = VERDICTS[verdict] + (text ? ": " + text : "");
    cell.className = "verdict " + verdict;
    return verdict;
  }

  async function checkEvent(row, base, key, checked) {
    const proof = parseJson(await getText(base + encodeURIComponent(row.dataset.event)));
    const entry = proof.get("entry");
    const index = Number(proof.get("leaf_index").text), size = Number(proof.get("tree_size").text);
    const checkpointText = proof.get("checkpoint");
    if (!checked.has(checkpointText)) {
      const cp = parseCheckpoint(checkpointText);
      checked.set(checkpointText, { cp, signature: await signatureVerifies(cp, key) });
    }
    const { cp, signature } = checked.get(checkpointText);
    if (signature === false) return mark(row, "failed", "the checkpoint's signature does not verify");
    if (cp.size !== size) return mark(row, "failed", "the proof's tree size is not the checkpoint's");
    const fields = new Map(ENTRY_FIELDS.map((f) => [f, entry.get(f)]));
    if (ENTRY_FIELDS.some((f) => !entry.has(f))) return mark(row, "failed", "the entry lacks fields");
    if (plain(entry.get("seq")) !== index) return mark(row, "failed", "the entry's position is not the proof's");
    const leaf = await leafHash(utf8.encode(canonical(fields)));
    if (hex(leaf) !== entry.get("leaf_hash")) return mark(row, "failed", "the entry does not hash to its leaf");
    const path = proof.get("audit_path").map(fromHex);
    const root = await rootFromInclusion(leaf, index, size, path);
    if (root === null || hex(root) !== hex(cp.root)) return mark(row, "failed", "the audit path does not lead to the signed root");
    return mark(row, "ok", "leaf " + index + " of " + size);
  }

  async function verifyAll(box, button) {
    const summary = document.getElementById("verify-summary");
    const rows = [...document.querySelectorAll("tr[data-event]")];
    if (!window.crypto || !crypto.subtle) {
      summary.textContent = "This browser offers WebCrypto only on https or localhost; use `twinops audit verify` here.";
      return;
    }
    button.disabled = true;
    summary.textContent = "Verifying " + rows.length + " events\u2026";
    rows.forEach((row) => { const c = row.querySelector("[data-verdict]"); c.textContent = "checking\u2026"; c.className = "verdict"; });
    let head, key, headCp, headSignature;
    try {
      head = plain(parseJson(await getText(box.dataset.headUrl)));
      key = parseKey(head.verifier_key);
      headCp = parseCheckpoint(head.checkpoint);
      headSignature = await signatureVerifies(headCp, key);
    } catch (err) {
      summary.textContent = "Could not read the signed head: " + err.message;
      button.disabled = false;
      return;
    }
    const headBox = document.getElementById("verify-head");
    headBox.hidden = false;
    headBox.querySelector("[data-head-size]").textContent = headCp.size + " events, origin " + headCp.origin;
    headBox.querySelector("[data-head-root]").textContent = hex(headCp.root);
    headBox.querySelector("[data-head-key]").textContent = head.verifier_key;
    const rootMatches = !head.root_hash || String(head.root_hash).toLowerCase() === hex(headCp.root);
    headBox.querySelector("[data-head-signature]").textContent =
      headSignature === true ? "\u2713 Ed25519 signature verified in this browser"
        : headSignature === null ? "not checked here (no Ed25519 in this browser's WebCrypto); the server checks it"
          : "\u2717 the signature does not verify";
    const checked = new Map([[head.checkpoint, { cp: headCp, signature: headSignature }]]);
    const count = { ok: 0, failed: 0, waiting: 0 };
    for (const row of rows) {
      let verdict;
      try {
        verdict = headSignature === false || !rootMatches
          ? mark(row, "failed", "the signed head does not verify")
          : await checkEvent(row, box.dataset.proofUrl, key, checked);
      } catch (err) {
        verdict = err instanceof NotYetSigned ? mark(row, "waiting", "the next signed head will cover it")
          : mark(row, "failed", err.message);
      }
      count[verdict]++;
    }
    const n = rows.length;
    if (count.ok === n) summary.textContent = "All " + n + " of " + n + " events verified against the signed head.";
    else if (count.failed) summary.textContent = count.failed + " of " + n + " events failed verification.";
    else summary.textContent = count.ok + " of " + n + " events verified against the signed head; " + count.waiting
      + " newer than it (verify again after the next head).";
    button.disabled = false;
  }

  function start() {
    const box = document.getElementById("verify");
    const button = document.getElementById("verify-button");
    if (box && button) button.addEventListener("click", () => verifyAll(box, button));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
