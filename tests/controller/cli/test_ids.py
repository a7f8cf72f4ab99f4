"""One id resolver: a unique prefix works in `audit show`/`audit report` as in `approve`/`show`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.adapters.audit import SqlAuditLedger
from controller.adapters.inbox import SqlApprovalInbox
from controller.cli import app
from controller.core.db import create_engine, migrate
from controller.core.errors import AmbiguousIdError, NotFoundError
from controller.core.settings import Settings
from tests.controller.adapters.audit.factory import remediation_trail, step_event
from tests.controller.cli.test_queue import entry

IDS = ["p-0a1b2c3d4e", "p-0a1b9999ff", "p-77ee00aa11"]


def lookup(prefix: str, limit: int) -> list[str]:
    return [i for i in IDS if i.startswith(prefix)][:limit]


def test_a_unique_prefix_names_the_full_id() -> None:
    from controller.cli._ids import resolve_id

    assert resolve_id("p-77", lookup) == "p-77ee00aa11"
    assert resolve_id("p-0a1b2c3d4e", lookup) == "p-0a1b2c3d4e"


def test_an_ambiguous_prefix_is_one_line_listing_the_candidates() -> None:
    from controller.cli._ids import resolve_id

    with pytest.raises(AmbiguousIdError) as caught:
        resolve_id("p-0a1b", lookup)
    message = str(caught.value)
    assert "\n" not in message and "p-0a1b2c3d4e" in message and "p-0a1b9999ff" in message


@pytest.mark.parametrize("prefix", ["p-9", "", "  "])
def test_an_unknown_prefix_is_not_found(prefix: str) -> None:
    from controller.cli._ids import resolve_id

    with pytest.raises(NotFoundError):
        resolve_id(prefix, lookup)


def test_both_stores_answer_prefix_lookups(tmp_path: Path) -> None:
    from controller.cli._ids import proposal_ids, remediation_ids, resolve_id

    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    inbox = SqlApprovalInbox(engine)
    for pid in IDS:
        inbox.upsert_sync(entry(pid))
    assert resolve_id("p-77", proposal_ids(engine)) == "p-77ee00aa11"
    with pytest.raises(AmbiguousIdError):
        resolve_id("p-0a", proposal_ids(engine))
    assert remediation_ids(engine)("rem", 6) == []


@pytest.fixture
def ledger_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in ("TWINOPS_DATABASE_URL", "TWINOPS_AUDIT_SIGNING_KEY", "TWINOPS_AUDIT_ORIGIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path))
    ledger = SqlAuditLedger.from_settings(Settings())
    trails = [*remediation_trail("p-5f0c11aa22"), *(step_event(i, remediation="p-5f9d000000") for i in range(2))]
    for e in trails:
        ledger.append_sync(e)
    ledger.engine.dispose()
    yield tmp_path


def test_audit_show_and_report_accept_a_unique_prefix(ledger_home: Path) -> None:
    shown = CliRunner().invoke(app, ["audit", "show", "p-5f0", "--json"])
    assert shown.exit_code == 0, shown.output
    assert {e["remediation_id"] for e in json.loads(shown.stdout)} == {"p-5f0c11aa22"}
    out = ledger_home / "r.html"
    report = CliRunner().invoke(app, ["audit", "report", "p-5f0c", "--out", str(out)])
    assert report.exit_code == 0, report.output
    assert out.exists()


def test_audit_show_refuses_an_ambiguous_prefix_naming_the_candidates(ledger_home: Path) -> None:
    result = CliRunner().invoke(app, ["audit", "show", "p-5f"])
    assert result.exit_code == 2
    assert "ambiguous" in result.output and "p-5f0c11aa22" in result.output and "p-5f9d000000" in result.output
