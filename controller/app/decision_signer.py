"""The approval service's Ed25519 key: it signs each human decision a workflow will count.

The workflow is given the public key in its input and checks every approval, rejection
and cancellation against it (workflows.decisions). Only the approval service holds the
private key; a caller that reaches Temporal directly cannot produce a valid signature.
The key file is created on first use (mode 0600) unless it must already exist.
"""

from __future__ import annotations

import base64
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.core.errors import ConfigurationError
from controller.core.settings import Settings
from workflows.contracts import Principal, SignedDecision
from workflows.decisions import DecisionKind, key_fingerprint

__all__ = ["DecisionSigner"]


class DecisionSigner:
    """Signs decisions with one Ed25519 private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key_b64 = base64.b64encode(raw).decode()
        """What workflows are given to check signatures with."""
        self.key_id = key_fingerprint(self.public_key_b64)

    @classmethod
    def generate(cls) -> DecisionSigner:
        """A signer with a fresh key held only in memory (tests)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: Path, *, create: bool = True) -> DecisionSigner:
        """Load the PEM key at `path`; create it (0600) when missing and `create` is set."""
        if not path.exists():
            if not create:
                raise ConfigurationError(f"approval signing key {path} does not exist")
            path.parent.mkdir(parents=True, exist_ok=True)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            # O_EXCL: two processes starting at once must not each write a different key.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return cls.from_file(path, create=False)
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
            return cls(key)
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError) as exc:
            raise ConfigurationError(f"approval signing key {path}: {exc}") from exc
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ConfigurationError(f"approval signing key {path} is not an Ed25519 private key")
        return cls(loaded)

    @classmethod
    def from_settings(cls, settings: Settings) -> DecisionSigner:
        """The configured key; created on first use when embedded, never in production (it must be provisioned)."""
        if settings.mode == "production":
            if settings.approval_signing_key is None:
                raise ConfigurationError(
                    "TWINOPS_APPROVAL_SIGNING_KEY is not set: production needs a provisioned approval key "
                    "shared by the approval service and the workers"
                )
            try:
                return cls.from_file(settings.approval_signing_key, create=False)
            except ConfigurationError as exc:
                raise ConfigurationError(f"TWINOPS_APPROVAL_SIGNING_KEY: {exc}") from exc
        return cls.from_file(settings.resolved_approval_key)

    def sign(
        self, kind: DecisionKind, *, proposal_id: str, plan_hash: str, principal: Principal, text: str
    ) -> SignedDecision:
        """One signed decision, issued now with a fresh nonce."""
        unsigned = SignedDecision(
            kind=kind,
            proposal_id=proposal_id,
            plan_hash=plan_hash,
            principal=principal,
            text=text,
            issued_at=datetime.now(UTC),
            nonce=secrets.token_hex(16),
            key_id=self.key_id,
        )
        signature = base64.b64encode(self._key.sign(unsigned.signing_bytes())).decode()
        return unsigned.model_copy(update={"signature": signature})
