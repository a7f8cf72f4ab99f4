"""Where the audit signing key lives: a key file, or a command that signs (an HSM or KMS client).

Whoever can rewrite the database and read the key can re-sign a rewritten log, so the
key belongs outside the data directory. `signer_from_settings` builds the head signer:

- `audit_signing_command` (with `audit_public_key`): the command gets the checkpoint
  body on stdin and prints the base64 Ed25519 signature; the key never touches this
  host. Every signature it returns is checked against the public key before use.
- `audit_signing_key` (default `home/audit.key`): a PEM Ed25519 key file, created on
  first use in embedded mode only.

In production mode a key file must already exist and lie outside both `home` and the
SQLite database's directory (`check_placement`). `verifier_from_settings` finds the
public key without creating anything, for `twinops audit verify`.
"""

from __future__ import annotations

import base64
import binascii
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.engine import make_url

from controller.adapters.audit.checkpoint import NoteSigner, NoteVerifier, load_or_create_key, load_verifier
from controller.core.errors import AuditError, ConfigurationError
from controller.core.settings import Settings

__all__ = ["CommandSigner", "check_placement", "data_dirs", "signer_from_settings", "verifier_from_settings"]

# An HSM or KMS round trip is milliseconds; a hung one must not hold the append lock for long.
_COMMAND_TIMEOUT_SECONDS = 10.0


class CommandSigner:
    """Ed25519 signatures from an external command; each is verified against the public key before it is used."""

    def __init__(self, argv: Sequence[str], public_bytes: bytes) -> None:
        if not argv:
            raise ConfigurationError("TWINOPS_AUDIT_SIGNING_COMMAND: empty command")
        self.argv = list(argv)
        self.public_bytes = public_bytes
        self._public = Ed25519PublicKey.from_public_bytes(public_bytes)

    def __repr__(self) -> str:
        return f"CommandSigner({self.argv[0]!r})"

    def sign(self, data: bytes) -> bytes:
        """The command's signature of `data`; AuditError naming the command when it fails or lies."""
        what = f"signing command {self.argv[0]!r}"
        try:
            done = subprocess.run(  # the operator's own command, run without a shell
                self.argv, input=data, capture_output=True, timeout=_COMMAND_TIMEOUT_SECONDS, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AuditError(f"{what}: {exc}") from None
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()[:1]
            raise AuditError(f"{what}: exit {done.returncode}{': ' + detail[0] if detail else ''}")
        try:
            signature = base64.b64decode(done.stdout.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise AuditError(f"{what}: output is not base64") from None
        try:
            self._public.verify(signature, data)
        except InvalidSignature:
            # Fail closed: a head signed by another key would make the log unverifiable.
            raise AuditError(f"{what}: signature does not verify under TWINOPS_AUDIT_PUBLIC_KEY") from None
        return signature


def data_dirs(settings: Settings) -> list[Path]:
    """Directories whose contents go with the database: home, and the SQLite file's directory."""
    dirs = [settings.home.resolve()]
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        dirs.append(Path(url.database).resolve().parent)
    return dirs


def _inside(path: Path, dirs: list[Path]) -> Path | None:
    resolved = path.resolve()
    return next((d for d in dirs if resolved == d or d in resolved.parents), None)


def check_placement(settings: Settings) -> None:
    """In production mode, refuse a key file or witness directory that a database rewrite would also reach."""
    if settings.mode != "production":
        return
    dirs = data_dirs(settings)
    if settings.audit_signing_command is None:
        key = settings.resolved_signing_key
        where = _inside(key, dirs)
        if where is not None:
            raise ConfigurationError(
                f"audit signing key {key}: inside the data directory {where}; in production mode keep it elsewhere "
                "(TWINOPS_AUDIT_SIGNING_KEY) or sign with TWINOPS_AUDIT_SIGNING_COMMAND"
            )
        if not key.exists():
            raise ConfigurationError(f"audit signing key {key}: does not exist (production mode never creates one)")
    if settings.audit_witness_dir is not None:
        where = _inside(settings.audit_witness_dir, dirs)
        if where is not None:
            raise ConfigurationError(
                f"audit witness directory {settings.audit_witness_dir}: inside the data directory {where}"
            )


def _public_key(settings: Settings) -> NoteVerifier | None:
    if settings.audit_public_key is None:
        return None
    try:
        verifier = load_verifier(settings.audit_public_key, settings.audit_origin)
    except OSError as exc:
        raise ConfigurationError(f"audit public key {settings.audit_public_key}: {exc.strerror or exc}") from None
    if verifier.name != settings.audit_origin:
        raise ConfigurationError(
            f"audit public key {settings.audit_public_key}: names {verifier.name!r}, not the origin "
            f"{settings.audit_origin!r}"
        )
    return verifier


def signer_from_settings(settings: Settings) -> NoteSigner:
    """The head signer the settings describe (see the module docstring); placement checked first."""
    check_placement(settings)
    public = _public_key(settings)
    if settings.audit_signing_command is not None:
        if public is None:
            raise ConfigurationError("TWINOPS_AUDIT_SIGNING_COMMAND needs TWINOPS_AUDIT_PUBLIC_KEY")
        command = CommandSigner(shlex.split(settings.audit_signing_command), public.public_bytes)
        return NoteSigner(settings.audit_origin, command)
    signer = NoteSigner(settings.audit_origin, load_or_create_key(settings.resolved_signing_key))
    if public is not None and public.verifier_key != signer.verifier_key:
        raise ConfigurationError(
            f"audit signing key {settings.resolved_signing_key}: does not match TWINOPS_AUDIT_PUBLIC_KEY"
        )
    return signer


def verifier_from_settings(settings: Settings) -> NoteVerifier:
    """The log's public key from the settings, reading (never creating) the key file if that is all there is."""
    public = _public_key(settings)
    if public is not None:
        return public
    if settings.audit_signing_command is not None:
        raise ConfigurationError("TWINOPS_AUDIT_SIGNING_COMMAND needs TWINOPS_AUDIT_PUBLIC_KEY")
    key = settings.resolved_signing_key
    try:
        pem = key.read_bytes()
    except FileNotFoundError:
        raise AuditError(
            f"audit signing key {key}: does not exist (give the log's public key with --public-key)"
        ) from None
    except OSError as exc:
        raise AuditError(f"audit signing key {key}: {exc.strerror or exc}") from None
    try:
        loaded = serialization.load_pem_private_key(pem, password=None)
    except (TypeError, ValueError):
        raise AuditError(f"audit signing key {key}: not a PEM private key") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise AuditError(f"audit signing key {key}: not an Ed25519 private key")
    return NoteSigner(settings.audit_origin, loaded).verifier()
