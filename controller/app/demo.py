"""`twinops demo`: the whole loop, unattended, on the embedded stack.

(a) hidden_downstream: the agent finds the saturated gateway *and* the checkout hidden
    behind it, proposes one plan for both, the policy asks for approval, demo SREs
    approve through the approval service, the steps run, the twin verifies: completed.
(b) bad_release: recommendations runs hot *and* has a bad release; the agent scales it,
    but latency stays above its SLO, verification fails, the compensations roll it back.
Then both decision trails are printed and `twinops audit verify` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from temporalio.client import Client

from controller.adapters.audit import SqlAuditLedger
from controller.adapters.identity import Identities
from controller.adapters.inbox import SqlApprovalInbox
from controller.adapters.live_twin import live_scenario
from controller.adapters.telemetry import configure_logging
from controller.adapters.temporal_server import TemporalRuntime
from controller.app.agent_loop import start_agent_loop, stop_agent_loop
from controller.app.approval_service import ApprovalRefusedError, ApprovalService
from controller.app.twin_table import state_table
from controller.app.worker import Services, running_worker, worker_options
from controller.core.db import create_engine, migrate
from controller.core.errors import ConflictError
from controller.core.settings import REPO_ROOT, Settings
from twin.actions import describe
from twin.scenario import load_scenario
from twin.simulator import Simulator
from workflows import RemediationResult, RemediationState
from workflows.ports import InboxEntry

SCENARIOS = REPO_ROOT / "twin" / "scenarios"
DEMO_DESIRES = Path(__file__).with_name("demo_desires.yaml")
DEMO_SRES = (("dana", "edge"), ("sam", "payments"), ("pat", "personalization"), ("lee", "web"))
TICK_SECONDS = 2.0
VERIFICATION_WINDOW_SECONDS = 2.0
VERIFICATION_SETTLE_SECONDS = 10.0
"""The goals are polled this long after the window: (a) verifies once the released backlog drains,
(b) never meets its SLO and rolls back when this ends."""
WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Part:
    """One scripted scenario of the demo."""

    title: str
    scenario: str
    warmup_seconds: float
    """Simulated time before now, so faults scheduled early in the scenario have happened."""
    target: str
    expect: str


PARTS = (
    Part("(a) a saturated gateway hides a saturated checkout", "hidden_downstream.yaml", 0.0, "gateway", "completed"),
    Part("(b) a bad release that capacity cannot fix", "bad_release.yaml", 330.0, "recommendations", "rolled_back"),
)


async def _wait_entry(inbox: SqlApprovalInbox, since: datetime, target: str, seen: set[str]) -> InboxEntry:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        for entry in await inbox.alist(include_closed=True):
            if entry.proposal_id not in seen and entry.created_at >= since and entry.target == target:
                return entry
        await asyncio.sleep(0.5)
    raise TimeoutError(f"no proposal for {target!r} reached the inbox within {WAIT_SECONDS:g}s")


async def _settled_state(approvals: ApprovalService, token: str, proposal_id: str) -> RemediationState:
    """The proposal's state once the policy has answered (pending approval or further)."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        state = await approvals.state(token, proposal_id)
        if state.stage.value not in ("proposed", "evaluating") or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.2)


async def _approve_until_quorum(
    console: Console, approvals: ApprovalService, tokens: dict[str, str], entry: InboxEntry
) -> None:
    for name, token in tokens.items():
        state = await approvals.state(token, entry.proposal_id)
        if state.stage.value not in ("awaiting_approval", "escalated"):
            console.print(f"  no approval needed now (stage {state.stage.value})")
            return
        try:
            result = await approvals.approve(token, entry.proposal_id, comment="demo: looks right")
        except ApprovalRefusedError as exc:
            console.print(f"  approval by [bold]{name}[/] refused: {exc}")
            continue
        verdict = "counted" if result.counted else "not counted: " + "; ".join(result.reasons)
        console.print(f"  approval by [bold]{name}[/]: {verdict}")
        if result.quorum_met:
            console.print("  quorum met: execution starts")
            return


async def _run_part(
    console: Console, client: Client, settings: Settings, part: Part, tokens: dict[str, str], seen: set[str]
) -> RemediationResult:
    now = datetime.now(UTC)
    simulator = Simulator(
        live_scenario(load_scenario(SCENARIOS / part.scenario), now - timedelta(seconds=part.warmup_seconds))
    )
    services = Services.from_settings(settings, simulator=simulator)
    assert isinstance(services.inbox, SqlApprovalInbox)
    approvals = ApprovalService(
        client, services.inbox, Identities(create_engine(settings.resolved_database_url)), services.signer
    )
    queue = f"demo-{part.scenario.removesuffix('.yaml')}-{now.strftime('%H%M%S')}"
    console.rule(part.title)
    async with running_worker(client, queue, services, **worker_options(settings)):
        await services.twin.latest()
        console.print(state_table(simulator.snapshot(), title="the estate now"))
        loop_id = await start_agent_loop(
            client,
            settings,
            services,
            task_queue=queue,
            twin_id=f"{simulator.snapshot().twin_id}-{part.scenario.removesuffix('.yaml')}",
            tick_seconds=TICK_SECONDS,
            replace_running=True,
        )
        entry = await _wait_entry(services.inbox, now, part.target, seen)
        seen.add(entry.proposal_id)
        handle = client.get_workflow_handle(entry.workflow_id, result_type=RemediationResult)
        viewer = next(iter(tokens.values()))
        state = await _settled_state(approvals, viewer, entry.proposal_id)
        console.print(f"proposal [bold]{entry.proposal_id}[/] for [bold]{entry.target}[/]")
        console.print(f"  {entry.summary}")
        console.print(
            f"  policy: risk {state.risk}, {state.required_approvals} approval(s) required"
            + (f"; reasons: {'; '.join(state.reasons)}" if state.reasons else "")
        )
        await _approve_until_quorum(console, approvals, tokens, entry)
        result: RemediationResult = await asyncio.wait_for(handle.result(), timeout=WAIT_SECONDS)
        # Cancelled *and ended* while its worker runs: a loop left running here would be adopted by the
        # next demo, on a task queue nobody serves any more.
        await stop_agent_loop(client, loop_id)
        with_status = "green" if result.stage.value == part.expect else "red"
        console.print(
            f"outcome: [{with_status}]{result.stage.value}[/] (expected {part.expect}); "
            f"plan: {'; '.join(describe(a) for a in result.actions)}"
        )
        for reason in result.reasons:
            console.print(f"  - {reason}")
        console.print(state_table(simulator.snapshot(), title="the estate after"))
    return result


