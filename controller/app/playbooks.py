"""Playbook files: find them in the playbooks directory and load each with agents' loader.

The format and its checks belong to `agents.playbook`; this module reads the files. A file's
name is its playbook's name (`nightly-rightsize.yaml` holds `name: nightly-rightsize`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents import load_desires, revise
from agents.forecast import DemandHistory
from agents.playbook import Playbook, PlaybookError, PlaybookPlan, Problem, load_playbook, plan_playbook
from twin.actions import describe
from twinops import TwinopsError
from workflows.policy import PolicyGate, Requester, SafetyDecision, SafetyInput

if TYPE_CHECKING:
    from controller.core.settings import Settings
    from twin.sources import TwinSource

__all__ = [
    "DryRunReport",
    "LoadedPlaybooks",
    "StepVerdict",
    "dry_run",
    "dry_run_async",
    "find_playbook",
    "load_playbook_file",
    "load_playbooks",
    "playbook_files",
    "read_demand_history",
]


def playbook_files(directory: Path) -> list[Path]:
    """Every playbook file in `directory` (`*.yaml`), by name."""
    return sorted(p for p in directory.glob("*.yaml") if p.is_file())


def load_playbook_file(path: Path, shown_as: str | None = None) -> Playbook:
    """Read and load one playbook; `PlaybookError` names the file (as `shown_as`, default the path), line and field."""
    file = shown_as or str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise PlaybookError([Problem(file, None, "", f"cannot read: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise PlaybookError([Problem(file, None, "", f"not UTF-8 text (byte {exc.start})")]) from exc
    return load_playbook(text, file, name=path.stem)


@dataclass(frozen=True)
class LoadedPlaybooks:
    """What loading a set of files gave: the valid playbooks by name, and every problem of the others."""

    playbooks: dict[str, Playbook] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()


def load_playbooks(paths: Iterable[Path], base: Path | None = None) -> LoadedPlaybooks:
    """Load every file, collecting problems rather than stopping at the first; two files may not share a name.

    Files under `base` are named relative to it in problems.
    """
    playbooks: dict[str, Playbook] = {}
    files: dict[str, Path] = {}
    problems: list[Problem] = []
    for path in paths:
        shown = _shown(path, base)
        try:
            playbook = load_playbook_file(path, shown)
        except PlaybookError as exc:
            problems.extend(exc.problems)
            continue
        if playbook.name in playbooks:
            problems.append(
                Problem(shown, None, "name", f"{playbook.name!r} is also {_shown(files[playbook.name], base)}")
            )
            continue
        playbooks[playbook.name] = playbook
        files[playbook.name] = path
    return LoadedPlaybooks(playbooks, files, tuple(problems))


def _shown(path: Path, base: Path | None) -> str:
    if base is not None and path.is_absolute() and path.is_relative_to(base):
        return str(path.relative_to(base))
    return str(path)


# --- dry run ------------------------------------------------------------------------------------------

Verdict = Literal["auto", "queue", "deny", "refused", "skipped"]


class StepVerdict(BaseModel):
    """What one step on one node would do: run at once, wait for approvers, be denied, or nothing (and why)."""

    model_config = ConfigDict(frozen=True)

    node: str
    step: str
    action: str
    """The action in words (`scale catalog -> 7`), or "" when the step takes none."""
    verdict: Verdict
    text: str
    approvals: int = 0
    groups: tuple[str, ...] = ()


class DryRunReport(BaseModel):
    """A dry run of one playbook: what it would do now, and what the safety policy says of it. Changes nothing."""

    model_config = ConfigDict(frozen=True)

    playbook: str
    version: int
    twin_id: str
    twin_source: str
    observed_at: datetime
    history: str
    """Where the demand history came from, or why there is none."""
    plan: PlaybookPlan
    decisions: dict[str, SafetyDecision] = Field(default_factory=dict)
    """The safety policy's answer per proposal id."""
    steps: tuple[StepVerdict, ...] = ()


def find_playbook(name: str, directory: Path) -> Playbook:
    """The playbook `name` in `directory` (`<name>.yaml`); `PlaybookError` when it is missing or invalid."""
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in playbook_files(directory)) or "none"
        raise PlaybookError([Problem(str(path), None, "", f"no playbook {name!r} here (known: {known})")])
    return load_playbook_file(path)


