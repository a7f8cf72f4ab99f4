"""`check_preapproval`: which approvals of a pre-approval hold for a run, and why the others do not. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.app.decision_signer import DecisionSigner
from workflows.contracts import PreapprovalGrant, Principal, SignedDecision
from workflows.decisions import check_preapproval

RUN_AT = datetime(2026, 12, 2, 2, 30, tzinfo=UTC)
ALICE = Principal(id="alice", roles=["sre"], team="edge")
BOB = Principal(id="bob", roles=["sre"], team="payments")
SERVICE = DecisionSigner.generate()
KEY = SERVICE.public_key_b64
GRANT = PreapprovalGrant(
    id="pa-1",
    playbook="nightly-rightsize",
    version=2,
    playbook_digest="d" * 64,
    run_at=RUN_AT,
    expires_at=RUN_AT + timedelta(hours=2),
)


def approval(who: Principal, grant: PreapprovalGrant = GRANT, signer: DecisionSigner = SERVICE) -> SignedDecision:
    return signer.sign("approve", proposal_id=grant.subject, plan_hash=grant.binding(), principal=who, text="ok")


def check(grant: PreapprovalGrant, started_at: datetime = RUN_AT, **fields: object) -> tuple[list[str], list[str]]:
    args: dict[str, object] = {
        "public_key_b64": KEY,
        "playbook": "nightly-rightsize",
        "version": 2,
        "playbook_digest": "d" * 64,
        "started_at": started_at,
    }
    args.update(fields)
    valid, problems = check_preapproval(grant, **args)  # type: ignore[arg-type]
    return [s.principal.id for s in valid], problems


def test_approvals_the_service_signed_for_this_grant_hold() -> None:
    g = GRANT.model_copy(update={"approvals": [approval(ALICE), approval(BOB)]})
    assert check(g) == (["alice", "bob"], [])


def test_another_key_does_not_sign_a_pre_approval() -> None:
    forged = approval(ALICE, signer=DecisionSigner.generate())
    valid, problems = check(GRANT.model_copy(update={"approvals": [forged]}))
    assert valid == [] and "bad signature" in problems[0]


def test_an_approval_of_another_grant_or_window_does_not_hold() -> None:
    other = GRANT.model_copy(update={"id": "pa-2"})
    widened = GRANT.model_copy(update={"expires_at": RUN_AT + timedelta(days=1)})
    moved = approval(ALICE, grant=other)
    # The approval was signed over the grant as it stood; a grant whose window grew since is not what was approved.
    stale = approval(BOB)
    valid, problems = check(widened.model_copy(update={"approvals": [moved, stale]}))
    assert valid == []
    assert problems == [
        "alice's pre-approval is not an approval of pa-1 as it stands",
        "bob's pre-approval is not an approval of pa-1 as it stands",
    ]


def test_a_run_of_other_content_or_outside_the_window_is_not_covered() -> None:
    g = GRANT.model_copy(update={"approvals": [approval(ALICE)]})
    assert check(g, version=3)[0] == []
    assert check(g, playbook_digest="e" * 64)[0] == []
    assert check(g, playbook="other")[0] == []
    assert check(g, started_at=RUN_AT - timedelta(minutes=16))[0] == []
    assert check(g, started_at=RUN_AT + timedelta(hours=2))[0] == []
    assert check(g, started_at=RUN_AT - timedelta(minutes=14))[0] == ["alice"]
    assert "covers runs from" in check(g, started_at=RUN_AT + timedelta(hours=3))[1][0]


def test_an_approval_signed_after_the_run_started_does_not_hold() -> None:
    now = datetime.now(UTC)
    g = GRANT.model_copy(update={"run_at": now, "expires_at": now + timedelta(hours=1)})
    late = approval(ALICE, grant=g)
    valid, problems = check(g.model_copy(update={"approvals": [late]}), started_at=now - timedelta(minutes=5))
    assert valid == [] and problems == ["alice's pre-approval was signed after the run started"]


def test_a_pre_approval_may_not_stand_for_more_than_a_week() -> None:
    now = datetime.now(UTC)
    g = GRANT.model_copy(update={"run_at": now + timedelta(days=7), "expires_at": now + timedelta(days=8)})
    valid, problems = check(g.model_copy(update={"approvals": [approval(ALICE, grant=g)]}), started_at=g.run_at)
    assert valid == [] and problems == ["alice's pre-approval stands longer than 7 days"]
