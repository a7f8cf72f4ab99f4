"""The playbook model: its parts, its JSON Schema (in sync with playbooks/schema.json), and its public names."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # ships no type stubs; only its validator is used
import pytest
import yaml
from pydantic import ValidationError

import agents.playbook
from agents.playbook import (
    FindingTrigger,
    Playbook,
    RateLimitStep,
    RestartStep,
    ScaleStep,
    ShiftTrafficStep,
    Target,
    load_playbook,
    render_json_schema,
)
from agents.playbook.cron import check_cron, check_time_zone
from twin.contract import NodeKind

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "playbooks" / "schema.json"
SHIPPED = sorted((REPO / "playbooks").glob("*.yaml"))

VERIFY = {"expect": "demand_utilization < 0.8", "within": "10m"}


def document(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "p",
        "description": "d",
        "version": 1,
        "owner": "sre",
        "target": {"nodes": ["api"]},
        "triggers": [{"type": "finding", "kinds": ["at_risk"]}],
        "steps": [{"action": "scale", "params": {"replicas": 3}, "verify": VERIFY}],
        "limits": {"max_duration": "1h", "max_nodes": 1},
    }
    return doc | changes


def test_schema_file_is_in_sync() -> None:
    assert SCHEMA_FILE.read_text() == render_json_schema(), "run: twinops playbooks schema > playbooks/schema.json"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_playbooks_satisfy_the_published_schema(path: Path) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize(
    "bad",
    [
        document(colour="blue"),
        document(steps=[{"action": "scael", "params": {"replicas": 3}, "verify": VERIFY}]),
        document(steps=[{"action": "scale", "params": {"replicas": "three"}, "verify": VERIFY}]),
        document(limits={"max_duration": "1 hour", "max_nodes": 1}),
    ],
)
def test_the_schema_refuses_what_the_model_refuses(bad: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(bad)
    with pytest.raises(ValidationError):
        Playbook.model_validate(bad)


def test_every_action_of_the_plan_library_is_a_step() -> None:
    steps = [
        {"action": "scale", "params": {"replicas": "{{ replicas + 1 }}"}, "verify": VERIFY},
        {"action": "rate_limit", "params": {"max_rps": None}, "verify": VERIFY},
        {"action": "rate_limit", "params": {"max_rps": 250.5}, "verify": VERIFY},
        {"action": "shift_traffic", "params": {"ratios": {"b": 0.5, "c": "{{ 1 - 0.5 }}"}}, "verify": VERIFY},
        {"action": "restart", "verify": VERIFY, "approval": "always"},
    ]
    playbook = Playbook.model_validate(document(steps=steps))
    expected = (ScaleStep, RateLimitStep, RateLimitStep, ShiftTrafficStep, RestartStep)
    assert [type(s).__name__ for s in playbook.steps] == [k.__name__ for k in expected]
    assert [s.compensation for s in playbook.steps] == ["inverse"] * 4 + ["none"]
    assert [s.approval for s in playbook.steps] == ["policy"] * 4 + ["always"]


def test_a_restart_has_no_inverse() -> None:
    steps = [{"action": "restart", "verify": VERIFY, "compensation": "inverse"}]
    with pytest.raises(ValidationError, match="compensation"):
        Playbook.model_validate(document(steps=steps))


def test_a_playbook_round_trips_through_its_json_form() -> None:
    for path in SHIPPED:
        playbook = load_playbook(path.read_text(), str(path))
        dumped = playbook.model_dump(mode="json")
        assert Playbook.model_validate(dumped) == playbook
        jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(dumped)


def test_parameters_keep_their_literal_or_their_expression() -> None:
    steps = [
        {"action": "scale", "params": {"replicas": 3}, "verify": VERIFY},
        {"action": "scale", "params": {"replicas": "{{optimal_replicas(target=0.6)}}"}, "verify": VERIFY},
    ]
    first, second = Playbook.model_validate(document(steps=steps)).steps
    assert isinstance(first, ScaleStep) and isinstance(second, ScaleStep)
    assert first.params.replicas.literal == 3 and first.params.replicas.formula is None
    assert second.params.replicas.formula is not None and second.params.replicas.literal is None
    assert second.params.replicas.source == "{{ optimal_replicas(target=0.6) }}"


def test_the_model_is_frozen() -> None:
    playbook = Playbook.model_validate(document())
    with pytest.raises(ValidationError):
        playbook.name = "q"  # type: ignore[misc]


def test_targets_match_every_criterion_given() -> None:
    target = Target(kinds=(NodeKind.SERVICE,), tags={"tier": "standard"})
    assert target.selects("api", NodeKind.SERVICE, {"tier": "standard", "team": "x"})
    assert not target.selects("api", NodeKind.QUEUE, {"tier": "standard"})
    assert not target.selects("api", NodeKind.SERVICE, {"tier": "critical"})
    assert Target(nodes=("api",)).selects("api", NodeKind.DATABASE, {})
    assert not Target(nodes=("api",)).selects("web", NodeKind.SERVICE, {})
    with pytest.raises(ValidationError, match="at least one of nodes, kinds, tags"):
        Target()


def test_finding_triggers_name_detection_kinds() -> None:
    trigger = FindingTrigger.model_validate({"type": "finding", "kinds": ["at_risk", "predicted"]})
    assert [k.value for k in trigger.kinds] == ["at_risk", "predicted"]
    with pytest.raises(ValidationError):
        FindingTrigger.model_validate({"type": "finding", "kinds": ["on_fire"]})


@pytest.mark.parametrize(
    "cron",
    ["30 2 * * *", "*/15 * * * *", "0 7-19/2 * * MON-FRI", "0 0 1,15 JAN,jul *", "0 0 * * 0", "0 0 * * 7", "@daily"],
)
def test_valid_cron(cron: str) -> None:
    assert check_cron(cron) == cron


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * *", "needs 5"),
        ("* * * * * *", "needs 5"),
        ("60 * * * *", "minute: 60 is outside 0..59"),
        ("* 24 * * *", "hour: 24"),
        ("* * 0 * *", "day of month: 0"),
        ("* * * 13 *", "month: 13"),
        ("* * * * 8", "day of week: 8"),
        ("* * * FOO *", "not a number or a name"),
        ("5-1 * * * *", "runs backwards"),
        ("*/0 * * * *", "bad step"),
        ("5/10 * * * *", "needs '\\*' or a range"),
        ("?", "needs 5"),
        ("@sometimes", "unknown cron macro"),
        ("CRON_TZ=UTC 0 0 * * *", "needs 5"),
    ],
)
def test_invalid_cron(cron: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_cron(cron)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
def test_valid_time_zones(zone: str) -> None:
    assert check_time_zone(zone) == zone


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "/etc/localtime", "CEST+2"])
def test_invalid_time_zones(zone: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        check_time_zone(zone)


def test_all_is_complete_and_documented() -> None:
    exported = set(agents.playbook.__all__)
    public = {n for n, v in vars(agents.playbook).items() if not n.startswith("_") and not inspect.ismodule(v)}
    assert public == exported
    for name in exported:
        value = getattr(agents.playbook, name)
        if inspect.isclass(value) or inspect.isfunction(value):  # constants and aliases: documented where defined
            assert inspect.getdoc(value), name
