"""Which playbooks a tick's findings trigger: a finding trigger's kind on a node its target selects. Pure."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from agents._frozen import Frozen
from agents.beliefs import Beliefs
from agents.detection import Finding, FindingKind
from agents.playbook.model import FindingTrigger, Playbook

__all__ = ["FindingMatch", "match_finding_triggers"]


class FindingMatch(Frozen):
    """A playbook the findings trigger: on which of its target nodes, for which kinds of finding."""

    playbook: str
    nodes: tuple[str, ...]
    kinds: tuple[FindingKind, ...]

    def reason(self) -> str:
        """In words: `at_risk on order-events`."""
        return f"{', '.join(k.value for k in self.kinds)} on {', '.join(self.nodes)}"


def match_finding_triggers(
    playbooks: Sequence[Playbook], findings: Sequence[Finding], beliefs: Beliefs, *, skip: Collection[str] = ()
) -> list[FindingMatch]:
    """The playbooks (by name, minus `skip`) with a finding trigger that one of `findings` sets off.

    A finding counts when its kind is one the trigger names and its node is one the playbook's target
    selects (by id, kind and tags, as the beliefs know the node). Findings without a node never count.
    """
    out: list[FindingMatch] = []
    for playbook in sorted(playbooks, key=lambda p: p.name):
        if playbook.name in skip:
            continue
        kinds = {k for t in playbook.triggers if isinstance(t, FindingTrigger) for k in t.kinds}
        hits = [
            f
            for f in findings
            if f.kind in kinds
            and f.node is not None
            and f.node in beliefs.nodes
            and playbook.target.selects(f.node, beliefs.nodes[f.node].kind, beliefs.nodes[f.node].tags)
        ]
        if hits:
            out.append(
                FindingMatch(
                    playbook=playbook.name,
                    nodes=tuple(sorted({f.node for f in hits if f.node is not None})),
                    kinds=tuple(sorted({f.kind for f in hits}, key=lambda k: k.value)),
                )
            )
    return out
