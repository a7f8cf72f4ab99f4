"""The event contract: kinds, payload models, actors and times are checked before any store sees them."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from controller.adapters.audit.canonical import canonical_json, entry_bytes, entry_fields
from tests.controller.adapters.audit.factory import T0, remediation_trail
from workflows.audit import PAYLOAD_MODELS, AuditEventInput, EventKind, ProposedPayload


def base(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "event_id": "wf:1",
        "time": T0,
        "remediation_id": "rem-1",
        "actor": "agent:planner",
        "kind": "approved",
        "payload": {"by": "user:ann", "rule": "one_sre"},
    }
    event.update(changes)
    return event


def test_every_kind_has_a_payload_model() -> None:
    assert set(PAYLOAD_MODELS) == set(EventKind)


def test_unknown_kind_is_rejected_naming_the_kind() -> None:
    with pytest.raises(ValidationError, match="unknown event kind 'teleported'"):
        AuditEventInput.model_validate(base(kind="teleported"))


def test_payload_must_fit_its_kind() -> None:
    with pytest.raises(ValidationError, match=r"payload does not fit kind 'approved' \(ApprovedPayload\): rule"):
        AuditEventInput.model_validate(base(payload={"by": "user:ann"}))
    with pytest.raises(ValidationError, match="colour: Extra inputs are not permitted"):
        AuditEventInput.model_validate(base(payload={"by": "user:ann", "rule": "r", "colour": "red"}))


@pytest.mark.parametrize("actor", ["agent:planner", "user:ann@example.com", "playbook:nightly-scale", "system"])
def test_actors_accepted(actor: str) -> None:
    assert AuditEventInput.model_validate(base(actor=actor)).actor == actor


@pytest.mark.parametrize("actor", ["root", "agent:", "user:has space", "System", "playbook:a b"])
def test_actors_rejected(actor: str) -> None:
    with pytest.raises(ValidationError, match="actor"):
        AuditEventInput.model_validate(base(actor=actor))


def test_naive_time_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        AuditEventInput.model_validate(base(time=datetime(2026, 1, 1)))


def test_payload_models_and_dicts_give_identical_events() -> None:
    model = ProposedPayload(beliefs={}, plan={"actions": []}, rationale="why")
    from_model = AuditEventInput.model_validate(base(kind="proposed", payload=model))
    from_dict = AuditEventInput.model_validate(
        base(kind="proposed", payload={"rationale": "why", "plan": {"actions": []}, "beliefs": {}})
    )
    assert from_model == from_dict
    assert isinstance(from_model.typed_payload(), ProposedPayload)


def test_event_survives_a_json_round_trip_unchanged() -> None:
    # Temporal's data converter sends events as JSON; the leaf must not change on the way.
    for event in remediation_trail():
        again = AuditEventInput.model_validate_json(event.model_dump_json())
        assert entry_bytes(entry_fields(again, 3)) == entry_bytes(entry_fields(event, 3))


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": [1.5, "ü", None]}) == '{"a":[1.5,"ü",null],"b":1}'.encode()
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
