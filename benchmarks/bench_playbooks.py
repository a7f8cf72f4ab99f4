"""The shipped playbooks over a simulated day: what each changes, what it saves or spends, what it costs in SLO.

Every playbook in `playbooks/` runs on a simulated Tuesday, 24 November 2026 (00:00-24:00 UTC;
Berlin is on CET, UTC+1), at the times its schedule triggers fire (cron in its own time zone:
nightly-rightsize at 02:30 UTC, prescale-daily-peak at 07:30 Berlin = 06:30 UTC, drain-backlog
every 15 minutes). drain-backlog's finding trigger is not simulated: it runs on its schedule only.
A run is what a PlaybookRunWorkflow does, in process (its max_duration never binds here): the
playbook is planned (`agents.playbook.plan_playbook`) on a snapshot of the noisy twin with the
default desires and the demand history (the 7 days before, the same samples as bench_rightsizing's
`prior_history`, and the day itself sampled the same way every 30 s tick, stored as 5-minute
means); each node's proposal goes to the real safety policy as `twinops playbooks dry-run` asks it
(regorus in process, the shipped bundle without its example freeze windows, requester
`playbook:NAME`), with the day's earlier actions as its history.

- The policy auto-approves and every step says `approval: policy`: applied at once (a replica
  added is ready 120 s later, as in bench_rightsizing), then verified as the remediation workflow
  does (first check 60 s after, then every tick until the step's `verify.within`: the plan's goals
  with 0.05 tolerance and the step's `verify.expect`); a failed verification undoes it.
- Anything else the policy allows parks for a human: "unattended" cases never apply it (the figures
  are of the unattended part); "approved at once" cases apply it the moment it parks, as if an SRE
  approved at once (best case: no wait). What the policy denies is counted, never applied.

Baseline: the same estate and day with no playbook and no agent (the replicas as the scenario
leaves them). Counted on a noise-free copy of the estate taking the same actions: replica-hours of
provisioned replicas (pending ones cost from the scale-up) and SLO-violation node-minutes (a 30 s
tick with the node's true p95 over its SLO, the M/M/c p95 at 90% utilization on the shipped
scenario's replicas); "added" are node-ticks over the SLO with the playbook and not in the
baseline, "removed" the reverse.

Days and estates:
- `diurnal_day` as shipped: the standard tier (catalog, search) is sized for the day's peak.
- `diurnal_day`, standard tier oversized: catalog 20, search 12 replicas (sized for a sale with
  room to spare, as in tests/controller/app/test_playbook_dry_run.py): what nightly-rightsize is for.
- `diurnal_day`, standard tier at min_replicas (catalog 3, search 2, as an autoscaler leaves them
  after the night): what prescale-daily-peak is for.
- `backlog_day` (twin/scenarios/backlog_day.yaml): an order pipeline whose queue's consumers run
  at half speed from 10:00 for 90 minutes, building a backlog of ~120,000 items: drain-backlog.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.forecast import DemandRecorder
from agents.playbook import Playbook
from benchmarks._playbook_day import (
    START,
    Approvals,
    Day,
    Estate,
    clock,
    policy_gate,
    prior_demand,
    simulate_day,
    slo_of,
)
from benchmarks.bench_rightsizing import PRIOR_DAYS, READINESS, TICK
from controller.app.playbooks import find_playbook
from twin.scenario import load_scenario

NAME = "playbooks"
ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "twin" / "scenarios"
PLAYBOOKS = ROOT / "playbooks"
DRAIN_THRESHOLD = 100.0
"""drain-backlog's `verify.expect`: the queue is drained when its depth is under this."""


def estate(scenario: str, replicas: dict[str, int] | None = None, note: str = "as shipped") -> Estate:
    """A scenario file re-based to `START`, its nodes re-sized by `replicas`, held to the shipped file's SLOs."""
    shipped = load_scenario(SCENARIOS / f"{scenario}.yaml")
    sized = replicas or {}
    nodes = [n.model_copy(update={"replicas": sized[n.id]}) if n.id in sized else n for n in shipped.nodes]
    name = scenario if not sized else f"{scenario} ({', '.join(f'{k} {v}' for k, v in sized.items())})"
    return Estate(name, scenario, shipped.model_copy(update={"start": START, "nodes": nodes}), slo_of(shipped), note)


ESTATES: dict[str, Estate] = {
    "diurnal": estate("diurnal_day"),
    "oversized": estate(
        "diurnal_day", {"catalog": 20, "search": 12}, "standard tier sized for a sale, with room to spare"
    ),
    "night_sized": estate(
        "diurnal_day", {"catalog": 3, "search": 2}, "standard tier at min_replicas, as an autoscaler leaves it at night"
    ),
    "backlog": estate("backlog_day"),
}


