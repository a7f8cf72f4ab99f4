"""The approval commands through a twinops API (TWINOPS_API_URL + TWINOPS_TOKEN) instead of Temporal and the database.

A laptop that holds only an API token runs `queue`, `show`, `approve`, `reject` and `cancel`
against the HTTP API, which holds the credentials to Temporal and the database. The answers
are read back into the same models the direct path prints (`InboxEntry`, `RemediationState`,
`ApprovalResult`), so `_approval_views` renders them and the output is the same either way.

An error answer (RFC 9457 problem details) becomes the usual one-line `error: <detail>`, exit 2;
an API that cannot be reached, or something that is not one, is named with TWINOPS_API_URL.
httpx is imported on first use: `--help` and the direct path never pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote

from controller.cli._common import fail, one_line

if TYPE_CHECKING:
    from pydantic import BaseModel

    from controller.core.settings import Settings
    from workflows import ApprovalResult, RemediationState
    from workflows.ports import InboxEntry

__all__ = ["QUEUE_LIMIT", "ApiClient"]

QUEUE_LIMIT = 100
"""Rows `queue` shows, newest first: the direct path's `SqlApprovalInbox.list` default."""

_PREFIX = "/api/v1"


def _fields_of(model: type[BaseModel], data: Any, what: str) -> dict[str, Any]:
    """The members of `data` that `model` knows (answers carry more, e.g. `requirement`; the models forbid extras)."""
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not a JSON object")
    return {k: v for k, v in data.items() if k in model.model_fields}


class ApiClient:
    """Calls the v1 API as the holder of one API token; every failure ends the command with one line."""

    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiClient | None:
        """A client when TWINOPS_API_URL is set (TWINOPS_TOKEN is then required), else None: go direct."""
        if not settings.api_url:
            return None
        if settings.token is None:
            fail(
                f"set TWINOPS_TOKEN to your API token: TWINOPS_API_URL ({settings.api_url}) is set, "
                "and the API accepts no call without one"
            )
        return cls(settings.api_url, settings.token.get_secret_value(), settings.api_timeout_seconds)

    def _unreachable(self, reason: str) -> NoReturn:
        fail(f"twinops API at {self.base_url} (TWINOPS_API_URL): {reason}")

    def call(self, method: str, path: str, *, params: dict[str, str | int] | None = None, body: Any = None) -> Any:
        """The JSON answer of `method path` (under /api/v1), or the command ends with what went wrong."""
        import httpx

        url = self.base_url + _PREFIX + path
        # Plain http has no TLS to verify; skipping the CA bundle saves a quarter second per command.
        verify = not url.startswith("http://")
        try:
            answer = httpx.request(
                method,
                url,
                params=params,
                json=body,
                headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
                timeout=self.timeout,
                verify=verify,
            )
        except httpx.TimeoutException:
            self._unreachable(f"no answer within {self.timeout:g}s (TWINOPS_API_TIMEOUT_SECONDS)")
        except httpx.HTTPError as exc:
            self._unreachable(f"cannot connect: {one_line(str(exc)) or type(exc).__name__}")
        try:
            data = answer.json()
        except ValueError:
            data = None
        if answer.is_success and data is not None:
            return data
        if isinstance(data, dict) and ("detail" in data or "title" in data):
            # The API's own words: the same sentence the direct path prints for the same refusal.
            fail(str(data.get("detail") or data.get("title")))
        self._unreachable(f"{method} {_PREFIX}{path} answered HTTP {answer.status_code}, not the twinops API's JSON")

    def _model(self, model: type[Any], data: Any, what: str) -> Any:
        from pydantic import ValidationError

        try:
            return model.model_validate(_fields_of(model, data, what))
        except (ValueError, ValidationError) as exc:
            first = exc.errors()[0] if isinstance(exc, ValidationError) else None
            where = f" ({'.'.join(str(p) for p in first['loc'])}: {first['msg']})" if first else ""
            self._unreachable(f"{what} is not what this CLI understands{where}; is the API another version?")

    @staticmethod
    def _path(proposal: str) -> str:
        wanted = proposal.strip()
        if not wanted:
            fail(f"unknown proposal {proposal!r}")
        return "/proposals/" + quote(wanted, safe="")

    def entries(self, include_closed: bool) -> list[InboxEntry]:
        """The queue as `queue` lists it: open proposals (all with `include_closed`), newest first."""
        from workflows.ports import InboxEntry

        params: dict[str, str | int] = {"status": "all" if include_closed else "open", "limit": QUEUE_LIMIT}
        page = self.call("GET", "/proposals", params=params)
        items = page.get("items") if isinstance(page, dict) else None
        if not isinstance(items, list):
            self._unreachable("GET /api/v1/proposals answered without items; is the API another version?")
        return [self._model(InboxEntry, item, "a proposal in the queue") for item in items]

    def proposal(self, proposal: str) -> tuple[InboxEntry, RemediationState]:
        """A proposal's inbox entry and its workflow's live state (an id or a unique prefix)."""
        from workflows import RemediationState
        from workflows.ports import InboxEntry

        detail = self.call("GET", self._path(proposal))
        if not isinstance(detail, dict):
            self._unreachable("a proposal's detail is not a JSON object")
        entry: InboxEntry = self._model(InboxEntry, detail.get("entry"), "the proposal's inbox entry")
        if detail.get("state") is None:
            fail(
                f"proposal {entry.proposal_id!r}: its workflow {entry.workflow_id!r} is gone, "
                f"no live state (the queue says {entry.status.value})"
            )
        state: RemediationState = self._model(RemediationState, detail["state"], "the proposal's live state")
        return entry, state

    def _decision(self, proposal: str, verb: str, body: dict[str, str]) -> tuple[str, ApprovalResult]:
        from workflows import ApprovalResult

        answer = self.call("POST", f"{self._path(proposal)}/{verb}", body=body)
        result: ApprovalResult = self._model(ApprovalResult, answer, f"the answer to {verb}")
        return str(answer.get("proposal_id") or proposal), result

    def approve(self, proposal: str, comment: str) -> tuple[str, ApprovalResult]:
        """Approve: the full proposal id and whether the approval counted."""
        return self._decision(proposal, "approve", {"comment": comment})

    def reject(self, proposal: str, reason: str) -> tuple[str, ApprovalResult]:
        """Reject with a reason: the full proposal id and the workflow's answer."""
        return self._decision(proposal, "reject", {"reason": reason})

    def cancel(self, proposal: str, reason: str) -> str:
        """Cancel with a reason: the full proposal id."""
        answer = self.call("POST", f"{self._path(proposal)}/cancel", body={"reason": reason})
        full = answer.get("proposal_id") if isinstance(answer, dict) else None
        if not isinstance(full, str):
            self._unreachable("the answer to cancel names no proposal; is the API another version?")
        return full
