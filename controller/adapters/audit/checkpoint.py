"""Signed tree heads as C2SP signed-note checkpoints, signed with Ed25519.

A checkpoint body (c2sp.org/tlog-checkpoint) is

    <origin>\\n<tree size>\\n<base64 root hash>\\ntime <UTC time>\\n

The `time` extension line puts the head's time under the signature (the issue asks
that `size || root || time` be signed); checkpoint parsers that do not know it
ignore extension lines. The note (c2sp.org/signed-note) is the body, a blank line,
then `— <key name> base64(key id || signature)`, where for Ed25519 the key id is
the first 4 bytes of SHA-256(key name || 0x0A || 0x01 || public key). The public
key is exported as the signed-note verifier key `<name>+<hex key id>+base64(0x01 || key)`.

Decoding is strict (canonical base64 only, exact line shapes) so that no two
different texts can stand for the same signed head.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from controller.adapters.audit.canonical import format_time, parse_time
from controller.core.errors import AuditError, LedgerIntegrityError

__all__ = [
    "Checkpoint",
    "NoteSigner",
    "NoteVerifier",
    "RawSigner",
    "load_or_create_key",
    "load_verifier",
    "parse_checkpoint",
]

_ED25519 = b"\x01"
_DASH = "\u2014 "


def b64encode(data: bytes) -> str:
    """Standard padded base64."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str, what: str) -> bytes:
    """Decode base64, refusing anything that would not re-encode to the same text."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise LedgerIntegrityError(f"{what}: not valid base64") from None
    if b64encode(raw) != text:
        raise LedgerIntegrityError(f"{what}: non-canonical base64")
    return raw


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise AuditError(f"key name {name!r}: must be non-empty with no spaces or '+'")


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 signing key at `path`, generated (mode 0600) on first use. Never logged."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            # O_EXCL: two processes starting together must not overwrite each other's key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            return key
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise AuditError(f"signing key {path}: not an Ed25519 private key")
    return loaded


class RawSigner(Protocol):
    """An Ed25519 signer whose private key is elsewhere (an HSM, a KMS, another process)."""

    public_bytes: bytes

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `data`."""
        ...


@dataclass(frozen=True)
class Checkpoint:
    """A parsed checkpoint note."""

    origin: str
    size: int
    root: bytes
    time: datetime
    body: str
    text: str


