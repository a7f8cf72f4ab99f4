"""The proposal's context: the affected part of the graph and its utilization history, for approvers.

Known answers on small twins: demand through an edge of ratio 0.5 is half, a sample that lacks
an entry's load is a gap (None) at that entry and everything it feeds, never a zero, and a node
more than one edge away from the plan and the findings is left out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from agents import (
    AgentState,
    ContextBuilder,
    Desires,
    FindingKind,
    Proposal,
    ProposalContext,
    decide,
    detect,
    plan,
    proposal_context,
    revise,
)
from agents.beliefs import Beliefs, Sample
from agents.proposal import HISTORY_POINTS, MAX_NEIGHBOURS
from tests.agents.conftest import T0, hidden_downstream, node, snap
from twin.contract import Snapshot

STEP = 60.0


def chain(ext: float | None, at: float) -> Snapshot:
    """a (10 x 100 rps) -> b (2 x 50 rps), ratio 0.5; `ext` is a's external load, None = not reported."""
    a = node("a", 10, 100.0, ext=ext if ext is not None else 0.0)
    if ext is None:
        del a["external_arrival_rate"]
    return snap([a, node("b", 2, 50.0)], [("a", "b", 0.5)], at=at)


def beliefs_of(snapshots: Sequence[Snapshot]) -> Beliefs:
    return revise(None, snapshots[-1], snapshots[:-1])


def propose(beliefs: Beliefs, desires: Desires | None = None) -> Proposal:
    desires = desires or Desires()
    findings = [f for f in detect(beliefs, desires).findings if f.kind is not FindingKind.DATA_QUALITY]
    proposal = plan(beliefs, desires, findings)
    assert proposal is not None and proposal.context is not None
    return proposal


def values(context: ProposalContext, node_id: str) -> list[float | None]:
    return [rho for _, rho in context.history[node_id]]


def test_demand_through_a_ratio_of_half_is_half_of_the_upstream_demand() -> None:
    rates = [100.0, 200.0, 300.0, 300.0]
    proposal = propose(beliefs_of([chain(r, i * STEP) for i, r in enumerate(rates)]))
    context = proposal.context
    assert context is not None
    assert values(context, "a") == pytest.approx([r / 1000.0 for r in rates])
    assert values(context, "b") == pytest.approx([0.5 * r / 100.0 for r in rates])
    assert [t for t, _ in context.history["b"]] == [T0 + timedelta(seconds=i * STEP) for i in range(len(rates))]
    assert [(e.source, e.target, e.ratio) for e in context.edges] == [("a", "b", 0.5)]
    assert context.target_utilization == 0.8
    b = next(n for n in context.nodes if n.id == "b")
    assert (b.replicas, b.constraint, b.hidden) == (2, True, False)
    assert b.demand_utilization == pytest.approx(1.5)


def test_a_sample_without_the_entry_load_is_a_gap_downstream_too_never_a_zero() -> None:
    rates: list[float | None] = [100.0, None, 200.0, 300.0, 300.0, 300.0]
    snapshots = [chain(r, i * STEP) for i, r in enumerate(rates)]
    # c has its own entry load and no edge from a: a's gap is not c's.
    snapshots = [
        s.model_copy(update={"nodes": [*s.nodes, *snap([node("c", 1, 100.0, ext=40.0)]).nodes]}) for s in snapshots
    ]
    history = ContextBuilder(beliefs_of(snapshots)).history()
    assert history["a"][1][1] is None and history["b"][1][1] is None
    assert [rho for _, rho in history["b"]] == pytest.approx([0.5, None, 1.0, 1.5, 1.5, 1.5])
    assert [rho for _, rho in history["c"]] == pytest.approx([0.4] * 6)


