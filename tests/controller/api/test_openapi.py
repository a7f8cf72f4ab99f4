"""The OpenAPI document is the whole contract: every operation declares its answer and its problems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controller.api.app import create_app
from controller.core.settings import Settings

PROBLEM_REF = {"$ref": "#/components/schemas/ProblemBody"}


def operations(tmp_path: Path) -> dict[str, dict[str, Any]]:
    document = create_app(Settings(home=tmp_path)).openapi()
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in item.items()
    }


def test_every_api_operation_declares_its_answer_and_its_problems(tmp_path: Path) -> None:
    found = operations(tmp_path)
    assert set(found) == {
        "GET /api/v1/proposals",
        "GET /api/v1/proposals/{proposal_id}",
        "POST /api/v1/proposals/{proposal_id}/approve",
        "POST /api/v1/proposals/{proposal_id}/reject",
        "POST /api/v1/proposals/{proposal_id}/cancel",
        "GET /api/v1/remediations/{remediation_id}/trail",
        "GET /api/v1/audit/head",
        "GET /api/v1/audit/proofs/{event_id}",
        "GET /api/v1/users",
        "POST /api/v1/users",
        "POST /api/v1/users/{name}/tokens",
        "DELETE /api/v1/users/{name}/tokens",
        "POST /api/v1/users/{name}/disable",
        "POST /api/v1/users/{name}/enable",
        "GET /api/v1/playbook-runs",
        "GET /api/v1/playbook-runs/{run_id}",
        "GET /api/v1/playbooks/preapprovals",
        "POST /api/v1/playbooks/{name}/preapprovals",
        "POST /api/v1/alerts",
        "POST /api/v1/twins/{twin_id}/snapshots",
    }
    for name, operation in found.items():
        answers = operation["responses"]
        success = [code for code in answers if code.startswith("2")]
        assert len(success) == 1, name
        assert answers[success[0]]["content"]["application/json"]["schema"], name
        assert {"401", "403"} <= set(answers), name
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in answers, name
        for code, answer in answers.items():
            if code.startswith(("4", "5")):
                assert answer["content"] == {"application/problem+json": {"schema": PROBLEM_REF}}, (name, code)
    decisions = [found[f"POST /api/v1/proposals/{{proposal_id}}/{verb}"] for verb in ("approve", "reject", "cancel")]
    assert all({"404", "409"} <= set(d["responses"]) for d in decisions)
    assert "HTTPValidationError" not in json.dumps(found)


def test_request_bodies_forbid_unknown_fields(tmp_path: Path) -> None:
    schemas = create_app(Settings(home=tmp_path)).openapi()["components"]["schemas"]
    for body in ("ApproveBody", "ReasonBody", "NewUserBody"):
        assert schemas[body]["additionalProperties"] is False, body
    assert schemas["ReasonBody"]["required"] == ["reason"]
    problem = schemas["ProblemBody"]["properties"]
    assert {"type", "title", "status", "detail", "invalid-params"} <= set(problem)
