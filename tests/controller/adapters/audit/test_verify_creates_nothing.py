"""`twinops audit verify` reads what exists and creates nothing: a missing database or key is an error."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from controller.adapters.audit import SqlAuditLedger
from controller.cli.audit import app
from controller.core.db import create_engine
from controller.core.settings import Settings
from tests.controller.adapters.audit.conftest import PG_URL, require_postgres
from tests.controller.adapters.audit.factory import step_event

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TWINOPS_DATABASE_URL", "TWINOPS_AUDIT_SIGNING_KEY", "TWINOPS_AUDIT_PUBLIC_KEY", "TWINOPS_MODE"):
        monkeypatch.delenv(name, raising=False)


def verify(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", *args])
    return result.exit_code, "".join(result.output.split())  # rich wraps at 80 columns under CliRunner


def flat(text: str) -> str:
    return "".join(text.split())


def everything_under(path: Path) -> list[Path]:
    return sorted(path.rglob("*"))


def test_missing_home_is_an_error_and_stays_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "no-such-home"
    monkeypatch.setenv("TWINOPS_HOME", str(home))
    code, out = verify()
    assert code == 2
    assert flat(f"audit database {home.resolve() / 'twinops.db'}: does not exist") in out
    assert everything_under(tmp_path) == []


def test_missing_key_is_an_error_and_no_key_is_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("TWINOPS_HOME", str(home))
    ledger = SqlAuditLedger.from_settings(Settings())
    ledger.append_sync(step_event(0))
    ledger.engine.dispose()
    key = home / "audit.key"
    key.unlink()
    code, out = verify()
    assert code == 2 and flat(f"audit signing key {key}: does not exist") in out
    assert not key.exists()


def test_a_file_that_is_no_ledger_is_an_error_and_gets_no_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "other.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE unrelated (x INTEGER)"))
    monkeypatch.setenv("TWINOPS_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path / "home"))
    code, out = verify("--public-key", str(_public_key_file(tmp_path)))
    assert code == 2 and flat(f"audit database {db}: holds no audit ledger (no table audit_events)") in out
    assert inspect(engine).get_table_names() == ["unrelated"]
    assert not (tmp_path / "home").exists()
    engine.dispose()


@pytest.fixture
def empty_pg_schema() -> Iterator[str]:
    require_postgres()
    schema = f"twinops_verify_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield schema
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.postgres
def test_postgres_schema_without_a_ledger_is_an_error_and_gets_no_tables(
    empty_pg_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINOPS_DATABASE_URL", f"{PG_URL}?options=-csearch_path%3D{empty_pg_schema}")
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path / "home"))
    code, out = verify("--public-key", str(_public_key_file(tmp_path)))
    assert code == 2 and flat("holds no audit ledger (no table audit_events)") in out
    engine = create_engine(PG_URL)
    assert inspect(engine).get_table_names(schema=empty_pg_schema) == []
    engine.dispose()
    assert not (tmp_path / "home").exists()


def test_an_existing_ledger_still_verifies_with_the_key_beside_it_or_a_given_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWINOPS_HOME", str(tmp_path / "home"))
    ledger = SqlAuditLedger.from_settings(Settings())
    ledger.append_sync(step_event(0))
    ledger.engine.dispose()
    before = everything_under(tmp_path)
    code, out = verify()
    assert code == 0 and flat("OK ledger: 1 events") in out
    assert flat(f"note: checked with the key at {tmp_path / 'home' / 'audit.key'}") in out  # not independent
    key = tmp_path / "audit.pub"
    key.write_text(ledger.signer.verifier_key)
    code, out = verify("--public-key", str(key))
    assert code == 0 and "note:" not in out
    other = _public_key_file(tmp_path / "other")
    code, out = verify("--public-key", str(other))
    assert code == 1 and flat("no signature by key") in out
    assert set(everything_under(tmp_path)) - set(before) == {key, other.parent, other}  # only what the test wrote


def _public_key_file(where: Path) -> Path:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from controller.adapters.audit import NoteSigner

    where.mkdir(parents=True, exist_ok=True)
    path = where / "audit.pub"
    path.write_text(NoteSigner("twinops.local/audit", Ed25519PrivateKey.generate()).verifier_key)
    return path