def test_only_the_plan_the_findings_and_their_neighbours_are_included() -> None:
    # e -> a -> b -> c -> d: b is saturated, nothing else is near its target; z stands apart.
    s = snap(
        [
            node("e", 10, 100.0, ext=300.0),
            node("a", 10, 100.0),
            node("b", 2, 50.0),
            node("c", 10, 100.0),
            node("d", 10, 100.0),
            node("z", 1, 100.0, ext=10.0),
        ],
        [("e", "a", 1.0), ("a", "b", 0.5), ("b", "c", 1.0), ("c", "d", 1.0)],
    )
    context = propose(revise(None, s)).context
    assert context is not None
    assert [n.id for n in context.nodes] == ["a", "b", "c"]
    assert set(context.history) == {"a", "b", "c"}
    assert [(e.source, e.target) for e in context.edges] == [("a", "b"), ("b", "c")]


def test_hidden_downstream_marks_the_constraint_and_the_hidden_node() -> None:
    context = propose(revise(None, hidden_downstream())).context
    assert context is not None
    flags = {n.id: (n.constraint, n.hidden) for n in context.nodes}
    assert flags == {"gateway": (False, False), "api": (True, False), "db": (False, True)}
    assert {n.id: n.demand_utilization for n in context.nodes}["db"] == pytest.approx(1.1, abs=1e-4)


def test_the_json_form_is_the_approval_api_contract() -> None:
    proposal = propose(beliefs_of([chain(r, i * STEP) for i, r in enumerate([100.0, None, 300.0, 300.0, 300.0])]))
    assert proposal.context is not None
    doc: dict[str, Any] = json.loads(json.dumps(proposal.context.model_dump(mode="json")))
    assert set(doc) == {"nodes", "edges", "history", "target_utilization"}
    assert set(doc["nodes"][0]) == {"id", "kind", "demand_utilization", "replicas", "constraint", "hidden"}
    assert doc["edges"] == [{"source": "a", "target": "b", "ratio": 0.5}]
    first, gap = doc["history"]["b"][0], doc["history"]["b"][1]
    assert first == ["2026-11-21T22:00:00Z", 0.5]
    assert gap == ["2026-11-21T22:01:00Z", None]
    assert ProposalContext.model_validate(doc) == proposal.context


def test_a_proposal_without_context_still_validates() -> None:
    proposal = propose(revise(None, hidden_downstream()))
    old = proposal.model_dump(mode="json", exclude={"context"})
    assert Proposal.model_validate(old).context is None


def test_neighbours_are_capped_most_utilized_first() -> None:
    leaves = [node(f"leaf{i:03d}", 1, 100.0 + i) for i in range(MAX_NEIGHBOURS + 20)]
    s = snap(
        [node("hub", 1, 100.0, ext=150.0), *leaves],
        [("hub", leaf["id"], 0.5) for leaf in leaves],
    )
    context = propose(revise(None, s)).context
    assert context is not None
    shown = [n.id for n in context.nodes if n.id != "hub"]
    assert len(shown) == MAX_NEIGHBOURS
    # A leaf's capacity grows with its number and the hub sends each the same: the lowest numbers are busiest.
    assert shown == [f"leaf{i:03d}" for i in range(MAX_NEIGHBOURS)]
    assert len(context.edges) == MAX_NEIGHBOURS


def test_history_keeps_the_last_points_only() -> None:
    beliefs = revise(None, chain(300.0, 0.0))
    window = tuple(
        Sample(at=T0 + timedelta(seconds=i), external={"a": float(i + 1)}) for i in range(HISTORY_POINTS + 15)
    )
    history = ContextBuilder(beliefs.model_copy(update={"window": window})).history()
    assert len(history["a"]) == HISTORY_POINTS
    at, rho = history["a"][0]
    assert at == T0 + timedelta(seconds=15) and rho == pytest.approx(16 / 1000.0)


def test_every_proposal_of_a_tick_carries_its_context() -> None:
    decision = decide(AgentState(), hidden_downstream(), Desires())
    assert decision.proposals
    for proposal in decision.proposals:
        assert proposal.context is not None
        assert proposal.target in {n.id for n in proposal.context.nodes}


def test_the_function_and_the_shared_builder_agree() -> None:
    beliefs = revise(None, hidden_downstream())
    proposal = propose(beliefs)
    assert proposal_context(beliefs, proposal.findings, proposal.plan, 0.8) == proposal.context