def read_demand_history(settings: Settings, twin_id: str, now: datetime) -> tuple[DemandHistory | None, str]:
    """The twin's stored demand history when a database exists (a dry run never creates one), and where it came from."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from controller.adapters.demand_history import SqlDemandHistory
    from controller.core.db import create_engine

    url = settings.resolved_database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and (
        not parsed.database or parsed.database == ":memory:" or not Path(parsed.database).is_file()
    ):
        return None, "no demand history: no controller database yet (held preconditions cannot be shown to hold)"
    try:
        engine = (
            create_engine(url)
            if parsed.get_backend_name() == "sqlite"
            else create_engine(url, connect_args={"connect_timeout": 5})
        )
        try:
            store = SqlDemandHistory(
                engine,
                bucket_seconds=settings.demand_bucket_seconds,
                retention_seconds=settings.demand_retention_seconds,
            )
            history = store.read_sync(twin_id, now)
        finally:
            engine.dispose()
    except (SQLAlchemyError, TwinopsError, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"no demand history: reading it failed ({reason})"
    return history, f"demand history of {twin_id!r} from the controller database ({len(history)} buckets)"


def _verdicts(plan: PlaybookPlan, decisions: dict[str, SafetyDecision]) -> tuple[StepVerdict, ...]:
    out: list[StepVerdict] = []
    for node in plan.nodes:
        for step in node.steps:
            action = describe(step.action) if step.action is not None else ""
            if step.status != "planned":
                out.append(
                    StepVerdict(node=node.node, step=step.name, action=action, verdict=step.status, text=step.reason)
                )
                continue
            if node.proposal is None:
                out.append(
                    StepVerdict(node=node.node, step=step.name, action=action, verdict="skipped", text=node.reason)
                )
                continue
            d = decisions[node.proposal.id]
            groups = tuple(d.approver_groups)
            if not d.allow:
                reasons = "; ".join(f"{r.code}: {r.msg}" for r in d.deny)
                out.append(
                    StepVerdict(
                        node=node.node,
                        step=step.name,
                        action=action,
                        verdict="deny",
                        text=f"the policy denies: {reasons}",
                    )
                )
            elif d.auto_approve and step.approval == "policy":
                out.append(
                    StepVerdict(
                        node=node.node,
                        step=step.name,
                        action=action,
                        verdict="auto",
                        text="would run at once (policy auto-approves)",
                    )
                )
            else:
                n = max(1, d.required_approvals)
                why = " (approval: always)" if step.approval == "always" and d.auto_approve else ""
                out.append(
                    StepVerdict(
                        node=node.node,
                        step=step.name,
                        action=action,
                        verdict="queue",
                        text=f"would wait in the SRE queue for {n} approval{'s' * (n != 1)} from groups "
                        f"{', '.join(groups) or '-'}{why}",
                        approvals=n,
                        groups=groups,
                    )
                )
    return tuple(out)


async def dry_run_async(
    name: str,
    settings: Settings,
    *,
    twin: TwinSource | None = None,
    gate: PolicyGate | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DryRunReport:
    """Plan playbook `name` on ONE snapshot of the configured twin source and ask the safety policy about it.

    Nothing changes: no actuator, no inbox, no audit event. `twin` and `gate` default to the worker's
    (`make_twin_source`, `make_policy_gate`); preconditions are judged at the snapshot's moment.
    """
    from controller.adapters.policy import make_policy_gate
    from controller.app.worker import make_twin_source
    from workflows.remediation import policy_proposal

    playbook = find_playbook(name, settings.playbooks_dir)
    desires = load_desires(settings.desires_file.read_text(encoding="utf-8") if settings.desires_file else None)
    source = twin if twin is not None else make_twin_source(settings)
    snapshot = await source.latest()
    beliefs = revise(None, snapshot)
    history, where = read_demand_history(settings, snapshot.twin_id, snapshot.observed_at)
    plan = plan_playbook(playbook, beliefs, desires=desires, history=history, now=beliefs.observed_at)
    decisions: dict[str, SafetyDecision] = {}
    own_gate = gate is None
    policy = gate if gate is not None else make_policy_gate(settings)
    try:
        for proposal in plan.proposals:
            now = clock()
            decisions[proposal.id] = await policy.evaluate_safety(
                SafetyInput(
                    proposal=policy_proposal(proposal),
                    snapshot_age_seconds=max(0.0, (now - proposal.observed_at).total_seconds()),
                    now=now,
                    requester=Requester(kind="playbook", id=playbook.name),
                )
            )
    finally:
        close = getattr(policy, "aclose", None)
        if own_gate and close is not None:
            await close()
    return DryRunReport(
        playbook=playbook.name,
        version=playbook.version,
        twin_id=snapshot.twin_id,
        twin_source=settings.twin_source if twin is None else type(twin).__name__,
        observed_at=snapshot.observed_at,
        history=where,
        plan=plan,
        decisions=decisions,
        steps=_verdicts(plan, decisions),
    )


def dry_run(name: str, settings: Settings, **options: Any) -> DryRunReport:
    """`dry_run_async` for synchronous callers (the CLI)."""
    return asyncio.run(dry_run_async(name, settings, **options))
