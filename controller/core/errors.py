"""twinops' exception tree, drawn whole, and the controller's part of it. Messages name the offending thing.

Every error twinops raises on purpose derives from `TwinopsError`, so `except TwinopsError`
catches them all and the CLI prints each as one line. The root lives in `twinops`, below
every layer, because workflows/ and the layers under it may not import controller/ and yet
raise into the same tree. A class lives beside what raises it: [module] names where, when
that is not here; "also a ..." names its second base.

TwinopsError                     the root, re-exported here                       [twinops.errors]
 ├── SnapshotError               not a valid twin.v1 document (also a ValueError)  [twin.contract]
 ├── HistoryError                not one twin's snapshots in time order (also a ValueError)  [twin.history]
 ├── ScenarioError               a scenario that cannot be simulated (also a ValueError)  [twin.scenario]
 ├── TwinSourceError             no fresh, valid snapshot; fail closed (also a RuntimeError)  [twin.sources]
 │    └── StaleSnapshotError     the newest snapshot is too old to act on         [twin.sources]
 ├── DesiresError                a desires document that does not validate (also a ValueError)  [agents.desires.model]
 ├── PlaybookError               a bad playbook: file, line, field of each (also a ValueError)  [agents.playbook.errors]
 ├── ExpressionError             outside the playbook expression language (also a ValueError)  [agents.playbook.errors]
 ├── EvaluationError             a playbook expression with no value here (also a ValueError)  [agents.playbook.errors]
 ├── ActuatorError               estate refused (`permanent`) or unreachable (also a RuntimeError)  [workflows.ports]
 ├── NotifierError               not delivered; may be `permanent` (also a RuntimeError)  [workflows.ports]
 ├── AuditEventConflict          an event id already recorded with other content  [workflows.audit]
 ├── ConfigurationError          settings or files that make no sense
 ├── RuntimeUnavailableError     Temporal dev server binary missing / not ready
 │    └── LoopUnavailableError   a twin's agent loop not running or not answering  [controller.app.twin_events]
 ├── PolicyError                 policy engine failed (the gate turns it into deny)
 │    ├── PolicyEvaluationError  no usable decision; `code` names why (policy_timeout, ...)
 │    └── PolicyConfigError      the bundle's data.json lacks a setting or mistypes it; names it
 ├── AuditError                  audit ledger problems
 │    ├── LedgerConflictError    same event id appended with different content
 │    │    └── EventConflictError  the SQL ledger's (also an AuditEventConflict)  [controller.adapters.audit.ledger]
 │    └── LedgerIntegrityError   verification found tampering
 ├── NotFoundError               unknown id (remediation, event, user, playbook)
 │    └── AmbiguousIdError       an id prefix that matches more than one thing
 ├── ConflictError               the thing already exists (a user name taken)
 ├── ApprovalRefusedError        the workflow refused an approval call            [controller.app.approval_service]
 ├── DemandHistoryBusyError      store still on earlier calls (also a RuntimeError) [controller.adapters.demand_history]
 ├── PreapprovalError            a pre-approval not given as asked (times, window) [controller.app.preapprovals]
 ├── AuthenticationError         unknown or revoked API token, disabled user (also a PermissionError)
 │    └── IssuerUnreachableError the OIDC issuer's keys could not be fetched     [controller.adapters.oidc]
 └── AuthorizationError          authenticated, but the role is too low (also a PermissionError)

Outside the tree, on purpose (tests/controller/core/test_errors.py holds the same list):
- `controller.adapters.policy.engine_process.EngineError`: the engine's child process imports only the
  standard library and regorus; `controller.adapters.policy.engine` turns it into PolicyEvaluationError.
- `controller.adapters.policy.engine_pool._AbandonedError`: a private signal for a request nobody waits
  for any more; it never reaches a caller.
- `controller.api.problems.Problem`: an HTTP answer (RFC 9457 problem details) a handler raises; a
  `TwinopsError` reaching the API is turned into one.
- `controller.api.web.render.SignInRequired`: a page's signal to redirect to /login.
- `controller.api.signin_oidc._SignInError`: a private signal the OIDC sign-in turns into an error page.
"""

from __future__ import annotations

from twinops import TwinopsError

__all__ = [
    "AmbiguousIdError",
    "AuditError",
    "AuthenticationError",
    "AuthorizationError",
    "ConfigurationError",
    "ConflictError",
    "LedgerConflictError",
    "LedgerIntegrityError",
    "NotFoundError",
    "PolicyConfigError",
    "PolicyError",
    "PolicyEvaluationError",
    "RuntimeUnavailableError",
    "TwinopsError",
]


class ConfigurationError(TwinopsError):
    """Settings or input files that cannot be used as given."""


class RuntimeUnavailableError(TwinopsError):
    """The workflow engine could not be started or reached."""


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
