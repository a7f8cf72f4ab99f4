"""`twinops demo`: the whole loop, unattended, on the embedded stack.

(a) hidden_downstream: the agent finds the saturated gateway *and* the checkout hidden
    behind it, proposes one plan for both, the policy asks for approval, demo SREs
    approve through the approval service, the steps run, the twin verifies: completed.
(b) bad_release: recommendations runs hot *and* has a bad release; the agent scales it,
    but latency stays above its SLO, verification fails, the compensations roll it back.
Then both decision trails are printed and `twinops audit verify` runs.

With `prometheus=True` (`twinops demo --prometheus`) part (a) runs through real telemetry: the
simulator serves /metrics and signed POST /actions (`SimulatorExporter`), a real Prometheus scrapes
it every second, the twin is read with PromQL over the demo twin model and the approved steps go
back through the webhook actuator: simulator -> scrape -> PromQL -> twin.v1 -> agent -> proposal ->
approval -> webhook -> simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from rich.console import Console
from temporalio.client import Client

from controller.adapters.audit import SqlAuditLedger
from controller.adapters.identity import Identities
from controller.adapters.inbox import SqlApprovalInbox
from controller.adapters.live_twin import live_scenario
from controller.adapters.prometheus_process import (
    PROMETHEUS_BINARY,
    PROMETHEUS_PACKAGE,
    PrometheusServer,
    find_binary,
    prometheus_server,
)
from controller.adapters.sim_exporter import SimulatorExporter
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
from twin.contract import Snapshot
from twin.scenario import load_scenario
from twin.simulator import Simulator
from twin.sources import TwinSource, TwinSourceError
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
DEMO_TWIN_MODEL = REPO_ROOT / "deploy" / "prometheus" / "demo-twin-model.yaml"
SCRAPE_SECONDS = 1
RANGE_SECONDS = 5
"""The demo model's `{{range}}` under a 1 s scrape: five scrapes a rate (the shipped minute is four at the default
15 s), so the twin is readable seconds after the simulator starts."""
PROMETHEUS_SETTLE_SECONDS = 30.0
"""Through Prometheus the gateway's backlog grows while the range fills, and (a) verifies once it has drained."""


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


@dataclass(frozen=True)
class Estate:
    """Where one part's twin is read and its actions land, and the simulator behind both."""

    settings: Settings
    """The demo settings, pointed at this estate's twin source and actuator."""
    simulator: Simulator | None
    """The in-process simulator the twin source and actuator wrap (None: reached over HTTP)."""
    truth: Callable[[], Snapshot]
    """The simulator's own snapshot now, whatever the twin source makes of it."""


@contextlib.asynccontextmanager
async def _estate(console: Console, settings: Settings, part: Part, *, prometheus: bool) -> AsyncIterator[Estate]:
    """Part's scenario started now: read and acted on in process, or through Prometheus and the webhook."""
    start = datetime.now(UTC) - timedelta(seconds=part.warmup_seconds)
    simulator = Simulator(live_scenario(load_scenario(SCENARIOS / part.scenario), start))
    if not prometheus:
        yield Estate(settings, simulator, simulator.snapshot)
        return
    workdir = settings.home / "prometheus"
    # A fresh TSDB: the last run's series (another exporter port, so another instance) would answer
    # a second time for every node for five minutes, and the twin source refuses ambiguous answers.
    shutil.rmtree(workdir / "data", ignore_errors=True)
    secret = secrets.token_urlsafe(32)
    with (
        SimulatorExporter(simulator, secret=secret) as exporter,
        prometheus_server(
            workdir, [exporter.url.removeprefix("http://")], scrape_interval=f"{SCRAPE_SECONDS}s"
        ) as prom,
    ):
        console.print(
            f"through Prometheus [bold]{prom.url}[/]: it scrapes the simulator at {exporter.url}/metrics every "
            f"{SCRAPE_SECONDS}s, the twin is read with PromQL over a {RANGE_SECONDS}s range, the approved steps "
            f"go to the signed webhook {exporter.url}/actions"
        )
        await _fill_range(console, prom)
        yield Estate(
            settings.model_copy(
                update={
                    "twin_source": "prometheus",
                    "prometheus_url": prom.url,
                    "twin_model": _demo_twin_model(workdir),
                    "actuator": "webhook",
                    "actuator_url": f"{exporter.url}/actions",
                    "actuator_secret": SecretStr(secret),
                    "verification_settle_seconds": PROMETHEUS_SETTLE_SECONDS,
                }
            ),
            None,
            exporter.snapshot,
        )
        console.print(
            f"Prometheus answered {_promql_requests(prom)} PromQL requests; the simulator applied "
            f"{sum(exporter.actions.applied.values())} signed action(s) from the webhook actuator"
        )