@dataclass(frozen=True)
class Case:
    """One playbook on one estate, unattended or with every parked step approved at once."""

    playbook: str
    estate: str
    approvals: Approvals = "unattended"

    @property
    def key(self) -> str:
        """The case's name in the results."""
        return f"{self.estate}{'' if self.approvals == 'unattended' else '+approved_at_once'}"


CASES = (
    Case("nightly-rightsize", "diurnal"),
    Case("nightly-rightsize", "oversized"),
    Case("prescale-daily-peak", "diurnal"),
    Case("prescale-daily-peak", "night_sized"),
    Case("prescale-daily-peak", "night_sized", "approved_at_once"),
    Case("drain-backlog", "backlog"),
    Case("drain-backlog", "backlog", "approved_at_once"),
)


def _round(x: float) -> float:
    return round(x, 1)


def _queues(base: Day, day: Day) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q, depths in day.queue_depth.items():
        baseline = base.queue_depth[q]
        drained: list[float] = []
        for a in day.applied:
            if a.node != q:
                continue
            # Ticks end at (i + 1) x TICK; the first one after the action with the queue under the threshold.
            after = [i for i, d in enumerate(depths) if (i + 1) * TICK > a.at and d < DRAIN_THRESHOLD]
            drained.append(round(((after[0] + 1) * TICK - a.at) / 60.0, 1) if after else -1.0)

        def minutes_over(series: list[float]) -> float:
            return _round(sum(1 for d in series if d >= DRAIN_THRESHOLD) * TICK / 60.0)

        out[q] = {
            "backlog_peak": {"baseline": round(max(baseline, default=0.0)), "with": round(max(depths, default=0.0))},
            f"minutes_over_{DRAIN_THRESHOLD:.0f}": {"baseline": minutes_over(baseline), "with": minutes_over(depths)},
            f"minutes_to_under_{DRAIN_THRESHOLD:.0f}_after_each_action": drained,
        }
    return out


def compare(case: Case, playbook: Playbook, base: Day, day: Day) -> dict[str, Any]:
    """The figures of one case: what ran, what changed, and the day against its baseline."""
    est = ESTATES[case.estate]
    added = sum(len(day.violations[n] - base.violations[n]) for n in day.violations) * TICK / 60.0
    removed = sum(len(base.violations[n] - day.violations[n]) for n in day.violations) * TICK / 60.0
    rh_base, rh_with = base.replica_hours, day.replica_hours
    per_node = {
        n: {
            "replica_hours": {"baseline": _round(base.node_hours[n]), "with": _round(day.node_hours[n])},
            "slo_violation_minutes": {"baseline": base.violation_minutes(n), "with": day.violation_minutes(n)},
        }
        for n in day.node_hours
        if abs(base.node_hours[n] - day.node_hours[n]) > 1e-9 or base.violations[n] != day.violations[n]
    }
    out: dict[str, Any] = {
        "playbook_version": playbook.version,
        "scenario": est.name,
        "estate": est.note,
        "approvals": case.approvals,
        "runs": [clock(t) for t in day.runs],
        "actions": [a.as_dict() for a in day.applied],
        "parked": day.parked,
        "denied": day.denied,
        "preconditions_unmet": day.unmet,
        "replica_hours": {
            "baseline": _round(rh_base),
            "with": _round(rh_with),
            "delta": _round(rh_with - rh_base),
            "delta_pct": round(100.0 * (rh_with - rh_base) / rh_base, 2) if rh_base else None,
        },
        "slo_violation_node_minutes": {
            "baseline": base.violation_minutes(),
            "with": day.violation_minutes(),
            "added": added,
            "removed": removed,
        },
        "changed_nodes": per_node,
    }
    if day.queue_depth:
        out["queues"] = _queues(base, day)
    return out


async def _simulate(cases: tuple[Case, ...]) -> dict[str, Any]:
    playbooks = {c.playbook: find_playbook(c.playbook, PLAYBOOKS) for c in cases}
    baselines = {e: await simulate_day(ESTATES[e]) for e in dict.fromkeys(c.estate for c in cases)}
    # The days before are offered demand only (replicas do not change it): one store per scenario file.
    histories: dict[str, DemandRecorder] = {}
    out: dict[str, Any] = {}
    async with policy_gate() as gate:
        for case in cases:
            est = ESTATES[case.estate]
            if est.source not in histories:
                histories[est.source] = prior_demand(est.scenario)
            day = await simulate_day(
                est,
                playbooks[case.playbook],
                gate=gate,
                history=copy.deepcopy(histories[est.source]),
                approvals=case.approvals,
            )
            figures = compare(case, playbooks[case.playbook], baselines[case.estate], day)
            out.setdefault(case.playbook, {})[case.key] = figures
    return out


