"""Declined plans: a human "no" holds for a while, and the agent says why when it asks again.

A plan that was rejected (or cancelled by a person) is remembered per target node. For
the suppression period (desires `suppress_declined_seconds`) no plan of the same intent
for that node is proposed, nor the same plan or action set for any node, unless the
situation got materially worse than when it was declined: the node's demand utilization
rose by `declined_worse_margin` or more, or the node became saturated when it was not
(for a declined scale-down: utilization fell by the margin). A plan proposed again after
a decline says so, and why, at the head of its rationale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, Field

from agents._frozen import Frozen
from agents.proposal import plan_hash
from twin.actions import Action

DeclineOutcome = Literal["rejected", "cancelled"]


class DeclinedPlan(Frozen):
    """A plan a person said no to, remembered so the agent does not ask again at once."""

    node: str
    """The plan's target node: the suppression holds for this node."""
    plan_hash: str
    intent: Literal["remediate", "scale_down"] = "remediate"
    nodes: tuple[str, ...] = ()
    """Every node the declined plan covered (for display)."""
    action_set: str | None = None
    """Order-free hash of the declined plan's actions (see `action_set_hash`); None when unknown."""
    outcome: DeclineOutcome
    by: str | None = None
    """Who said no, when known."""
    reason: str = ""
    at: AwareDatetime
    seconds: float | None = Field(default=None, ge=0.0)
    """Suppression period; None uses the desires' `suppress_declined_seconds` at decision time."""
    demand_utilization: float | None = None
    """The target's demand utilization when the plan was proposed; None: only the period counts."""

    def until(self, default_seconds: float) -> datetime:
        """When the suppression ends."""
        return self.at + timedelta(seconds=self.seconds if self.seconds is not None else default_seconds)

    def matches(self, target: str, intent: str, plan_hash: str, action_set: str) -> bool:
        """Whether a fresh plan falls under this decline: same node and intent, or the same plan anywhere."""
        return (
            (target == self.node and intent == self.intent)
            or plan_hash == self.plan_hash
            or (self.action_set is not None and action_set == self.action_set)
        )

    def worse(self, utilization: float, margin: float) -> str | None:
        """Why the situation is materially worse now than when declined (a sentence), or None."""
        then = self.demand_utilization
        if then is None:
            return None
        now_shown = "more than any capacity" if not math.isfinite(utilization) else f"{utilization:.0%}"
        if self.intent == "scale_down":
            if then - utilization >= margin:
                return f"since then demand on {self.node} fell from {then:.0%} to {now_shown}"
            return None
        if utilization - then >= margin or (then < 1.0 <= utilization):
            return f"since then demand on {self.node} rose from {then:.0%} to {now_shown}"
        return None

    def said(self, at: datetime) -> str:
        """What was decided, by whom, how long before `at`, why: "rejected by alice 40 min ago ('not now')"."""
        who = f" by {self.by}" if self.by else ""
        why = f" ({self.reason!r})" if self.reason else ""
        return f"{self.outcome}{who} {ago((at - self.at).total_seconds())} ago{why}"


class SuppressedPlan(Frozen):
    """A plan the agent would have proposed this tick but held back, because a person declined it."""

    node: str
    """The target node of the plan held back."""
    plan_hash: str
    """The plan held back (it may differ from the declined one, e.g. more replicas as load grew)."""
    declined_plan_hash: str
    outcome: DeclineOutcome
    by: str | None
    reason: str
    declined_at: AwareDatetime
    until: AwareDatetime
    """The plan may be proposed again from then on (earlier if the situation gets materially worse)."""
    demand_utilization_then: float | None
    demand_utilization_now: float | None
    detail: str


def action_set_hash(actions: Sequence[Action]) -> str:
    """Hash of a set of actions, order ignored: the same steps in another order are the same plan to a person."""
    return plan_hash(sorted(actions, key=lambda a: a.model_dump_json()))


def ago(seconds: float) -> str:
    """A short human duration: '45 s', '40 min', '1 h', '2 h 5 min'."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h" if rest == 0 else f"{hours} h {rest} min"


def finite(value: float | None) -> float | None:
    """`value` when it is a finite number, else None (state stays valid JSON)."""
    return value if value is not None and math.isfinite(value) else None