async def _fill_range(console: Console, prom: PrometheusServer) -> None:
    """Wait until Prometheus holds a whole range of scrapes of the simulator.

    rate() over a range not yet filled reads low (it divides by the whole range): the agent would
    see demand climbing from zero, forecast the climb, and propose a plan the policy refuses.
    """
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not any(s["value"][1] == "1" for s in prom.query("up")):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"Prometheus at {prom.url} did not scrape the simulator within {WAIT_SECONDS:g}s")
        await asyncio.sleep(SCRAPE_SECONDS / 4)
    settle = RANGE_SECONDS + 2 * SCRAPE_SECONDS
    console.print(f"waiting {settle}s for a full {RANGE_SECONDS}s range of scrapes")
    await asyncio.sleep(settle)


def _promql_requests(prom: PrometheusServer) -> int:
    """How many query and query_range requests Prometheus answered (its own /metrics; it does not scrape itself)."""
    families = text_string_to_metric_families(httpx.get(f"{prom.url}/metrics", timeout=10).text)
    return round(
        sum(
            sample.value
            for family in families
            if family.name == "prometheus_http_requests"
            for sample in family.samples
            if sample.name.endswith("_total") and sample.labels.get("handler", "").startswith("/api/v1/query")
        )
    )


def _demo_twin_model(workdir: Path) -> Path:
    """A copy of the demo twin model with `range` set to `RANGE_SECONDS` (the shipped file keeps 1m)."""
    model = yaml.safe_load(DEMO_TWIN_MODEL.read_text())
    model["range"] = f"{RANGE_SECONDS}s"
    path = workdir / DEMO_TWIN_MODEL.name
    path.write_text(yaml.safe_dump(model, sort_keys=False))
    return path


async def _first_snapshot(twin: TwinSource) -> Snapshot:
    """The twin source's first complete snapshot (Prometheus needs two scrapes before it can tell a rate)."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        try:
            snap = await twin.latest()
        except TwinSourceError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        else:
            if not snap.quality or asyncio.get_running_loop().time() > deadline:
                return snap
        await asyncio.sleep(0.5)


async def _run_part(
    console: Console,
    client: Client,
    settings: Settings,
    part: Part,
    tokens: dict[str, str],
    seen: set[str],
    *,
    prometheus: bool = False,
) -> RemediationResult:
    now = datetime.now(UTC)
    console.rule(part.title)
    async with _estate(console, settings, part, prometheus=prometheus) as estate:
        return await _remediate(console, client, estate, part, tokens, seen, since=now)


async def _remediate(
    console: Console,
    client: Client,
    estate: Estate,
    part: Part,
    tokens: dict[str, str],
    seen: set[str],
    *,
    since: datetime,
) -> RemediationResult:
    """Run the part's agent loop until its proposal is approved by the demo SREs and its remediation ends."""
    settings = estate.settings
    services = Services.from_settings(settings, simulator=estate.simulator)
    assert isinstance(services.inbox, SqlApprovalInbox)
    approvals = ApprovalService(
        client, services.inbox, Identities(create_engine(settings.resolved_database_url)), services.signer
    )
    queue = f"demo-{part.scenario.removesuffix('.yaml')}-{since.strftime('%H%M%S')}"
    async with running_worker(client, queue, services, **worker_options(settings)):
        console.print(state_table(await _first_snapshot(services.twin), title="the estate now"))
        loop_id = await start_agent_loop(
            client,
            settings,
            services,
            task_queue=queue,
            twin_id=f"{estate.truth().twin_id}-{part.scenario.removesuffix('.yaml')}",
            tick_seconds=TICK_SECONDS,
            replace_running=True,
        )
        entry = await _wait_entry(services.inbox, since, part.target, seen)
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
        console.print(state_table(estate.truth(), title="the estate after"))
    return result


def _twinops(*args: str) -> int:
    exe = Path(sys.executable).with_name("twinops")
    # The real CLI, as a user would run it; wide enough for the timeline on a captured stdout.
    env = {**os.environ, "COLUMNS": os.environ.get("COLUMNS", "160")}
    return subprocess.run([str(exe), *args], check=False, env=env).returncode


ThenServe = Callable[[Client, Settings, dict[str, str]], Awaitable[None]]
"""What `demo --serve` runs after the demo, with the stack still up: the client, the settings, the demo tokens."""


async def run_demo(
    settings: Settings, console: Console, then: ThenServe | None = None, *, prometheus: bool = False
) -> int:
    """Run both parts (only (a), through Prometheus, if `prometheus`); print the trails; verify the ledger;
    then `then`, if given. Returns the exit code; ConfigurationError before anything starts if Prometheus is missing.
    """
    if prometheus:
        find_binary(PROMETHEUS_BINARY, PROMETHEUS_PACKAGE)
    parts = PARTS[:1] if prometheus else PARTS
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
        for part in parts:
            results.append(await _run_part(console, rt.client, settings, part, tokens, seen, prometheus=prometheus))
        # Sign a head over everything the demo wrote, so the verification below covers every event.
        SqlAuditLedger.from_settings(settings).publish_head()
        console.rule("decision trails")
        for result in results:
            _twinops("audit", "show", result.proposal_id)
        console.rule("twinops audit verify")
        code = _twinops("audit", "verify")
        ok = all(r.stage.value == p.expect for r, p in zip(results, parts, strict=True)) and code == 0
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
