"""The controller's exception tree. Messages name the offending thing.

TwinopsError
 ├── ConfigurationError          settings or files that make no sense
 ├── RuntimeUnavailableError     Temporal dev server binary missing / not ready
 ├── TwinUnavailableError        no fresh, valid twin snapshot (fail closed: no action)
 ├── PolicyError                 policy engine failed (the gate turns it into deny)
 │    ├── PolicyEvaluationError  no usable decision; `code` names why (policy_timeout, ...)
 │    └── PolicyConfigError      the bundle's data.json lacks a setting or mistypes it; names it
 ├── AuditError                  audit ledger problems
 │    ├── LedgerConflictError    same event id appended with different content
 │    └── LedgerIntegrityError   verification found tampering
 ├── NotFoundError               unknown id (remediation, event, user, playbook)
 │    └── AmbiguousIdError       an id prefix that matches more than one thing
 ├── ConflictError               the thing already exists (a user name taken)
 ├── AuthenticationError         unknown or revoked API token, disabled user (also a PermissionError)
 └── AuthorizationError          authenticated, but the role is too low (also a PermissionError)
"""

from __future__ import annotations


class TwinopsError(Exception):
    """Base of every error twinops raises on purpose."""


class ConfigurationError(TwinopsError):
    """Settings or input files that cannot be used as given."""


class RuntimeUnavailableError(TwinopsError):
    """The workflow engine could not be started or reached."""


class TwinUnavailableError(TwinopsError):
    """No fresh, valid twin snapshot could be had; no action may be taken."""


class PolicyError(TwinopsError):
    """The policy engine could not produce a decision."""


class PolicyEvaluationError(PolicyError):
    """An evaluation gave no usable decision; `code` is the deny reason code the gate reports."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PolicyConfigError(PolicyError):
    """A bundle whose data.json misses a setting the rules read, or gives it the wrong type.

    `settings` lists the offending settings as dotted paths under data.twinops.config.
    """

    def __init__(self, settings: list[str], message: str) -> None:
        super().__init__(message)
        self.settings = settings


class AuditError(TwinopsError):
    """The audit ledger refused or failed an operation."""


class LedgerConflictError(AuditError):
    """An event id was appended twice with different content."""


class LedgerIntegrityError(AuditError):
    """Verification found the ledger altered."""


class NotFoundError(TwinopsError):
    """An id that names nothing known."""


class AmbiguousIdError(NotFoundError):
    """An id prefix that matches more than one thing; the message lists some of them."""


class ConflictError(TwinopsError):
    """Creating something that already exists."""


class AuthenticationError(TwinopsError, PermissionError):
    """No principal: the token is unknown or revoked, or its user is disabled."""


class AuthorizationError(TwinopsError, PermissionError):
    """A known principal whose role does not allow the operation."""
