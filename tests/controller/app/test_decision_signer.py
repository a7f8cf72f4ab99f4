"""The approval service's key: created when embedded, never in production; its signatures check only untouched."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller.app.decision_signer import DecisionSigner
from controller.core.errors import ConfigurationError
from controller.core.settings import Settings
from workflows.contracts import Principal
from workflows.decisions import check_decision

ALICE = Principal(id="alice", roles=["approver", "sre"], team="edge")


def test_embedded_creates_a_private_key_once(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = DecisionSigner.from_settings(settings)
    assert stat.S_IMODE(settings.resolved_approval_key.stat().st_mode) == 0o600
    assert DecisionSigner.from_settings(settings).public_key_b64 == first.public_key_b64


def test_production_never_generates_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="TWINOPS_APPROVAL_SIGNING_KEY is not set"):
        DecisionSigner.from_settings(Settings(home=tmp_path, mode="production"))
    missing = tmp_path / "secrets" / "approval.key"
    with pytest.raises(ConfigurationError, match=r"TWINOPS_APPROVAL_SIGNING_KEY.*does not exist"):
        DecisionSigner.from_settings(Settings(home=tmp_path, mode="production", approval_signing_key=missing))
    assert not missing.exists() and not (tmp_path / "approval.key").exists()
    DecisionSigner.from_file(missing)  # provisioned by the operator
    assert DecisionSigner.from_settings(Settings(home=tmp_path, mode="production", approval_signing_key=missing))


def test_a_signature_checks_only_for_exactly_what_was_signed() -> None:
    signer = DecisionSigner.generate()
    signed = signer.sign("approve", proposal_id="p-1", plan_hash="h", principal=ALICE, text="ok")
    fields: dict[str, Any] = {
        "kind": "approve",
        "proposal_id": "p-1",
        "plan_hash": "h",
        "principal": ALICE,
        "text": "ok",
    }
    check_decision(signed, public_key_b64=signer.public_key_b64, now=datetime.now(UTC), **fields)
    changes: list[tuple[dict[str, Any], str]] = [
        ({"text": "ok!"}, "text"),
        ({"principal": ALICE.model_copy(update={"roles": ["admin"]})}, "names"),
        ({"plan_hash": "other"}, "another proposal or plan"),
        ({"kind": "reject"}, "not a 'reject'"),
    ]
    for change, match in changes:
        with pytest.raises(ValueError, match=match):
            check_decision(
                signed,
                public_key_b64=signer.public_key_b64,
                now=datetime.now(UTC),
                **{**fields, **change},
            )
    forged = signed.model_copy(update={"text": "ok!"})
    with pytest.raises(ValueError, match="bad signature"):
        check_decision(forged, public_key_b64=signer.public_key_b64, now=datetime.now(UTC), **{**fields, "text": "ok!"})
