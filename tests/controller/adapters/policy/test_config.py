"""A missing or mistyped setting fails closed: the loader refuses the bundle and the Rego denies, both naming it.

The table is every object key of policies/data.json, found by walking the file (so a
new setting is covered the day it is added), each removed, given another type, and
set to null.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import regorus

from controller.adapters.policy import RefusingGate, RegorusPolicyGate, load_bundle, make_policy_gate, read_bundle
from controller.adapters.policy.engine import build_engine
from controller.core.errors import PolicyConfigError
from controller.core.settings import Settings
from workflows.policy import APPROVAL_QUERY, SAFETY_QUERY, ApprovalInput, SafetyInput

from .conftest import CASES, POLICIES, REPO_DATA, MakeBundle

Path_ = tuple[str | int, ...]
CONFIG: dict[str, Any] = REPO_DATA["twinops"]["config"]


def _keys(value: Any, path: Path_ = ()) -> Iterator[Path_]:
    """Every object key under `value`, as a path (array indexes included)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*path, key)
            yield from _keys(inner, (*path, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _keys(inner, (*path, i))


def _optional(path: Path_) -> bool:
    # Entries of the protected_restart_kinds map, and a freeze window's own quorum, may be left out.
    return (len(path) == 3 and path[1] == "protected_restart_kinds") or path[-1] in {
        "required_approvals",
        "approver_groups",
    }


def _setting(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _named(path: Path_) -> str:
    # A map entry of the wrong type is the map's problem (Rego names the map; pydantic names the entry in it).
    return _setting(path[:2]) if len(path) == 3 and path[1] == "protected_restart_kinds" else _setting(path)


def _wrong(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return 7
    if isinstance(value, list):
        return {"x": 1}
    return ["x"]


def _edit(path: Path_, value: Any = ..., *, remove: bool = False) -> dict[str, Any]:
    """The repo data with the setting at `path` removed or replaced."""
    data = copy.deepcopy(REPO_DATA)
    parent: Any = data["twinops"]["config"]
    for part in path[:-1]:
        parent = parent[part]
    if remove:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return data


def _value(path: Path_) -> Any:
    value: Any = CONFIG
    for part in path:
        value = value[part]
    return value


KEYS = list(_keys(CONFIG))
REQUIRED = [p for p in KEYS if not _optional(p)]
# (id, data, the setting the refusal must name)
MUTATIONS: list[tuple[str, dict[str, Any], str]] = [
    *((f"removed:{_setting(p)}", _edit(p, remove=True), _setting(p)) for p in REQUIRED),
    *((f"mistyped:{_setting(p)}", _edit(p, _wrong(_value(p))), _named(p)) for p in KEYS),
    *((f"null:{_setting(p)}", _edit(p, None), _named(p)) for p in KEYS),
]


def _input(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((CASES / f"{name}.json").read_text())["input"]
    return doc


SAFETY_IN = SafetyInput.model_validate(_input("safety_small_scale_auto"))
APPROVAL_IN = ApprovalInput.model_validate(_input("approval_counts_low"))
VIEWER_IN = APPROVAL_IN.model_copy(
    update={"approver": APPROVAL_IN.approver.model_copy(update={"id": "vic", "roles": ["viewer"]})}
)


def test_the_table_covers_every_section() -> None:
    assert len(REQUIRED) >= 40
    settings = {_setting(p) for p in KEYS}
    assert {"safety.rate_limit.max_actions", "safety.freeze_windows[0].start", "approval.unowned_fallback_group"} <= (
        settings
    )


def test_repo_config_is_valid() -> None:
    assert load_bundle(POLICIES).data["twinops"]["config"] == CONFIG


def _write(make_bundle: MakeBundle, data: dict[str, Any] | None) -> Path:
    return make_bundle({"twinops/x.rego": "package twinops.x\n"}, data=data)


@pytest.mark.parametrize(("data", "setting"), [(d, s) for _, d, s in MUTATIONS], ids=[n for n, _, _ in MUTATIONS])
def test_loader_refuses_naming_the_setting(make_bundle: MakeBundle, data: dict[str, Any], setting: str) -> None:
    with pytest.raises(PolicyConfigError) as info:
        load_bundle(_write(make_bundle, data))
    first = info.value.settings[0]
    assert first == setting or first.startswith(setting + "."), info.value.settings
    assert f"twinops.config.{setting}" in str(info.value)


@pytest.mark.parametrize("path", [p for p in KEYS if _optional(p)], ids=[_setting(p) for p in KEYS if _optional(p)])
def test_optional_settings_may_be_left_out(make_bundle: MakeBundle, path: Path_) -> None:
    load_bundle(_write(make_bundle, _edit(path, remove=True)))


@pytest.fixture(scope="module")
def engine() -> regorus.Engine:
    return build_engine(load_bundle(POLICIES))


def _decide(engine: regorus.Engine, data: dict[str, Any], query: str, input: Any) -> dict[str, Any]:
    engine.clear_data()
    engine.add_data_json(json.dumps(data))
    engine.set_input_json(input.model_dump_json())
    decision: dict[str, Any] = json.loads(engine.eval_rule_as_json(query))
    return decision


@pytest.mark.parametrize(("data", "setting"), [(d, s) for _, d, s in MUTATIONS], ids=[n for n, _, _ in MUTATIONS])
def test_rego_denies_naming_the_setting_where_the_loader_is_bypassed(
    engine: regorus.Engine, data: dict[str, Any], setting: str
) -> None:
    # What an OPA server handed the same data.json would answer.
    safety = _decide(engine, data, SAFETY_QUERY, SAFETY_IN)
    assert (safety["allow"], safety["auto_approve"]) == (False, False)
    assert {r["code"] for r in safety["deny"]} == {"config_invalid"}
    assert setting in {r["details"]["setting"] for r in safety["deny"]}
    approval = _decide(engine, data, APPROVAL_QUERY, VIEWER_IN)
    assert (approval["counts"], approval["quorum_met"]) == (False, False)
    assert setting in {r["details"]["setting"] for r in approval["reasons"]}


def test_missing_data_json_is_refused_by_the_loader(make_bundle: MakeBundle) -> None:
    with pytest.raises(PolicyConfigError, match=r"no data\.json"):
        load_bundle(_write(make_bundle, None))


ISSUE_CASES = {
    "no-data-json": (None, "twinops.config"),
    "approval-removed": ({"twinops": {"config": {"safety": CONFIG["safety"]}}}, "approval"),
    "twin-age-string": (_edit(("safety", "max_twin_age_seconds"), "120"), "safety.max_twin_age_seconds"),
    "rate-limit-null": (_edit(("safety", "rate_limit"), None), "safety.rate_limit"),
    "replicas-per-node-string": (_edit(("safety", "max_replicas_per_node"), "50"), "safety.max_replicas_per_node"),
    "risk-empty": (_edit(("safety", "risk"), {}), "safety.risk"),
    "loop-breaker-removed": (_edit(("safety", "loop_breaker"), remove=True), "safety.loop_breaker"),
    "budget-removed": (_edit(("safety", "max_total_replicas"), remove=True), "safety.max_total_replicas"),
}


@pytest.mark.parametrize(("data", "setting"), list(ISSUE_CASES.values()), ids=list(ISSUE_CASES))
async def test_the_gate_built_from_settings_fails_closed_naming_the_setting(
    make_bundle: MakeBundle, data: dict[str, Any] | None, setting: str
) -> None:
    gate = make_policy_gate(Settings(policies_dir=_write(make_bundle, data)))
    assert isinstance(gate, RefusingGate)
    safety = await gate.evaluate_safety(SAFETY_IN)
    assert safety.allow is False and safety.auto_approve is False
    assert [r.code for r in safety.deny] == ["config_invalid"]
    assert safety.deny[0].details["setting"].startswith(setting)
    assert setting in safety.deny[0].msg
    assert safety.bundle_revision == "test-1" and len(safety.bundle_sha256) == 64
    approval = await gate.evaluate_approval(VIEWER_IN)
    assert approval.counts is False and approval.quorum_met is False
    assert [r.code for r in approval.reasons] == ["config_invalid"]


@pytest.mark.parametrize(
    ("data", "setting"), [v for v in ISSUE_CASES.values() if v[0] is not None], ids=list(ISSUE_CASES)[1:]
)
async def test_the_regorus_gate_denies_a_bad_config_handed_past_the_loader(data: dict[str, Any], setting: str) -> None:
    gate = RegorusPolicyGate(dataclasses.replace(read_bundle(POLICIES), data=data), processes=1)
    try:
        safety = await gate.evaluate_safety(SAFETY_IN)
        approval = await gate.evaluate_approval(VIEWER_IN)
    finally:
        gate.close()
    assert safety.allow is False and safety.auto_approve is False
    assert any(r.code == "config_invalid" and r.details["setting"].startswith(setting) for r in safety.deny)
    assert approval.counts is False and approval.quorum_met is False
    assert any(r.details.get("setting", "").startswith(setting) for r in approval.reasons)


@pytest.mark.parametrize(
    "path",
    [("safety", "freeze_windows", 0, "required_approval"), ("safety", "max_twin_age_secs"), ("approval", "group")],
    ids=_setting,
)
def test_loader_refuses_a_misspelt_setting(make_bundle: MakeBundle, path: Path_) -> None:
    # A typo in an optional key would silently leave its default in force.
    with pytest.raises(PolicyConfigError, match="not a known setting") as info:
        load_bundle(_write(make_bundle, _edit(path, 3)))
    assert info.value.settings == [_setting(path)]


def test_rego_refuses_a_misspelt_freeze_window_key(engine: regorus.Engine) -> None:
    data = _edit(("safety", "freeze_windows", 0, "required_approval"), 3)
    safety = _decide(engine, data, SAFETY_QUERY, SAFETY_IN)
    assert safety["allow"] is False
    assert [r["details"]["setting"] for r in safety["deny"]] == ["safety.freeze_windows[0].required_approval"]