class NoteSigner:
    """Signs checkpoint bodies under one key name."""

    def __init__(self, name: str, key: Ed25519PrivateKey | RawSigner) -> None:
        _check_name(name)
        self.name = name
        self._key = key
        if isinstance(key, Ed25519PrivateKey):
            self.public_bytes = key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        else:
            self.public_bytes = key.public_bytes
        self.key_id = _key_id(name, self.public_bytes)

    def __repr__(self) -> str:  # the private key must never reach a log line
        return f"NoteSigner(name={self.name!r}, key_id={self.key_id.hex()})"

    @property
    def verifier_key(self) -> str:
        """The signed-note verifier key string auditors use."""
        return f"{self.name}+{self.key_id.hex()}+{b64encode(_ED25519 + self.public_bytes)}"

    def public_pem(self) -> str:
        """The public key as PEM (SubjectPublicKeyInfo), for tools that want it."""
        return (
            Ed25519PublicKey.from_public_bytes(self.public_bytes)
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def verifier(self) -> NoteVerifier:
        """The matching verifier."""
        return NoteVerifier(self.verifier_key)

    def sign_checkpoint(self, origin: str, size: int, root: bytes, time: datetime) -> str:
        """The full signed note for a tree head."""
        body = f"{origin}\n{size}\n{b64encode(root)}\ntime {format_time(time)}\n"
        signature = self._key.sign(body.encode())
        return f"{body}\n{_DASH}{self.name} {b64encode(self.key_id + signature)}\n"


class NoteVerifier:
    """Verifies checkpoints with a signed-note verifier key (or a PEM public key plus a name)."""

    def __init__(self, verifier_key: str) -> None:
        parts = verifier_key.strip().split("+", 2)
        if len(parts) != 3:
            raise AuditError("verifier key: expected <name>+<hex key id>+<base64 key>")
        name, key_hex, key_b64 = parts
        _check_name(name)
        try:
            raw = b64decode_strict(key_b64, "verifier key")
        except LedgerIntegrityError as exc:
            raise AuditError(str(exc)) from None
        if len(raw) != 33 or raw[:1] != _ED25519:
            raise AuditError("verifier key: not an Ed25519 signed-note key")
        if _key_id(name, raw[1:]).hex() != key_hex:
            raise AuditError("verifier key: key id does not match name and key")
        self.name = name
        self.key_id = bytes.fromhex(key_hex)
        self.public_bytes = raw[1:]
        self._key = Ed25519PublicKey.from_public_bytes(raw[1:])
        self.verifier_key = verifier_key.strip()

    def verify(self, text: str) -> Checkpoint:
        """Parse `text` and check our signature on it; raise LedgerIntegrityError naming what is wrong."""
        checkpoint = parse_checkpoint(text)
        signatures = text[len(checkpoint.body) + 1 :].splitlines()
        for line in signatures:
            if not line.startswith(_DASH):
                raise LedgerIntegrityError("checkpoint: malformed signature line")
            name, _, sig_b64 = line[len(_DASH) :].partition(" ")
            if name != self.name:
                continue
            raw = b64decode_strict(sig_b64, "checkpoint signature")
            if len(raw) != 68 or raw[:4] != self.key_id:
                continue
            try:
                self._key.verify(raw[4:], checkpoint.body.encode())
            except InvalidSignature:
                raise LedgerIntegrityError(
                    f"checkpoint for size {checkpoint.size}: signature does not verify (forged or altered head)"
                ) from None
            return checkpoint
        raise LedgerIntegrityError(f"checkpoint for size {checkpoint.size}: no signature by key {self.name}")


def parse_checkpoint(text: str) -> Checkpoint:
    """Split a checkpoint note into its fields; strict about shape, silent about signatures."""
    body, sep, rest = text.partition("\n\n")
    if not sep or not rest.endswith("\n") or "\n\n" in rest:
        raise LedgerIntegrityError("checkpoint: not a signed note (body, blank line, signature lines)")
    body += "\n"
    lines = body[:-1].split("\n")
    if len(lines) != 4 or not lines[3].startswith("time "):
        raise LedgerIntegrityError("checkpoint: expected origin, size, root hash and time lines")
    origin, size_text, root_b64, time_line = lines
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise LedgerIntegrityError(f"checkpoint: bad tree size {size_text!r}")
    root = b64decode_strict(root_b64, "checkpoint root hash")
    if len(root) != 32:
        raise LedgerIntegrityError("checkpoint: root hash is not 32 bytes")
    try:
        when = parse_time(time_line[5:])
    except ValueError:
        raise LedgerIntegrityError(f"checkpoint: bad time {time_line[5:]!r}") from None
    if format_time(when) != time_line[5:]:
        raise LedgerIntegrityError("checkpoint: non-canonical time")
    return Checkpoint(origin=origin, size=int(size_text), root=root, time=when, body=body, text=text)


def load_verifier(path: Path, name: str | None = None) -> NoteVerifier:
    """A verifier from a file holding a verifier key line, or a PEM public key (then `name` is required)."""
    text = path.read_text()
    if "BEGIN PUBLIC KEY" not in text:
        return NoteVerifier(text)
    if name is None:
        raise AuditError(f"{path}: a PEM key needs the key name (the log origin)")
    key = serialization.load_pem_public_key(text.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(f"{path}: not an Ed25519 public key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return NoteVerifier(f"{name}+{_key_id(name, raw).hex()}+{b64encode(_ED25519 + raw)}")
