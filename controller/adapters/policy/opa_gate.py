"""The production policy gate: queries an OPA server that serves the same bundle.

The adapter pushes nothing: OPA loads `policies/` itself (`opa run --server
--bundle policies/`), and this gate POSTs the input to `v1/data/twinops/...`.
Decisions are stamped with the revision and SHA-256 of the bundle the controller
was deployed with (`settings.policies_dir`), which deployment ships to OPA unchanged.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from opa_client import AsyncOpaClient
from pydantic import BaseModel

from controller.adapters.policy.gate import FailClosedGate
from controller.core.errors import ConfigurationError, PolicyEvaluationError


class OpaQueryClient(Protocol):
    """The slice of `opa_client.AsyncOpaClient` the gate uses; tests pass a fake."""

    async def query_rule(self, input_data: dict[str, Any], package_path: str, rule_name: str | None = None) -> Any:
        """POST the input to v1/data/<package_path>/<rule_name> and return the response body."""
        ...


def _client_for(url: str, timeout_seconds: float) -> AsyncOpaClient:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"TWINOPS_OPA_URL {url!r}: expected http(s)://host[:port]")
    if parts.path not in ("", "/"):
        raise ConfigurationError(f"TWINOPS_OPA_URL {url!r}: the OPA API is queried at the server root; drop the path")
    port = parts.port or (443 if parts.scheme == "https" else 8181)
    # No retries: the gate's own deadline bounds the whole query, and a retry storm helps nobody.
    return AsyncOpaClient(
        host=parts.hostname, port=port, ssl=parts.scheme == "https", timeout=timeout_seconds, retries=0
    )


class OpaPolicyGate(FailClosedGate):
    """Evaluates decisions on an OPA server at `url`; every failure is a deny."""

    engine_name = "opa"

    def __init__(
        self,
        url: str,
        *,
        bundle_revision: str = "",
        bundle_sha256: str = "",
        timeout_seconds: float = 2.0,
        client: OpaQueryClient | None = None,
    ) -> None:
        super().__init__(bundle_revision=bundle_revision, bundle_sha256=bundle_sha256, timeout_seconds=timeout_seconds)
        self.url = url
        self._client: OpaQueryClient | None = client
        self._owned: AsyncOpaClient | None = None
        if client is None:
            _client_for(url, timeout_seconds)  # reject a bad URL at startup, not at the first decision

    async def _get_client(self) -> OpaQueryClient:
        if self._client is None:
            owned = _client_for(self.url, self.timeout_seconds)
            await owned.__aenter__()
            self._owned = owned
            self._client = owned
        return self._client

    async def _evaluate(self, query: str, input: BaseModel) -> Any:
        package, _, rule = query.removeprefix("data.").rpartition(".")
        client = await self._get_client()
        try:
            body = await client.query_rule(
                input_data=input.model_dump(mode="json"), package_path=package.replace(".", "/"), rule_name=rule
            )
        except aiohttp.ClientResponseError as exc:
            raise PolicyEvaluationError("policy_error", f"OPA at {self.url} answered {exc.status} for {query}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise PolicyEvaluationError("policy_unreachable", f"OPA at {self.url} unreachable: {exc}") from exc
        if not isinstance(body, dict):
            raise PolicyEvaluationError("policy_malformed_decision", f"OPA at {self.url}: response is not an object")
        if "result" not in body:
            raise PolicyEvaluationError("policy_undefined", f"{query} is undefined on OPA at {self.url}")
        return body["result"]

    async def aclose(self) -> None:
        """Close the HTTP session, if this gate opened one."""
        if self._owned is not None:
            await self._owned.close_connection()
            self._owned = None
            self._client = None