def simulate(cases: tuple[Case, ...] = CASES) -> dict[str, Any]:
    """Every case's figures, by playbook and case key."""
    return asyncio.run(_simulate(cases))


def run() -> dict[str, Any]:
    """Every shipped playbook's cases, with the method's constants."""
    return {
        "day": f"{START:%Y-%m-%d} ({START:%A}), 00:00-24:00 UTC",
        "tick_seconds": TICK,
        "readiness_seconds": READINESS,
        "prior_days": PRIOR_DAYS,
        "policy": "regorus in process, shipped bundle without freeze windows",
        "accounting": "noise-free copy of the estate; the playbook sees the noisy twin",
        "triggers": "schedule triggers only (drain-backlog's finding trigger is not simulated)",
        "unattended": "what needs a human parks and is never applied",
        "approved_at_once": "a human approves each parked proposal the moment it parks",
        "playbooks": simulate(),
    }


LABELS = {
    "diurnal": "diurnal_day as shipped",
    "oversized": "diurnal_day, catalog 20 / search 12 (oversized)",
    "night_sized": "diurnal_day, catalog 3 / search 2 (night-sized)",
    "backlog": "backlog_day (queue backlog from 10:00)",
}


def summarize(result: dict[str, Any]) -> list[str]:
    """Markdown lines for README."""
    lines = [
        "### Shipped playbooks on a simulated day (`benchmarks/bench_playbooks.py`)",
        "",
        f"Each playbook at its cron times over {result['day']}, planned on the noisy twin with "
        f"{result['prior_days']} days of demand history, each proposal put to the real safety policy: what it "
        f"auto-approves runs (replicas ready {result['readiness_seconds']:.0f} s later) and is verified, the rest "
        'parks for a human and is not applied (unattended rows), or is approved the moment it parks ("at once" '
        "rows). Baseline: the same day with no playbook and no agent. Counted on a noise-free copy; added = "
        "node-minutes over the SLO with the playbook and not without.",
        "",
        "| playbook | day and estate | approvals | runs | applied | parked | denied "
        "| replica-hours: baseline -> with (delta) | SLO-violation node-minutes: baseline -> with | added |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for name, cases in result["playbooks"].items():
        for key, c in cases.items():
            estate_key, _, approved = key.partition("+")
            rh, v = c["replica_hours"], c["slo_violation_node_minutes"]
            applied = ", ".join(f"{a['node']} {a['from']}->{a['to']} at {a['at']}" for a in c["actions"]) or "-"
            pct = f", {rh['delta_pct']:+.1f}%" if rh["delta_pct"] else ""
            lines.append(
                f"| {name} v{c['playbook_version']} | {LABELS.get(estate_key, estate_key)} "
                f"| {'approved at once' if approved else 'unattended'} | {len(c['runs'])} | {applied} "
                f"| {len(c['parked'])} | {len(c['denied'])} | {rh['baseline']} -> {rh['with']} ({rh['delta']:+}{pct}) "
                f"| {v['baseline']} -> {v['with']} | {v['added']} |"
            )
            if not c["actions"] and not c["parked"] and c["preconditions_unmet"]:
                nodes = " and ".join(sorted(c["preconditions_unmet"]))
                notes.append(
                    f"{name} on {LABELS.get(estate_key, estate_key)}: its preconditions never hold on {nodes}."
                )
            for q, f in c.get("queues", {}).items():
                drained = f[f"minutes_to_under_{DRAIN_THRESHOLD:.0f}_after_each_action"]
                within = ", ".join(f"{a['verify_within_minutes']:g}" for a in c["actions"] if a["node"] == q)
                if drained:
                    notes.append(
                        f"{name} ({'approved at once' if approved else 'unattended'}): {q}'s backlog (peak "
                        f"{f['backlog_peak']['baseline']:,} items without the playbook) under "
                        f"{DRAIN_THRESHOLD:.0f} {', '.join(f'{m:g}' for m in drained)} min after the action "
                        f"(verify window {within} min); {f['backlog_peak']['with']:,} items at most with it."
                    )
    parked = result["playbooks"].get("prescale-daily-peak", {}).get("night_sized", {}).get("parked", [])
    if parked:
        notes.append(
            "prescale-daily-peak's scale-ups park: the shop has one entry, so every node carries all of its traffic "
            "(blast radius 1.0) and the policy rates any scale-up there high risk (2 approvals); only small "
            "standard-tier scale-downs (nightly-rightsize's) run unattended."
        )
    return lines + (["", *notes] if notes else [])
