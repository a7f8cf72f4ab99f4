"""`audit show` fits the terminal: a table when wide, an event per line with its text beneath when narrow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from controller.adapters.audit import SqlAuditLedger
from controller.cli import app
from controller.core.settings import Settings
from tests.controller.adapters.audit.factory import remediation_trail


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("TWINOPS_DATABASE_URL", "TWINOPS_AUDIT_SIGNING_KEY", "TWINOPS_AUDIT_ORIGIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path))
    ledger = SqlAuditLedger.from_settings(Settings())
    for event in remediation_trail("p-5f0c11aa22"):
        ledger.append_sync(event)
    ledger.engine.dispose()
    return tmp_path


@pytest.mark.parametrize("width", [80, 100, 160])
def test_every_line_fits_and_every_event_is_there(home: Path, width: int) -> None:
    result = CliRunner().invoke(app, ["audit", "show", "p-5f0c"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    trail = json.loads(CliRunner().invoke(app, ["audit", "show", "p-5f0c", "--json"]).stdout)
    for event in trail:
        assert any(event["kind"] in line for line in lines), event["kind"]


def test_long_json_is_cut_with_an_ellipsis_never_mid_string_silently() -> None:
    from controller.cli.audit import _summary
    from workflows.audit import AuditRecord, EventKind

    # Only kind and payload matter to the summary; an oversized payload need not pass the schema here.
    fields: dict[str, Any] = {"kind": EventKind.VERIFIED, "payload": {"findings": ["x" * 500]}}
    record = AuditRecord.model_construct(**fields)
    text = _summary(record)
    assert len(text) == 200 and text.endswith("…")
