"""Alerts as evidence: what an outside detector (Alertmanager) says about a node.

An alert never decides anything by itself: the agent acts on the twin. A firing alert on a
node wakes the loop (so the twin is looked at now, not at the next tick), goes into that node's
belief as evidence, becomes an `alert` finding, and is named in the rationale of a proposal
for the node, so the person approving sees what paged them next to what the twin shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import AwareDatetime, Field

from agents._frozen import Frozen
from agents.beliefs import Beliefs, Evidence
from agents.detection import Finding, FindingKind


class AlertNote(Frozen):
    """One firing alert about one twin node, as the loop keeps it."""

    fingerprint: str = Field(min_length=1, max_length=200)
    """Alertmanager's fingerprint: the same alert (labels) firing again has the same one."""
    name: str = Field(min_length=1, max_length=200)
    node: str = Field(min_length=1, max_length=200)
    starts_at: AwareDatetime
    received_at: AwareDatetime
    severity: str | None = Field(default=None, max_length=50)
    summary: str = Field(default="", max_length=500)
    source: str = Field(default="alertmanager", max_length=50)
    url: str | None = Field(default=None, max_length=1000)
    """The alert's generator URL (the Prometheus graph), when it came with one."""
    posted_by: str | None = Field(default=None, max_length=100)
    """The (system) user who delivered it to the API, e.g. the account Alertmanager signs in as."""

    def statement(self) -> str:
        """One sentence a person can check: what fired, where, since when."""
        severity = f", severity {self.severity}" if self.severity else ""
        summary = f": {self.summary}" if self.summary else ""
        return (
            f"{self.source} alert {self.name} firing on {self.node} since {self.starts_at:%H:%M:%S} UTC"
            f"{severity}{summary}"
        )


def with_alerts(beliefs: Beliefs, alerts: Iterable[AlertNote]) -> Beliefs:
    """`beliefs` with each firing alert added to its node's evidence (alerts on unknown nodes are left out)."""
    by_node: dict[str, list[AlertNote]] = {}
    for a in alerts:
        if a.node in beliefs.nodes:
            by_node.setdefault(a.node, []).append(a)
    if not by_node:
        return beliefs
    nodes = dict(beliefs.nodes)
    for node, notes in by_node.items():
        b = nodes[node]
        added = tuple(Evidence(source="alert", statement=a.statement()) for a in _ordered(notes))
        nodes[node] = b.model_copy(update={"evidence": (*b.evidence, *added)})
    return beliefs.model_copy(update={"nodes": nodes})


def alert_findings(beliefs: Beliefs, alerts: Iterable[AlertNote]) -> tuple[Finding, ...]:
    """One `alert` finding per firing alert on a node of the twin, oldest first."""
    found: list[Finding] = []
    for a in _ordered(a for a in alerts if a.node in beliefs.nodes):
        b = beliefs.nodes[a.node]
        found.append(
            Finding(
                kind=FindingKind.ALERT,
                node=a.node,
                demand_utilization=b.demand_utilization,
                message=a.statement(),
                evidence=(Evidence(source="alert", statement=a.statement()),),
                confidence=b.confidence,
            )
        )
    return tuple(found)


def alerts_sentence(findings: Sequence[Finding]) -> str:
    """The rationale's sentence about the alerts among `findings` ('' when there are none)."""
    said = [f.message for f in findings if f.kind is FindingKind.ALERT]
    if not said:
        return ""
    return "Paged: " + "; ".join(said) + "."


def _ordered(alerts: Iterable[AlertNote]) -> list[AlertNote]:
    return sorted(alerts, key=lambda a: (a.starts_at, a.name, a.fingerprint))
