"""The SQL pre-approval store on SQLite and PostgreSQL: a grant covers one run, approvals join it, reads.

A claim takes the first unused grant of exactly this playbook content whose window covers the
run; the same run claiming again (a retried activity) gets the same grant; any other run gets
none, and the note says which run used it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, inspect

from controller.adapters.preapprovals import SqlPreapprovalStore
from controller.adapters.preapprovals import metadata as preapprovals_metadata
from controller.app.decision_signer import DecisionSigner
from controller.core.errors import ConflictError, NotFoundError
from tests.controller.adapters.audit import conftest as audit_db
from tests.controller.adapters.schema_checks import alembic, assert_models_match_the_migrations
from workflows.contracts import PreapprovalGrant, Principal, SignedDecision
from workflows.playbook_contracts import PreapprovalStore

sqlite_engine_factory = audit_db.sqlite_engine_factory
pg_engine_factory = audit_db.pg_engine_factory
engine_factory = audit_db.engine_factory

RUN_AT = datetime(2026, 12, 2, 2, 30, tzinfo=UTC)
ALICE = Principal(id="alice", roles=["sre"], team="edge")
BOB = Principal(id="bob", roles=["sre"], team="payments")
SIGNER = DecisionSigner.generate()


@pytest.fixture
def store(engine_factory: Callable[[], Engine]) -> SqlPreapprovalStore:
    return SqlPreapprovalStore(engine_factory())


def grant(id: str = "pa-1", *, version: int = 1, digest: str = "d" * 64, run_at: datetime = RUN_AT) -> PreapprovalGrant:
    return PreapprovalGrant(
        id=id,
        playbook="nightly-rightsize",
        version=version,
        playbook_digest=digest,
        run_at=run_at,
        expires_at=run_at + timedelta(hours=2),
    )


def signed(g: PreapprovalGrant, who: Principal) -> SignedDecision:
    return SIGNER.sign("approve", proposal_id=g.subject, plan_hash=g.binding(), principal=who, text="ok")


def approved(store: SqlPreapprovalStore, g: PreapprovalGrant, *who: Principal) -> PreapprovalGrant:
    store.create_sync(g, "alice")
    for p in who:
        g = store.add_approval_sync(g.id, signed(g, p), RUN_AT - timedelta(hours=3)).grant
    return g


def test_implements_the_port(store: SqlPreapprovalStore) -> None:
    assert isinstance(store, PreapprovalStore)


def test_a_grant_covers_one_run_only(store: SqlPreapprovalStore) -> None:
    g = approved(store, grant(), ALICE, BOB)
    first = store.claim_sync("nightly-rightsize", 1, "d" * 64, "run-1", RUN_AT)
    assert first.grant == g and "pa-1 covers this run" in first.note
    # A retried claim by the same run: the same grant.
    assert store.claim_sync("nightly-rightsize", 1, "d" * 64, "run-1", RUN_AT).grant == g
    # Another run: none, and the note says who used it.
    second = store.claim_sync("nightly-rightsize", 1, "d" * 64, "run-2", RUN_AT + timedelta(minutes=1))
    assert second.grant is None
    assert second.note == "pre-approval pa-1 was used by run run-1"
    record = store.get_sync("pa-1")
    assert record.used_by_run == "run-1" and record.status(RUN_AT) == "used"


def test_a_grant_of_other_content_or_version_is_not_claimed(store: SqlPreapprovalStore) -> None:
    approved(store, grant(), ALICE)
    other_version = store.claim_sync("nightly-rightsize", 2, "d" * 64, "run-1", RUN_AT)
    assert other_version.grant is None and "v1 as it was then; this run is v2" in other_version.note
    edited = store.claim_sync("nightly-rightsize", 1, "e" * 64, "run-1", RUN_AT)
    assert edited.grant is None and "with other content" in edited.note
    assert store.get_sync("pa-1").used_by_run is None


def test_a_run_outside_the_window_claims_nothing(store: SqlPreapprovalStore) -> None:
    approved(store, grant(), ALICE)
    too_early = store.claim_sync("nightly-rightsize", 1, "d" * 64, "run-1", RUN_AT - timedelta(minutes=16))
    assert too_early.grant is None and too_early.note == "no pre-approval covers this run of nightly-rightsize"
    expired = store.claim_sync("nightly-rightsize", 1, "d" * 64, "run-1", RUN_AT + timedelta(hours=2))
    assert expired.grant is None
    just_early = store.claim_sync("nightly-rightsize", 1, "d" * 64, "run-1", RUN_AT - timedelta(minutes=14))
    assert just_early.grant is not None


def test_a_grant_without_approvals_is_not_claimed(store: SqlPreapprovalStore) -> None:
    store.create_sync(grant(), "alice")
    claim = store.claim_sync("nightly-rightsize", 1, "d" * 64, "run-1", RUN_AT)
    assert claim.grant is None and claim.note == "pre-approval pa-1 has no approvals"


def test_approvals_join_once_and_not_after_use_or_expiry(store: SqlPreapprovalStore) -> None:
    g = approved(store, grant(), ALICE)
    with pytest.raises(ConflictError, match="'alice' has already pre-approved pa-1"):
        store.add_approval_sync(g.id, signed(g, ALICE), RUN_AT - timedelta(hours=1))
    with pytest.raises(ConflictError, match="expired"):
        store.add_approval_sync(g.id, signed(g, BOB), RUN_AT + timedelta(hours=2))
    store.claim_sync("nightly-rightsize", 1, "d" * 64, "run-1", RUN_AT)
    with pytest.raises(ConflictError, match="used by run run-1"):
        store.add_approval_sync(g.id, signed(g, BOB), RUN_AT - timedelta(hours=1))
    with pytest.raises(NotFoundError, match="unknown pre-approval 'pa-9'"):
        store.add_approval_sync("pa-9", signed(g, BOB), RUN_AT)


def test_open_for_finds_the_unused_grant_of_that_run(store: SqlPreapprovalStore) -> None:
    approved(store, grant(), ALICE)
    assert store.open_for_sync("nightly-rightsize", 1, "d" * 64, RUN_AT) is not None
    assert store.open_for_sync("nightly-rightsize", 1, "d" * 64, RUN_AT + timedelta(days=1)) is None
    assert store.open_for_sync("nightly-rightsize", 2, "d" * 64, RUN_AT) is None
    store.claim_sync("nightly-rightsize", 1, "d" * 64, "run-1", RUN_AT)
    assert store.open_for_sync("nightly-rightsize", 1, "d" * 64, RUN_AT) is None


def test_list_is_latest_run_first_and_filters_by_playbook(store: SqlPreapprovalStore) -> None:
    approved(store, grant("pa-1"), ALICE)
    approved(store, grant("pa-2", run_at=RUN_AT + timedelta(days=1)), BOB)
    assert [r.grant.id for r in store.list_sync()] == ["pa-2", "pa-1"]
    assert store.list_sync("other") == []
    assert [a.principal.id for a in store.list_sync("nightly-rightsize")[1].grant.approvals] == ["alice"]


def test_models_match_the_migration(engine_factory: Callable[[], Engine]) -> None:
    """What the code declares is what migration 0010 built (types, nullability, indexes)."""
    assert_models_match_the_migrations(engine_factory(), preapprovals_metadata)


def test_migration_0010_down_and_up(engine_factory: Callable[[], Engine]) -> None:
    engine = engine_factory()
    alembic(engine, command.downgrade, "0009_playbook_runs")
    assert "playbook_preapprovals" not in inspect(engine).get_table_names()
    alembic(engine, command.upgrade, "head")
    store = SqlPreapprovalStore(engine)
    approved(store, grant(), ALICE)
    assert store.claim_sync("nightly-rightsize", 1, "d" * 64, "run-1", RUN_AT).grant is not None
