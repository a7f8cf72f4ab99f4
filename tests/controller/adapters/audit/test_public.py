"""Public surface and key handling."""

from __future__ import annotations

import stat
from pathlib import Path

import controller.adapters.audit
from controller.adapters.audit import SqlAuditLedger
from controller.core.settings import Settings


def test_all_is_complete_and_importable() -> None:
    public = {n for n in dir(controller.adapters.audit) if not n.startswith("_")}
    modules = {"canonical", "checkpoint", "export", "ledger", "merkle", "models", "proofs", "verify", "report"}
    modules |= {"reader", "signing", "witness"}
    assert set(controller.adapters.audit.__all__) == public - modules
    for name in controller.adapters.audit.__all__:
        assert getattr(controller.adapters.audit, name).__doc__, name


def test_key_is_created_private_once_and_reused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    first = SqlAuditLedger.from_settings(settings)
    key = settings.resolved_signing_key
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    second = SqlAuditLedger.from_settings(settings)
    assert first.signer.verifier_key == second.signer.verifier_key
    assert "PRIVATE" not in repr(first.signer) and key.read_text() not in repr(first.signer)
    assert first.signer.verifier_key.startswith("twinops.local/audit+")
    for ledger in (first, second):
        ledger.engine.dispose()
