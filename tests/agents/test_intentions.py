"""Intentions through `decide`: commitment, reconsideration, no duplicates, cool-down, hysteresis."""

from __future__ import annotations

from agents import AgentState, Desires, decide, settle
from tests.agents.conftest import node, snap
from twin.actions import ScaleAction
from twin.contract import Snapshot
from twin.simulator import Simulator


def chain(gw_ext: float, api: int = 4, db: int = 2, at: float = 0.0) -> Snapshot:
    return snap(
        [node("gateway", 4, 500.0, ext=gw_ext, lo=4, hi=4), node("api", api, 250.0), node("db", db, 545.4545)],
        [("gateway", "api", 1.0), ("api", "db", 1.0)],
        at=at,
    )


def test_one_proposal_then_commitment_without_duplicates() -> None:
    desires = Desires()
    first = decide(AgentState(), chain(1200.0), desires)
    assert len(first.proposals) == 1
    (intention,) = first.new_state.intentions
    assert set(intention.nodes) >= {"api", "db"}
    second = decide(first.new_state, chain(1200.0, at=30), desires)
    assert second.proposals == () and second.dropped_intentions == ()
    assert second.new_state.intentions == first.new_state.intentions


def test_achieved_intention_is_dropped_and_cools_down() -> None:
    desires = Desires()
    first = decide(AgentState(), chain(1200.0), desires)
    done = decide(first.new_state, chain(1200.0, api=6, db=3, at=30), desires)
    assert [d.reason for d in done.dropped_intentions] == ["achieved"]
    assert done.new_state.intentions == ()
    assert done.new_state.cooling("api", done.beliefs.observed_at)
    # Load falls right after: no scale-down while api cools down...
    quiet = decide(done.new_state, chain(300.0, api=6, db=3, at=60), desires)
    assert quiet.proposals == ()
    # ...and after the cool-down it scales down to land inside the hysteresis band.
    later = decide(quiet.new_state, chain(300.0, api=6, db=3, at=60 + desires.cooldown_seconds + 1), desires)
    downs = {p.target: p.actions for p in later.proposals if p.intent == "scale_down"}
    assert downs["api"] == (ScaleAction(node="api", replicas=2),)  # 300 / (0.65 x 250) -> 2


def test_intention_dropped_when_finding_clears_on_its_own() -> None:
    first = decide(AgentState(), chain(1200.0), Desires())
    cleared = decide(first.new_state, chain(500.0, at=30), Desires())
    assert [d.reason for d in cleared.dropped_intentions] == ["cleared"]
    assert cleared.new_state.intentions == ()


def test_intention_superseded_when_beliefs_change_enough() -> None:
    first = decide(AgentState(), chain(1200.0), Desires())
    surge = decide(first.new_state, chain(1800.0, at=30), Desires())
    assert [d.reason for d in surge.dropped_intentions] == ["superseded"]
    (proposal,) = surge.proposals
    assert proposal.id != first.proposals[0].id
    assert surge.new_state.intentions[0].id == proposal.id
    # A dip that makes a cheaper plan possible does not replace a plan that still meets every goal.
    wobble = decide(first.new_state, chain(1000.0, at=30), Desires())
    assert wobble.proposals == () and wobble.dropped_intentions == ()


def test_settle_cools_nodes_down() -> None:
    first = decide(AgentState(), chain(1200.0), Desires())
    state = settle(first.new_state, first.proposals[0].id, first.beliefs.observed_at, 300)
    assert state.intentions == () and state.cooling("db", first.beliefs.observed_at)


def test_no_scale_down_while_upstream_is_saturated() -> None:
    s = snap(
        [node("gw", 2, 500.0, ext=1200.0, hi=2, lo=2), node("idle", 20, 500.0)],
        [("gw", "idle", 0.5)],
    )
    decision = decide(AgentState(), s, Desires())
    assert not any(p.intent == "scale_down" for p in decision.proposals)


def test_stale_snapshot_gives_no_proposal() -> None:
    first = decide(AgentState(), chain(500.0), Desires())
    replay = decide(first.new_state, chain(1200.0), Desires())
    assert replay.beliefs.stale and replay.proposals == ()
    committed = decide(AgentState(), chain(1200.0), Desires())
    old = decide(committed.new_state, chain(1800.0), Desires())  # same observed_at: a replay
    assert old.proposals == () and old.dropped_intentions == ()
    assert old.new_state.intentions == committed.new_state.intentions


def test_noisy_load_around_the_threshold_does_not_flap() -> None:
    # 10 x 100 rps at 800 rps: exactly on the 0.8 target, with 5% measurement noise.
    start = snap([node("api", 10, 100.0, ext=800.0, lo=2, hi=40)])
    sim = Simulator.from_snapshot(start, seed=7, noise=0.05)
    state, desires = AgentState(), Desires()
    moves: list[int] = []
    for _ in range(240):  # two hours at 30 s ticks
        sim.run(30, dt=30)
        decision = decide(state, sim.snapshot(), desires)
        state = decision.new_state
        for proposal in decision.proposals:
            for action in proposal.actions:
                sim.apply(action)
                assert isinstance(action, ScaleAction)
                moves.append(action.replicas)
    directions = [b > a for a, b in zip([10, *moves], moves, strict=False)]
    assert len(moves) <= 2, moves
    assert all(directions) or not any(directions), moves  # never up then down (or down then up)


def test_state_round_trips_through_json_and_decisions_are_deterministic() -> None:
    first = decide(AgentState(), chain(1200.0), Desires())
    restored = AgentState.model_validate_json(first.new_state.model_dump_json())
    assert restored == first.new_state
    again = decide(AgentState(), chain(1200.0), Desires())
    assert again.model_dump_json() == first.model_dump_json()
    a = decide(first.new_state, chain(1800.0, at=30), Desires())
    b = decide(restored, chain(1800.0, at=30), Desires())
    assert a.model_dump_json() == b.model_dump_json()
