"""Loading playbooks: every shipped one loads, and each kind of mistake is refused naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.playbook import PlaybookError, Problem, ScaleStep, load_playbook

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "playbooks").glob("*.yaml"))
FILE = "playbooks/sample.yaml"

# Line numbers below are this document's.
BASE = """\
name: sample
description: a playbook for the tests
version: 1
owner: sre
target:
  kinds: [service]
  tags:
    tier: standard
triggers:
  - type: schedule
    cron: "30 2 * * *"
    timezone: Europe/Berlin
preconditions:
  - demand_utilization < 0.3 for 2h
  - forecast_peak_utilization(next=24h) < 0.6
steps:
  - name: scale-down
    action: scale
    params:
      replicas: "{{ max(min_replicas, optimal_replicas(target=0.6)) }}"
    approval: policy
    verify:
      expect: demand_utilization < 0.8
      within: 10m
limits:
  max_duration: 1h
  max_nodes: 10
"""


def refused(text: str, name: str | None = "sample") -> tuple[Problem, ...]:
    with pytest.raises(PlaybookError) as caught:
        load_playbook(text, FILE, name=name)
    return caught.value.problems


def edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def test_the_sample_loads() -> None:
    playbook = load_playbook(BASE, FILE, name="sample")
    step = playbook.steps[0]
    assert isinstance(step, ScaleStep) and step.compensation == "inverse"
    assert playbook.preconditions[0].hold_seconds == 7200.0
    assert playbook.limits.max_duration == 3600.0 and step.verify.within == 600.0


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_playbook_in_the_repo_loads(path: Path) -> None:
    playbook = load_playbook(path.read_text(encoding="utf-8"), str(path), name=path.stem)
    assert playbook.name == path.stem


def test_the_three_playbooks_ship() -> None:
    assert {p.stem for p in SHIPPED} >= {"nightly-rightsize", "prescale-daily-peak", "drain-backlog"}


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        pytest.param(edit("version: 1", "version: [1"), 4, "", "began on line 3", id="bad-yaml"),
        pytest.param(
            edit("owner: sre", "owner: sre\nowner: ops"),
            5,
            "owner",
            "duplicate key 'owner' (first on line 4)",
            id="duplicate-key",
        ),
        pytest.param(
            edit("      within: 10m", "      within: 10m\n      within: 20m"),
            25,
            "steps[0].verify.within",
            "duplicate key",
            id="duplicate-nested-key",
        ),
        pytest.param(
            edit("owner: sre", "owner: sre\ncolour: blue"), 5, "colour", "unknown field 'colour'", id="unknown-field"
        ),
        pytest.param(
            edit("    approval: policy", "    approval: policy\n    retries: 3"),
            22,
            "steps[0].retries",
            "unknown field",
            id="unknown-step-field",
        ),
        pytest.param(edit("owner: sre\n", ""), 1, "owner", "required field is missing", id="missing-field"),
        pytest.param(
            edit("      within: 10m\n", ""),
            22,
            "steps[0].verify.within",
            "required field is missing",
            id="missing-nested-field",
        ),
        pytest.param(
            edit("max_nodes: 10", "max_nodes: many"), 27, "limits.max_nodes", "valid integer", id="wrong-type"
        ),
        pytest.param(
            edit("approval: policy", "approval: sometimes"),
            21,
            "steps[0].approval",
            "'policy' or 'always'",
            id="bad-approval",
        ),
        pytest.param(
            edit("action: scale", "action: scael"),
            18,
            "steps[0].action",
            "unknown action 'scael' (known: scale, rate_limit, shift_traffic, restart)",
            id="unknown-action",
        ),
        pytest.param(
            edit("    action: scale\n", ""), 17, "steps[0].action", "required field is missing", id="missing-action"
        ),
        pytest.param(
            edit("type: schedule", "type: cron"), 10, "triggers[0].type", "unknown type 'cron'", id="unknown-trigger"
        ),
        pytest.param(
            edit("optimal_replicas(target", "optimal_replica(target"),
            20,
            "steps[0].params.replicas",
            "unknown function 'optimal_replica'; did you mean 'optimal_replicas'?",
            id="unknown-function",
        ),
        pytest.param(
            edit("demand_utilization < 0.3", "demand_utilisation < 0.3"),
            14,
            "preconditions[0]",
            "unknown belief name 'demand_utilisation'",
            id="unknown-belief",
        ),
        pytest.param(
            edit("expect: demand_utilization", "expect: utilisation"),
            23,
            "steps[0].verify.expect",
            "unknown belief name 'utilisation'",
            id="unknown-belief-in-verify",
        ),
        pytest.param(
            edit("max(min_replicas, ", "ceil(min_replicas, "),
            20,
            "steps[0].params.replicas",
            "ceil() takes 1 positional argument, 2 given",
            id="bad-arity",
        ),
        pytest.param(
            edit("(next=24h)", "(horizon=24h)"), 15, "preconditions[1]", "has no keyword 'horizon'", id="bad-keyword"
        ),
        pytest.param(edit("(next=24h)", "()"), 15, "preconditions[1]", "needs keyword next", id="missing-keyword"),
        pytest.param(
            edit("< 0.3 for 2h", "+ 0.3"), 14, "preconditions[0]", "must be a condition", id="number-not-condition"
        ),
        pytest.param(
            edit('"30 2 * * *"', '"61 2 * * *"'),
            11,
            "triggers[0].cron",
            "cron minute: 61 is outside 0..59",
            id="bad-cron",
        ),
        pytest.param(edit('"30 2 * * *"', '"30 2 * *"'), 11, "triggers[0].cron", "it needs 5", id="cron-field-count"),
        pytest.param(
            edit("Europe/Berlin", "Europe/Atlantis"),
            12,
            "triggers[0].timezone",
            "unknown time zone 'Europe/Atlantis'",
            id="bad-time-zone",
        ),
        pytest.param(
            edit("within: 10m", "within: 10 minutes"),
            24,
            "steps[0].verify.within",
            "is not a duration",
            id="bad-duration",
        ),
        pytest.param(
            edit("for 2h", "for 2 hours"), 14, "preconditions[0]", "a duration after 'for'", id="bad-hold-duration"
        ),
        pytest.param(
            edit("max_duration: 1h", "max_duration: 0s"),
            26,
            "limits.max_duration",
            "greater than 0",
            id="zero-duration",
        ),
        pytest.param(
            edit("< 0.3 for 2h", "< " + " + ".join(["0.01"] * 120)),
            14,
            "preconditions[0]",
            "at most 500 are allowed",
            id="too-long",
        ),
        pytest.param(
            edit("< 0.3 for 2h", "< " + "(" * 40 + "1" + ")" * 40),
            14,
            "preconditions[0]",
            "nests too deeply",
            id="too-deep",
        ),
        pytest.param(
            edit('"{{ max(min_replicas, optimal_replicas(target=0.6)) }}"', "2.5"),
            20,
            "steps[0].params.replicas",
            "whole number of replicas, not 2.5",
            id="fractional-replicas",
        ),
        pytest.param(
            edit('"{{ max(min_replicas, optimal_replicas(target=0.6)) }}"', "-1"),
            20,
            "steps[0].params.replicas",
            "less than 0",
            id="negative-replicas",
        ),
        pytest.param(
            edit('"{{ max(min_replicas, optimal_replicas(target=0.6)) }}"', "lots"),
            20,
            "steps[0].params.replicas",
            "'{{ expression }}', not 'lots'",
            id="not-a-template",
        ),
        pytest.param(edit("name: sample", "name: Sample_1"), 1, "name", "should match pattern", id="bad-name"),
        pytest.param(
            edit("name: sample", "name: other"),
            1,
            "name",
            "is 'other'; the file says 'sample'",
            id="name-is-not-the-file",
        ),
        pytest.param(
            edit("  kinds: [service]\n  tags:\n    tier: standard\n", "  nodes: []\n"),
            5,
            "target",
            "name at least one of nodes, kinds, tags",
            id="targets-everything",
        ),
        pytest.param(
            edit("within: 10m", "within: 2h"),
            24,
            "steps[0].verify.within",
            "longer than limits.max_duration",
            id="verify-outlasts-run",
        ),
        pytest.param(
            edit("  kinds: [service]", "  nodes: [a, b, c]").replace("max_nodes: 10", "max_nodes: 2"),
            6,
            "target.nodes",
            "more than limits.max_nodes (2)",
            id="too-many-nodes",
        ),
        pytest.param(
            edit("tier: standard", "tier: &t standard\n    team: *t"),
            9,
            "target.tags.team",
            "anchors and aliases are not allowed",
            id="alias",
        ),
    ],
)
def test_each_mistake_names_file_line_and_field(text: str, line: int, field: str, message: str) -> None:
    problems = refused(text)
    matching = [p for p in problems if p.field == field]
    assert matching, [str(p) for p in problems]
    problem = matching[0]
    assert problem.file == FILE and problem.line == line and message in problem.message, str(problem)
    assert str(problem).startswith(f"{FILE}:{line}"), str(problem)
    if field:
        assert f": {field}: " in str(problem)


def test_all_problems_are_reported_at_once() -> None:
    text = edit("owner: sre", "owner: sre\ncolour: blue").replace("action: scale", "action: scael")
    problems = refused(text)
    assert {p.field for p in problems} == {"colour", "steps[0].action"}
    assert "\n" in str(PlaybookError(problems))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty document"),
        ("- a\n- b\n", "a playbook is a mapping"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
        ("a: !!python/name:os.system\n", "not valid YAML"),
    ],
)
def test_not_a_playbook_at_all(text: str, message: str) -> None:
    problems = refused(text)
    assert len(problems) == 1 and problems[0].file == FILE and message in problems[0].message


def test_list_too_short_is_said_once_and_only_when_nothing_else_explains_it() -> None:
    assert [p.field for p in refused(edit("action: scale", "action: scael"))] == ["steps[0].action"]
    problems = refused(BASE.replace(BASE[BASE.index("steps:") : BASE.index("limits:")], "steps: []\n"))
    assert [(p.field, p.line) for p in problems] == [("steps", 16)]


def test_the_readme_example_loads() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Writing a playbook") :]
    example = section[section.index("```yaml\n") + len("```yaml\n") : section.index("```\n", 8)]
    assert load_playbook(example, "README.md", name="nightly-rightsize").name == "nightly-rightsize"