def _twinops(*args: str) -> int:
    exe = Path(sys.executable).with_name("twinops")
    # The real CLI, as a user would run it; wide enough for the timeline on a captured stdout.
    env = {**os.environ, "COLUMNS": os.environ.get("COLUMNS", "160")}
    return subprocess.run([str(exe), *args], check=False, env=env).returncode


ThenServe = Callable[[Client, Settings, dict[str, str]], Awaitable[None]]
"""What `demo --serve` runs after the demo, with the stack still up: the client, the settings, the demo tokens."""


async def run_demo(settings: Settings, console: Console, then: ThenServe | None = None) -> int:
    """Run both parts; print the trails; verify the ledger; then `then`, if given. Returns the exit code."""
    if not console.is_terminal:
        console.width = max(console.width, 140)
    # The demo narrates; the structured logs would drown it (TWINOPS_LOG_LEVEL=INFO shows them anyway).
    if "log_level" not in settings.model_fields_set:
        configure_logging(settings.model_copy(update={"log_level": "ERROR"}))
    if settings.desires_file is None:
        settings = settings.model_copy(update={"desires_file": DEMO_DESIRES})
    settings = settings.model_copy(
        update={
            "verification_window_seconds": VERIFICATION_WINDOW_SECONDS,
            "verification_settle_seconds": VERIFICATION_SETTLE_SECONDS,
            "approval_timeout_seconds": 300.0,
        }
    )
    engine = create_engine(settings.resolved_database_url)
    migrate(engine)
    identities = Identities(engine)
    tokens: dict[str, str] = {}
    for name, team in DEMO_SRES:
        try:
            tokens[name] = identities.add_user(f"demo-{name}", "approver", team, groups=["sre"])
        except ConflictError:
            tokens[name] = identities.issue_token(f"demo-{name}")
    results: list[RemediationResult] = []
    async with TemporalRuntime(settings) as rt:
        assert rt.info is not None
        rt.publish()
        console.print(f"Temporal UI: [bold]{rt.info.ui_url or 'disabled'}[/]  (frontend {rt.info.address})")
        seen: set[str] = set()
        for part in PARTS:
            results.append(await _run_part(console, rt.client, settings, part, tokens, seen))
        # Sign a head over everything the demo wrote, so the verification below covers every event.
        SqlAuditLedger.from_settings(settings).publish_head()
        console.rule("decision trails")
        for result in results:
            _twinops("audit", "show", result.proposal_id)
        console.rule("twinops audit verify")
        code = _twinops("audit", "verify")
        ok = all(r.stage.value == p.expect for r, p in zip(results, PARTS, strict=True)) and code == 0
        console.print("[green]demo finished as expected[/]" if ok else "[red]demo did not finish as expected[/]")
        if ok and then is not None:
            await then(rt.client, settings, tokens)
    return 0 if ok else 1


@contextlib.asynccontextmanager
async def parked_proposal(console: Console, client: Client, settings: Settings) -> AsyncIterator[InboxEntry]:
    """A fresh hidden_downstream estate with its worker and agent loop running and one proposal awaiting approval.

    Used by `twinops demo --serve`: the proposal waits an hour for a human in the browser; the
    loop and worker keep running (approved, it executes and verifies) until the block ends.
    """
    settings = settings.model_copy(update={"approval_timeout_seconds": 3600.0, "approval_expiry_seconds": 3600.0})
    now = datetime.now(UTC)
    simulator = Simulator(live_scenario(load_scenario(SCENARIOS / "hidden_downstream.yaml"), now))
    services = Services.from_settings(settings, simulator=simulator)
    assert isinstance(services.inbox, SqlApprovalInbox)
    queue = f"demo-serve-{now.strftime('%H%M%S')}"
    console.rule("one proposal left for you")
    async with running_worker(client, queue, services, **worker_options(settings)):
        await services.twin.latest()
        loop_id = await start_agent_loop(
            client,
            settings,
            services,
            task_queue=queue,
            twin_id=f"{simulator.snapshot().twin_id}-serve",
            tick_seconds=TICK_SECONDS,
            replace_running=True,
        )
        try:
            # The same estate and plan as part (a): the same proposal id, under a new workflow run (created now).
            entry = await _wait_entry(services.inbox, now, "gateway", set())
            deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
            while entry.status.value not in ("pending", "escalated") and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.3)
                entry = await services.inbox.aget(entry.proposal_id)
            console.print(f"proposal [bold]{entry.proposal_id}[/] for [bold]{entry.target}[/]: {entry.status.value}")
            console.print(f"  {entry.summary}")
            yield entry
        finally:
            await stop_agent_loop(client, loop_id)
