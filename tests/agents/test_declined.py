"""A person's "no" holds: rejected and cancelled plans are not proposed again at once (issue 10, item 2).

Through `agents.decide` on the hidden_downstream scenario: the saturated gateway (150% of
capacity) hides a saturated checkout; the plan scales both. A person rejects it.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import twin
from agents import AgentState, Decision, Desires, Proposal, decide, decline, load_desires, settle
from tests.agents.conftest import node, snap
from twin.contract import Snapshot
from twin.scenario import Scenario, StepLoad, load_scenario
from twin.simulator import Simulator

SCENARIO = Path(twin.__file__).parent / "scenarios" / "hidden_downstream.yaml"
TICK = 15.0


def shop(extra_gateway_rps: float = 0.0, at: float = 600.0) -> Scenario:
    """hidden_downstream, with `extra_gateway_rps` more load on the gateway from `at` seconds on."""
    scenario = load_scenario(SCENARIO)
    if not extra_gateway_rps:
        return scenario
    load = {**scenario.load, "gateway": [*scenario.load["gateway"], StepLoad(at=at, to=extra_gateway_rps)]}
    return scenario.model_copy(update={"load": load})


class Loop:
    """The agent loop in miniature: a simulated twin, one `decide` per tick, the state carried."""

    def __init__(self, scenario: Scenario, desires: Desires | None = None) -> None:
        self.sim = Simulator(scenario, seed=2)
        self.desires = desires or Desires()
        self.state = AgentState()
        self.sim.run(60, dt=5)

    def tick(self, seconds: float = TICK) -> Decision:
        self.sim.run(seconds, dt=5)
        decision = decide(self.state, self.sim.snapshot(), self.desires)
        self.state = decision.new_state
        return decision

    def reject(self, proposal: Proposal, *, after: float = 2.0, **kw: Any) -> None:
        """A person rejects `proposal` `after` seconds past its observation (what the loop does on REJECTED)."""
        fields: dict[str, Any] = {"outcome": "rejected", "by": "alice", "reason": "not during the sale", **kw}
        self.state = decline(
            self.state,
            node=proposal.target,
            plan_hash=proposal.plan_hash,
            at=proposal.observed_at + timedelta(seconds=after),
            **fields,
        )


def first_proposal(loop: Loop) -> Proposal:
    decision = decide(loop.state, loop.sim.snapshot(), loop.desires)
    loop.state = decision.new_state
    (proposal,) = decision.proposals
    assert proposal.target == "gateway"
    return proposal


def test_without_a_decline_the_agent_asks_again_right_away() -> None:
    """The bug: settling a rejected remediation frees the node and the same plan comes back next tick."""
    loop = Loop(shop())
    proposal = first_proposal(loop)
    loop.state = settle(loop.state, proposal.id, proposal.observed_at, loop.desires.cooldown_seconds)
    again = loop.tick()
    assert [p.plan_hash for p in again.proposals] == [proposal.plan_hash]  # saturation overrides the cool-down


def test_rejected_plan_is_not_proposed_again_within_the_period_and_the_decision_says_so() -> None:
    loop = Loop(shop())
    proposal = first_proposal(loop)
    loop.reject(proposal)
    assert loop.state.intentions == ()  # decline drops the intention it answers
    (declined,) = loop.state.declined
    assert (declined.node, declined.plan_hash, declined.demand_utilization) == ("gateway", proposal.plan_hash, 1.5)
    until = proposal.observed_at + timedelta(seconds=2 + 3600)
    for _ in range(int(3500 // TICK)):  # every tick of the next 58 minutes
        decision = loop.tick()
        assert decision.proposals == ()
        (held,) = decision.suppressed
        assert held.node == "gateway" and held.plan_hash == proposal.plan_hash
        assert (held.outcome, held.by, held.reason, held.until) == ("rejected", "alice", "not during the sale", until)
        assert held.demand_utilization_then == 1.5
        assert "rejected by alice" in held.detail and "not during the sale" in held.detail
    assert loop.state.declined == (declined,)  # carried across ticks (and continue-as-new)


def test_rejected_plan_comes_back_after_the_period_and_says_why() -> None:
    loop = Loop(shop())
    proposal = first_proposal(loop)
    loop.reject(proposal)
    ticks = [loop.tick() for _ in range(int(3630 // TICK))]
    back = [(i, p) for i, d in enumerate(ticks) for p in d.proposals]
    assert len(back) == 1, [p.rationale for _, p in back]
    i, again = back[0]
    assert (i + 1) * TICK >= 3600 - 2  # not before the period ended (the decline came 2 s after the snapshot)
    assert again.plan_hash == proposal.plan_hash and again.id == proposal.id
    assert again.rationale.startswith(
        "Proposing again: rejected by alice 1 h ago ('not during the sale'); the 1 h suppression period ended. "
    )
    assert again.rationale.endswith(proposal.rationale)
    assert ticks[i].suppressed == ()
    assert loop.state.declined == ()  # answered by the re-proposal: a new no needs a new decline
    assert [i.id for i in loop.state.intentions] == [proposal.id]


def test_materially_worse_situation_is_proposed_again_early_and_says_why() -> None:
    loop = Loop(shop(extra_gateway_rps=300.0, at=600.0))  # gateway 1200 -> 1500 rps ten minutes in
    proposal = first_proposal(loop)
    loop.reject(proposal)
    before = [loop.tick() for _ in range(int(500 // TICK))]
    assert all(d.proposals == () and len(d.suppressed) == 1 for d in before)
    while not (decision := loop.tick()).proposals:
        assert loop.sim.elapsed < 900, "never proposed again"
    (again,) = decision.proposals
    assert again.target == "gateway" and again.plan_hash != proposal.plan_hash  # more replicas for more load
    assert again.rationale.startswith(
        "Proposing again: rejected by alice 9 min ago ('not during the sale'); "
        "since then demand on gateway rose from 150% to 188%. "
    )


def test_a_different_plan_for_the_same_node_is_held_while_not_materially_worse() -> None:
    # api 4 x 250 at 1200 rps (120%) -> plan api 6, db 3. At 1260 rps (126%) the plan is api 7: new hash.
    def chain(ext: float, at: float) -> Snapshot:
        return snap(
            [node("gateway", 4, 500.0, ext=ext, lo=4, hi=4), node("api", 4, 250.0), node("db", 2, 545.4545)],
            [("gateway", "api", 1.0), ("api", "db", 1.0)],
            at=at,
        )

    desires = Desires()
    first = decide(AgentState(), chain(1200.0, 0), desires)
    (proposal,) = first.proposals
    state = decline(
        first.new_state,
        node="api",
        plan_hash=proposal.plan_hash,
        outcome="cancelled",
        reason="x",
        at=proposal.observed_at,
    )
    grew = decide(state, chain(1260.0, 60), desires)
    assert grew.proposals == ()
    (held,) = grew.suppressed
    assert held.plan_hash != held.declined_plan_hash and held.outcome == "cancelled" and held.by is None
    # 10 points or more above the level it was declined at is materially worse: asked again.
    state, again = grew.new_state, None
    for i in range(5):
        worse = decide(state, chain(1400.0, 120 + 60 * i), desires)
        state = worse.new_state
        if worse.proposals:
            (again,) = worse.proposals
            break
        assert (worse.suppressed[0].demand_utilization_now or 0.0) < 1.3
    assert again is not None
    now = re.search(r"since then demand on api rose from 120% to (\d+)%\. ", again.rationale)
    assert now is not None and int(now.group(1)) >= 130, again.rationale


def test_cancelled_with_its_own_period_and_no_belief_counts_only_the_period() -> None:
    loop = Loop(shop(extra_gateway_rps=600.0, at=120.0))  # much worse, but the decline knows no baseline
    proposal = first_proposal(loop)
    loop.state = settle(loop.state, proposal.id, proposal.observed_at, 0)  # the intention is gone already
    loop.reject(proposal, outcome="cancelled", by="bob", reason="", demand_utilization=None, seconds=600.0)
    assert loop.state.declined[0].demand_utilization is None
    ticks = [loop.tick() for _ in range(int(660 // TICK))]
    back = [(i, p) for i, d in enumerate(ticks) for p in d.proposals]
    assert back and (back[0][0] + 1) * TICK >= 600 - 2
    assert back[0][1].rationale.startswith("Proposing again: cancelled by bob 10 min ago; the 10 min suppression")


def test_the_period_comes_from_the_desires() -> None:
    desires = load_desires("suppress_declined_seconds: 120\ndeclined_worse_margin: 0.5\n")
    assert (desires.suppress_declined_seconds, desires.declined_worse_margin) == (120, 0.5)
    assert (Desires().suppress_declined_seconds, Desires().declined_worse_margin) == (3600, 0.10)
    loop = Loop(shop(), desires)
    proposal = first_proposal(loop)
    loop.reject(proposal)
    # Declined 2 s after the snapshot: held on every tick up to 120 s later, proposed on the next.
    assert [bool(loop.tick().proposals) for _ in range(10)] == [False] * 8 + [True, False]


def test_a_new_decline_replaces_the_old_one_for_its_node() -> None:
    loop = Loop(shop())
    proposal = first_proposal(loop)
    loop.reject(proposal)
    loop.reject(proposal, after=60, by="carol", reason="still no")
    assert [(d.by, d.reason) for d in loop.state.declined] == [("carol", "still no")]


def test_state_from_before_declines_still_loads() -> None:
    """AgentState rides in workflow histories: JSON written before `declined` existed must load."""
    loop = Loop(shop())
    first_proposal(loop)
    old = json.loads(loop.state.model_dump_json())
    del old["declined"]
    for intention in old["intentions"]:
        del intention["demand_utilization"]
    restored = AgentState.model_validate_json(json.dumps(old))
    assert restored.declined == () and restored.intentions[0].demand_utilization is None
    # Declining against such a state counts only the period; the state round-trips with the decline.
    state = decline(
        restored,
        node="gateway",
        plan_hash=restored.intentions[0].plan_hash,
        outcome="rejected",
        at=restored.intentions[0].adopted_at,
    )
    assert state.declined[0].demand_utilization is None and state.intentions == ()
    assert AgentState.model_validate_json(state.model_dump_json()) == state


def test_a_declined_scale_down_holds_until_load_falls_materially() -> None:
    def quiet(ext: float, at: float) -> Snapshot:
        return snap([node("api", 10, 100.0, ext=ext, lo=1, hi=20)], at=at)

    desires = Desires()
    first = decide(AgentState(), quiet(300.0, 0), desires)
    (down,) = first.proposals
    assert down.intent == "scale_down"
    state = decline(
        first.new_state, node="api", plan_hash=down.plan_hash, outcome="rejected", by="dan", at=down.observed_at
    )
    assert state.declined[0].intent == "scale_down" and state.declined[0].demand_utilization == 0.3
    held = decide(state, quiet(280.0, 60), desires)  # a little quieter: a different plan, same no
    assert held.proposals == () and [s.node for s in held.suppressed] == ["api"]
    state, again = held.new_state, None
    for i in range(6):  # 30% -> 15% of capacity: materially more waste
        decision = decide(state, quiet(150.0, 120 + 60 * i), desires)
        state = decision.new_state
        if decision.proposals:
            (again,) = decision.proposals
            break
    assert again is not None and again.intent == "scale_down"
    assert re.match(
        r"Proposing again: rejected by dan \d+ min ago; since then demand on api fell from 30% to", again.rationale
    )


def test_declines_are_forgotten_two_periods_later_so_the_state_stays_small() -> None:
    loop = Loop(shop(), load_desires("suppress_declined_seconds: 300\n"))
    proposal = first_proposal(loop)
    loop.reject(proposal)
    loop.sim.run(600, dt=5)  # the agent loop was down past both periods: the no is old news
    decision = loop.tick()
    assert loop.state.declined == () and decision.suppressed == ()
    (again,) = decision.proposals
    assert again.rationale == proposal.rationale
