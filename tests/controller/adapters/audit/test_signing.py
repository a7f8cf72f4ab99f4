"""Where the signing key lives: production refuses one beside the database; a command (HSM/KMS) can sign instead."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.adapters.audit import NoteSigner, SqlAuditLedger
from controller.core.errors import AuditError, ConfigurationError
from controller.core.settings import Settings
from tests.controller.adapters.audit.factory import step_event

ORIGIN = "twinops.local/audit"
# What an HSM or KMS client does, with a key file standing in for the device.
_SIGN_SCRIPT = """
import base64, sys
from cryptography.hazmat.primitives import serialization
key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), password=None)
print(base64.b64encode(key.sign(sys.stdin.buffer.read())).decode())
"""


def write_key(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return key


def write_public(path: Path, key: Ed25519PrivateKey) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(NoteSigner(ORIGIN, key).verifier_key + "\n")
    return path


def opened(settings: Settings) -> SqlAuditLedger:
    ledger = SqlAuditLedger.from_settings(settings)
    ledger.engine.dispose()
    return ledger


def test_production_refuses_the_default_key_beside_the_ledger(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_key(home / "audit.key")
    with pytest.raises(ConfigurationError, match=rf"audit signing key {home / 'audit.key'}: inside the data directory"):
        SqlAuditLedger.from_settings(Settings(home=home, mode="production"))
    opened(Settings(home=home))  # the embedded default keeps working as before


def test_production_refuses_a_key_in_the_sqlite_databases_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = data / "keys" / "audit.key"
    write_key(key)
    settings = Settings(
        home=tmp_path / "home", database_url=f"sqlite:///{data / 'ledger.db'}", audit_signing_key=key, mode="production"
    )
    with pytest.raises(ConfigurationError, match=f"inside the data directory {data}"):
        SqlAuditLedger.from_settings(settings)
    assert not (data / "ledger.db").exists()  # refused before anything was created


def test_production_refuses_a_key_reached_through_a_symlink_into_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_key(home / "secret" / "audit.key")
    (tmp_path / "keys").symlink_to(home / "secret")
    with pytest.raises(ConfigurationError, match="inside the data directory"):
        SqlAuditLedger.from_settings(
            Settings(home=home, audit_signing_key=tmp_path / "keys" / "audit.key", mode="production")
        )


def test_production_accepts_a_key_elsewhere_but_never_creates_one(tmp_path: Path) -> None:
    key = tmp_path / "vault" / "audit.key"
    settings = Settings(home=tmp_path / "home", audit_signing_key=key, mode="production")
    with pytest.raises(ConfigurationError, match=f"audit signing key {key}: does not exist"):
        SqlAuditLedger.from_settings(settings)
    assert not key.exists()
    written = write_key(key)
    ledger = opened(settings)
    assert ledger.signer.verifier_key == NoteSigner(ORIGIN, written).verifier_key


def test_production_refuses_a_witness_directory_beside_the_ledger(tmp_path: Path) -> None:
    key = tmp_path / "vault" / "audit.key"
    write_key(key)
    home = tmp_path / "home"
    settings = Settings(home=home, audit_signing_key=key, audit_witness_dir=home / "witness", mode="production")
    with pytest.raises(ConfigurationError, match=r"audit witness directory .*: inside the data directory"):
        SqlAuditLedger.from_settings(settings)


def test_a_command_signs_and_every_signature_is_checked(tmp_path: Path) -> None:
    device = tmp_path / "hsm" / "device.key"
    key = write_key(device)
    script = tmp_path / "hsm" / "sign.py"
    script.write_text(_SIGN_SCRIPT)
    command = " ".join(shlex.quote(str(p)) for p in (sys.executable, script, device))
    public = write_public(tmp_path / "audit.pub", key)
    settings = Settings(
        home=tmp_path / "home", audit_signing_command=command, audit_public_key=public, mode="production"
    )
    ledger = SqlAuditLedger.from_settings(settings)
    for i in range(3):
        ledger.append_sync(step_event(i))
    head = ledger.publish_head()
    assert head.checkpoint.endswith("\n") and ledger.verify().ok
    assert not (tmp_path / "home" / "audit.key").exists()  # no key file was made beside the ledger
    ledger.engine.dispose()

    impostor = write_public(tmp_path / "impostor.pub", Ed25519PrivateKey.generate())
    lying = SqlAuditLedger.from_settings(settings.model_copy(update={"audit_public_key": impostor}))
    lying.append_sync(step_event(3))  # not due a head yet
    with pytest.raises(AuditError, match="signature does not verify under TWINOPS_AUDIT_PUBLIC_KEY"):
        lying.publish_head()
    latest = lying.latest_head()
    assert latest is not None and latest.tree_size == 3  # fail closed: no head under a key nobody can check
    lying.engine.dispose()


def test_a_command_needs_the_public_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="TWINOPS_AUDIT_SIGNING_COMMAND needs TWINOPS_AUDIT_PUBLIC_KEY"):
        SqlAuditLedger.from_settings(Settings(home=tmp_path, audit_signing_command="sign-it"))


def test_a_failing_command_is_named(tmp_path: Path) -> None:
    public = write_public(tmp_path / "audit.pub", Ed25519PrivateKey.generate())
    command = f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(\"hsm offline\")'"
    ledger = SqlAuditLedger.from_settings(
        Settings(home=tmp_path / "home", audit_signing_command=command, audit_public_key=public)
    )
    with pytest.raises(AuditError, match=r"signing command .*python.*: exit 1: hsm offline"):
        ledger.append_sync(step_event(0))
    assert ledger.size() == 0
    ledger.engine.dispose()


def test_a_public_key_that_is_not_the_key_files_is_refused(tmp_path: Path) -> None:
    public = write_public(tmp_path / "audit.pub", Ed25519PrivateKey.generate())
    with pytest.raises(ConfigurationError, match="does not match TWINOPS_AUDIT_PUBLIC_KEY"):
        SqlAuditLedger.from_settings(Settings(home=tmp_path / "home", audit_public_key=public))


def test_production_with_postgres_still_keeps_the_key_out_of_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_key(home / "audit.key")
    settings = Settings(home=home, database_url="postgresql+psycopg://twinops@db.invalid/twinops", mode="production")
    # Refused before any connection is tried: home holds the rest of twinops' state, whatever the database.
    with pytest.raises(ConfigurationError, match="inside the data directory"):
        SqlAuditLedger.from_settings(settings)
