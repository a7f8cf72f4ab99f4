"""`twinops audit ...` smoke tests on the embedded default (SQLite under TWINOPS_HOME)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from controller.adapters.audit import SqlAuditLedger
from controller.cli.audit import app
from controller.core.db import create_engine
from controller.core.settings import Settings
from tests.controller.adapters.audit.conftest import PG_URL, require_postgres
from tests.controller.adapters.audit.factory import remediation_trail, step_event
from tests.controller.adapters.audit.test_ledger import drop_triggers

runner = CliRunner()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Path]:
    for name in ("TWINOPS_DATABASE_URL", "TWINOPS_AUDIT_SIGNING_KEY", "TWINOPS_AUDIT_ORIGIN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path / "home"))
    schema = None
    if request.param == "postgres":
        require_postgres()
        # A fresh schema, selected through the URL exactly as an operator would configure it.
        schema = f"twinops_cli_test_{uuid.uuid4().hex[:12]}"
        with create_engine(PG_URL).begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        monkeypatch.setenv("TWINOPS_DATABASE_URL", f"{PG_URL}?options=-csearch_path%3D{schema}")
    ledger = SqlAuditLedger.from_settings(Settings())
    for e in [*remediation_trail(), *(step_event(i, remediation="rem-2", node="gateway") for i in range(5))]:
        ledger.append_sync(e)
    ledger.engine.dispose()
    yield tmp_path
    if schema is not None:
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_show_and_query(home: Path) -> None:
    code, out = run("show", "rem-1")
    assert code == 0 and "Remediation rem-1" in out and "approved" in out
    code, out = run("show", "rem-1", "--json")
    assert [e["seq"] for e in json.loads(out)] == list(range(11))
    code, out = run("query", "--node", "gateway", "--json")
    assert code == 0 and [e["event_id"] for e in json.loads(out)] == [f"ev-{i}" for i in range(5)]
    code, out = run("query", "--kind", "approved", "--json")
    assert [e["actor"] for e in json.loads(out)] == ["user:ann"]
    code, out = run("query", "--since", "2026-11-21T22:05:00", "--until", "2026-11-21T22:07:00Z", "--json")
    assert [e["kind"] for e in json.loads(out)] == ["step_started", "step_succeeded"]
    assert run("query", "--kind", "nope")[0] == 2
    assert run("show", "nobody")[0] == 2


def test_export_verify_prove_offline(home: Path) -> None:
    export, key, proof = home / "audit.jsonl", home / "audit.pub", home / "proof.json"
    code, out = run("public-key")
    key.write_text(out)
    assert run("export", "--format", "jsonl", "--out", str(export))[0] == 0
    code, out = run("verify", "--export", str(export), "--public-key", str(key))
    assert code == 0 and "OK" in out and "16 events" in out
    assert run("verify")[0] == 0
    kept = home / "kept.checkpoint"
    kept.write_text(run("head")[1])
    code, out = run("verify", "--export", str(export), "--public-key", str(key), "--checkpoint", str(kept))
    assert code == 0, out
    assert run("verify", "--checkpoint", str(kept))[0] == 0
    assert run("prove", "rem-1:4:approved", "--out", str(proof))[0] == 0
    code, out = run("verify-proof", str(proof), "--public-key", str(key))
    assert code == 0 and "entry 4" in out
    pem = home / "audit.pem"
    pem.write_text(run("public-key", "--pem")[1])
    assert run("verify-proof", str(proof), "--public-key", str(pem), "--origin", "twinops.local/audit")[0] == 0
    tampered = json.loads(proof.read_text())
    tampered["entry"]["payload"]["comment"] = "no"
    proof.write_text(json.dumps(tampered))
    code, out = run("verify-proof", str(proof), "--public-key", str(key))
    assert code == 1 and "seq 4" in out
    lines = export.read_bytes().replace(b'"comment":"go"', b'"comment":"no"')
    export.write_bytes(lines)
    code, out = run("verify", "--export", str(export), "--public-key", str(key))
    assert code == 1 and "seq 4: edited" in out


def test_verify_names_the_first_bad_seq(home: Path) -> None:
    ledger = SqlAuditLedger.from_settings(Settings())
    drop_triggers(ledger.engine)
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    ledger.engine.dispose()
    code, out = run("verify")
    assert code == 1 and "seq 3: missing" in out


def test_report_is_self_contained(home: Path) -> None:
    out_file = home / "report.html"
    code, _ = run("report", "rem-1", "--out", str(out_file))
    assert code == 0
    html = out_file.read_text()
    for expected in ("Plan and alternatives", "shed load", "cdcdcdcd", "one_sre", "rolled_back",
                     "Inclusion proof of seq 10", "— twinops.local/audit"):  # fmt: skip
        assert expected in html
    assert "<b>before</b>" not in html and "&lt;b&gt;before&lt;/b&gt;" in html  # payload text is escaped
    assert "http://" not in html and "https://" not in html and "<script" not in html
