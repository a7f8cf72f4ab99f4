"""schemathesis against `/openapi.json`: no 5xx, and every answer is one the document declares.

Every operation gets a bounded, reproducible run (15 generated requests each, derandomized)
as an admin, plus the requests the generator cannot guess: the real proposal waiting for
approval (with a demand forecast on its target) and its audit events, so the large answers (a
proposal in full, its forecast, a trail, a proof)
are checked against their schemas with real data. Checks: not a server error, status code,
content type and body schema conformance; the stateful and negative-data checks are left out
because random ids only ever reach 404s there, which says nothing about the contract.

schemathesis calls the app through its own ASGI client on its own thread and event loop; the
test waits in a thread, so the worker (on the test's loop) keeps running the workflow meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from controller.adapters.audit import SqlAuditLedger
from tests.controller.api.conftest import Api, Pending, close, start_pending, with_forecast

pytestmark = pytest.mark.integration

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 15
BOUNDED = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def fuzz(schema: Any, admin: dict[str, str]) -> list[str]:
    """Run every operation's bounded examples; the operations that ran, by label."""
    ran = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @BOUNDED
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(headers=admin, checks=CHECKS)

        check()
        ran.append(operation.label)
    return ran


def known(schema: Any, admin: dict[str, str], pending: Pending, event_id: str) -> list[int]:
    """The requests only real ids make: a waiting proposal, its trail and proofs, decisions on it."""
    calls = [
        ("GET", "/api/v1/proposals/{proposal_id}", {"proposal_id": pending.proposal_id}, None),
        ("GET", "/api/v1/proposals/{proposal_id}", {"proposal_id": pending.proposal_id[:10]}, None),
        ("GET", "/api/v1/remediations/{remediation_id}/trail", {"remediation_id": pending.proposal_id}, None),
        ("GET", "/api/v1/audit/proofs/{event_id}", {"event_id": event_id}, None),
        ("GET", "/api/v1/audit/head", {}, None),
        ("GET", "/api/v1/proposals", {}, None),
        ("POST", "/api/v1/proposals/{proposal_id}/approve", {"proposal_id": pending.proposal_id}, {"comment": "ok"}),
        ("POST", "/api/v1/proposals/{proposal_id}/approve", {"proposal_id": pending.proposal_id}, {}),  # twice: 409
        ("POST", "/api/v1/proposals/{proposal_id}/reject", {"proposal_id": pending.proposal_id}, {"reason": "done"}),
        ("POST", "/api/v1/proposals/{proposal_id}/cancel", {"proposal_id": pending.proposal_id}, {"reason": "done"}),
    ]
    statuses = []
    for method, path, parameters, body in calls:
        operation = schema[path][method]
        case = operation.Case(path_parameters=parameters, **({"body": body} if body is not None else {}))
        statuses.append(case.call_and_validate(headers=admin, checks=CHECKS).status_code)
    return statuses


@pytest_asyncio.fixture
async def pending(api: Api) -> AsyncIterator[Pending]:
    """A remediation waiting for approval whose target's belief carries a demand forecast (the detail's
    `forecast` object is checked against its schema with real data too); rejected after the test."""
    found = await start_pending(api, proposal=with_forecast(api.stack.proposal())[0])
    yield found
    await close(api, found)


async def test_every_operation_answers_within_its_schema(api: Api, pending: Pending) -> None:
    ledger = api.stack.services.ledger
    assert isinstance(ledger, SqlAuditLedger)
    ledger.publish_head()  # as the workers' timer would: the proofs below have a head to lead to
    event_id = ledger.trail_sync(pending.proposal_id)[0].event_id
    admin = api.auth("ada")
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)

    ran = await asyncio.to_thread(fuzz, schema, admin)
    statuses = await asyncio.to_thread(known, schema, admin, pending, event_id)
    detail = await api.get(f"/api/v1/proposals/{pending.proposal_id}", "ada")
    assert detail.json()["forecast"]["planning_rps"] == 1950.4  # the forecast was there to be checked

    declared = {f"{method.upper()} {path}" for path, item in api.app.openapi()["paths"].items() for method in item}
    assert set(ran) == declared
    # Real data reached the real paths: the proposal, its trail and proof, an approval that counted, the
    # second approval and the decisions after it refused with 409 (cancelled last, after the reject).
    assert statuses == [200, 200, 200, 200, 200, 200, 200, 409, 200, 409], statuses
