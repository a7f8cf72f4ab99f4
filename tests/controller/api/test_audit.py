"""The audit endpoints: a remediation's trail, the newest signed head, and inclusion proofs checked offline.

The API signs nothing: a proof is against a head the writers signed, and an event newer than
that head is a 409 until the next one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from controller.adapters.audit import InclusionProof, NoteVerifier, SqlAuditLedger, verify_inclusion_proof
from controller.adapters.temporal_server import TemporalRuntime
from controller.api.app import create_app
from controller.api.context import ApiContext
from controller.core.settings import Settings
from tests.controller.api.conftest import PROBLEM_JSON, Api, Pending
from workflows.audit import AuditEventInput, EventKind

pytestmark = pytest.mark.integration


async def test_the_head_is_404_until_one_is_signed(temporal: TemporalRuntime, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    SqlAuditLedger.from_settings(settings)  # an empty ledger, as a worker's first start leaves it
    ctx = await ApiContext.open(settings, client=temporal.client)
    token = ctx.identities.add_user("vera", "viewer")
    transport = httpx.ASGITransport(app=create_app(settings, context=ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        answer = await http.get("/api/v1/audit/head", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM_JSON
    assert answer.json()["detail"] == (
        "the audit log has no signed head yet; the writers sign one within the head interval"
    )
    assert ctx.ledger().latest_head() is None  # asking signed nothing
    await ctx.close()


async def test_trail_head_and_proofs(api: Api, pending: Pending) -> None:
    trail = await api.get(f"/api/v1/remediations/{pending.proposal_id}/trail", "vera")
    assert trail.status_code == 200, trail.text
    events = trail.json()["events"]
    assert trail.json()["remediation_id"] == pending.proposal_id
    kinds = [e["kind"] for e in events]
    assert kinds[:3] == ["proposed", "policy_evaluated", "approval_requested"], kinds
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)

    ledger = api.stack.services.ledger
    assert isinstance(ledger, SqlAuditLedger)
    signed = ledger.publish_head()  # as the workers' head timer would
    head = (await api.get("/api/v1/audit/head", "vera")).json()
    assert head["tree_size"] == signed.tree_size and head["root_hash"] == signed.root_hash
    assert head["origin"] == ledger.origin and head["checkpoint"] == signed.checkpoint
    verifier = NoteVerifier(head["verifier_key"])
    assert verifier.verify(head["checkpoint"]).size == head["tree_size"]

    for event in events:
        answer = await api.get(f"/api/v1/audit/proofs/{event['event_id']}", "vera")
        assert answer.status_code == 200, answer.text
        proof = InclusionProof.model_validate(answer.json())
        assert proof.tree_size == head["tree_size"] and proof.entry["event_id"] == event["event_id"]
        assert verify_inclusion_proof(proof, verifier).root.hex() == head["root_hash"]

    # An event newer than the head: the proof waits for the next head, and asking signs none.
    late = ledger.append_sync(
        AuditEventInput(
            event_id=f"api-test/{pending.proposal_id}/late",
            time=datetime.now(UTC),
            remediation_id=pending.proposal_id,
            actor="system",
            kind=EventKind.DETECTED,
            payload={"twin_id": "shop"},
        )
    )
    pending_head = await api.get(f"/api/v1/audit/proofs/{late.event_id}", "vera")
    assert pending_head.status_code == 409 and pending_head.headers["content-type"] == PROBLEM_JSON
    assert "a head is pending" in pending_head.json()["detail"]
    assert (await api.get("/api/v1/audit/head", "vera")).json()["tree_size"] == head["tree_size"]


async def test_unknown_remediations_and_events_are_404(api: Api) -> None:
    for path in ["/api/v1/remediations/p-nothing/trail", "/api/v1/audit/proofs/no/such/event"]:
        answer = await api.get(path, "vera")
        assert answer.status_code == 404 and answer.headers["content-type"] == PROBLEM_JSON, path
    assert (await api.get("/api/v1/remediations/p-nothing/trail", "vera")).json()["detail"] == (
        "remediation 'p-nothing': no audit events"
    )
    assert (await api.get("/api/v1/audit/head")).status_code == 401
