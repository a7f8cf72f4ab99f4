# Tests for data.twinops.config_check and for both decisions under a bad config:
# table-driven over every key of data.json (removed, mistyped, null), plus the
# cases the "Trust" issue found failing open.
package twinops.config_check

import rego.v1

# --- fixtures ---------------------------------------------------------------

t_node := {
	"id": "checkout", "kind": "service", "tier": "standard", "team": "payments", "tags": {},
	"replicas": 4, "min_replicas": 1, "max_replicas": 40,
}

t_proposal := {
	"id": "p-1", "plan_hash": "plan-a", "blast_radius": 0.1, "predicted": {},
	"actions": [{"type": "scale", "node": "checkout", "replicas": 8}], "nodes": [t_node],
}

t_safety_input := {
	"proposal": t_proposal,
	"snapshot_age_seconds": 5,
	"history": [],
	"now": "2026-11-21T22:00:00Z",
	"requester": {"kind": "agent", "id": "agent-1"},
}

# A viewer: no approver group at all. With a usable config this approval never counts.
t_approval_input(roles) := {
	"approver": {"id": "vic", "roles": roles, "team": "payments"},
	"requester": {"kind": "agent", "id": "agent-1"},
	"proposal": t_proposal,
	"safety": {
		"allow": true, "deny": [], "risk": "low", "required_approvals": 1,
		"approver_groups": ["sre"], "auto_approve": false,
	},
	"approvals": [],
	"now": "2026-11-21T22:30:00Z",
	"expires_at": "2026-11-21T23:00:00Z",
}

t_config := data.twinops.config

# Every object key in data.json, as a path from data.twinops.config (array indexes included).
t_keys := [path |
	walk(t_config, [path, _])
	count(path) > 0
	is_string(path[count(path) - 1])
]

# Keys that may be left out: entries of the protected_restart_kinds map, a freeze window's own quorum.
t_optional(path) if {
	count(path) == 3
	path[1] == "protected_restart_kinds"
}

t_optional(path) if path[count(path) - 1] in {"required_approvals", "approver_groups"}

t_required_keys := [path | some path in t_keys; not t_optional(path)]

# ["safety", "freeze_windows", 0, "start"] -> "safety.freeze_windows[0].start"
t_setting(path) := s if {
	s := concat("", [t_part(i, p) | some i, p in path])
}

t_part(0, p) := p

t_part(i, p) := sprintf(".%s", [p]) if {
	i > 0
	is_string(p)
}

t_part(_, p) := sprintf("[%d]", [p]) if is_number(p)

# A map entry of the wrong type is reported as the map (the setting is the whole object).
t_named(path) := t_setting(array.slice(path, 0, 2)) if {
	count(path) == 3
	path[1] == "protected_restart_kinds"
} else := t_setting(path)

# A value of another type than `v`.
t_wrong(v) := sprintf("%v", [v]) if is_number(v)

t_wrong(v) := 7 if is_string(v)

t_wrong(v) := {"x": 1} if is_array(v)

t_wrong(v) := ["x"] if is_object(v)

# Edit a nested value without recursion (Rego has none): one rule per depth.
t_put(c, k, v) := object.union(object.remove(c, [k]), {k: v}) if is_object(c)

# regorus schedules a comprehension only in a rule body, so it is built there.
t_put(c, k, v) := r if {
	is_array(c)
	r := [x | some j, e in c; x := t_pick(j, k, v, e)]
}

t_pick(j, k, v, _) := v if j == k

t_pick(j, k, _, e) := e if j != k

t_at(obj, path) := object.get(obj, path, null)

t_replace(obj, path, v) := t_put(obj, path[0], v) if count(path) == 1

t_replace(obj, path, v) := t_put(obj, path[0], t_put(t_at(obj, [path[0]]), path[1], v)) if count(path) == 2

t_replace(obj, path, v) := r if {
	count(path) == 3
	inner := t_put(t_at(obj, array.slice(path, 0, 2)), path[2], v)
	r := t_put(obj, path[0], t_put(t_at(obj, [path[0]]), path[1], inner))
}

t_replace(obj, path, v) := r if {
	count(path) == 4
	inner := t_put(t_at(obj, array.slice(path, 0, 3)), path[3], v)
	mid := t_put(t_at(obj, array.slice(path, 0, 2)), path[2], inner)
	r := t_put(obj, path[0], t_put(t_at(obj, [path[0]]), path[1], mid))
}

t_remove(obj, path) := object.remove(obj, [path[0]]) if count(path) == 1

t_remove(obj, path) := t_replace(obj, array.slice(path, 0, n - 1), object.remove(t_at(obj, array.slice(path, 0, n - 1)), [path[n - 1]])) if {
	n := count(path)
	n > 1
}

t_safety(cfg) := d if {
	d := data.twinops.safety.decision with data.twinops.config as cfg with input as t_safety_input
}

t_approval(cfg, roles) := d if {
	d := data.twinops.approval.decision with data.twinops.config as cfg with input as t_approval_input(roles)
}

t_names(reasons, setting) if {
	some r in reasons
	r.code == "config_invalid"
	r.details.setting == setting
	contains(r.msg, setting)
}

# Both decisions refuse under `cfg`, each with a reason naming `setting`.
t_refused(cfg, setting) if {
	s := t_safety(cfg)
	s.allow == false
	s.auto_approve == false
	t_names(s.deny, setting)
	a := t_approval(cfg, ["sre"])
	a.counts == false
	a.quorum_met == false
	t_names(a.reasons, setting)
}

# --- the repo config is usable, and the fixtures are sound -------------------

test_repo_config_has_no_errors if {
	count(errors) == 0
	t_safety(t_config).allow == true
	t_approval(t_config, ["sre"]).counts == true
}

test_the_table_covers_every_section if {
	count(t_required_keys) >= 40
	["safety", "rate_limit", "max_actions"] in t_keys
	["safety", "freeze_windows", 0, "start"] in t_keys
	["approval", "unowned_fallback_group"] in t_keys
}

test_edit_helpers_reach_nested_keys if {
	t_remove(t_config, ["safety", "rate_limit", "max_actions"]).safety.rate_limit == {"window_minutes": 30}
	t_replace(t_config, ["safety", "freeze_windows", 0, "name"], "x").safety.freeze_windows[0].name == "x"
	t_replace(t_config, ["safety", "freeze_windows", 0, "name"], "x").safety.max_total_replicas == 400
}

# --- every key: removed, mistyped, null --------------------------------------

test_every_required_setting_removed_refuses_naming_it if {
	failures := [t_setting(path) |
		some path in t_required_keys
		not t_refused(t_remove(t_config, path), t_setting(path))
	]
	failures == []
}

test_every_setting_mistyped_refuses_naming_it if {
	failures := [t_setting(path) |
		some path in t_keys
		not t_refused(t_replace(t_config, path, t_wrong(t_at(t_config, path))), t_named(path))
	]
	failures == []
}

test_every_setting_null_refuses_naming_it if {
	failures := [t_setting(path) |
		some path in t_keys
		not t_refused(t_replace(t_config, path, null), t_named(path))
	]
	failures == []
}

test_optional_settings_may_be_left_out if {
	failures := [t_setting(path) |
		some path in t_keys
		t_optional(path)
		count(errors) > 0 with data.twinops.config as t_remove(t_config, path)
	]
	failures == []
}

# --- the cases that failed open ----------------------------------------------

test_no_config_at_all_refuses_a_viewer_and_names_the_sections if {
	a := t_approval({}, ["viewer"])
	a.counts == false
	a.quorum_met == false
	t_names(a.reasons, "approval")
	t_names(t_safety({}).deny, "safety")
}

test_approval_section_removed_refuses_a_viewer if {
	a := t_approval(object.remove(t_config, ["approval"]), ["viewer"])
	a.counts == false
	a.quorum_met == false
	t_names(a.reasons, "approval")
}

test_twin_age_as_string_refuses if {
	t_refused(t_replace(t_config, ["safety", "max_twin_age_seconds"], "120"), "safety.max_twin_age_seconds")
}

test_rate_limit_null_refuses if {
	t_refused(t_replace(t_config, ["safety", "rate_limit"], null), "safety.rate_limit")
}

test_max_replicas_per_node_as_string_refuses if {
	t_refused(t_replace(t_config, ["safety", "max_replicas_per_node"], "50"), "safety.max_replicas_per_node")
}

test_empty_risk_refuses_naming_each_missing_setting if {
	cfg := t_replace(t_config, ["safety", "risk"], {})
	t_refused(cfg, "safety.risk.medium_blast_radius")
	t_refused(cfg, "safety.risk.high_blast_radius")
	t_refused(cfg, "safety.risk.min_by_action")
}

test_loop_breaker_removed_refuses if {
	t_refused(t_remove(t_config, ["safety", "loop_breaker"]), "safety.loop_breaker")
}

test_max_total_replicas_removed_refuses if {
	t_refused(t_remove(t_config, ["safety", "max_total_replicas"]), "safety.max_total_replicas")
}

# --- values of the right type but out of range --------------------------------

test_fraction_above_one_refuses if {
	t_refused(t_replace(t_config, ["safety", "risk", "high_blast_radius"], 1.5), "safety.risk.high_blast_radius")
}

test_fractional_count_refuses if {
	t_refused(t_replace(t_config, ["safety", "rate_limit", "max_actions"], 2.5), "safety.rate_limit.max_actions")
}

test_scale_down_step_out_of_range_refuses if {
	cfg := t_replace(t_config, ["safety", "scale_down_low_risk", "max_step_fraction"], 1.5)
	t_refused(cfg, "safety.scale_down_low_risk.max_step_fraction")
	half := t_replace(t_config, ["safety", "scale_down_low_risk", "max_step_replicas"], 1.5)
	t_refused(half, "safety.scale_down_low_risk.max_step_replicas")
}

test_zero_approvals_for_a_risk_level_refuses if {
	t_refused(t_replace(t_config, ["safety", "approvals_by_risk", "low"], 0), "safety.approvals_by_risk.low")
}

test_scale_factor_below_one_refuses if {
	t_refused(t_replace(t_config, ["safety", "max_scale_factor"], 0.5), "safety.max_scale_factor")
}

test_unknown_risk_level_refuses if {
	cfg := t_replace(t_config, ["safety", "risk", "min_by_action", "restart"], "none")
	t_refused(cfg, "safety.risk.min_by_action.restart")
}

test_empty_approver_group_list_refuses if {
	t_refused(t_replace(t_config, ["approval", "groups_by_action", "scale"], []), "approval.groups_by_action.scale")
}

test_freeze_window_time_without_zone_refuses if {
	cfg := t_replace(t_config, ["safety", "freeze_windows", 0, "start"], "2025-12-24T00:00:00")
	t_refused(cfg, "safety.freeze_windows[0].start")
}

test_freeze_window_ending_before_it_starts_refuses if {
	cfg := t_replace(t_config, ["safety", "freeze_windows", 0, "end"], "2025-12-01T00:00:00Z")
	t_refused(cfg, "safety.freeze_windows[0].end")
}

test_freeze_window_that_is_not_an_object_refuses if {
	t_refused(t_replace(t_config, ["safety", "freeze_windows"], ["2025-12-24"]), "safety.freeze_windows[0]")
}

test_misspelt_freeze_window_key_refuses if {
	cfg := t_replace(t_config, ["safety", "freeze_windows", 0, "required_approval"], 3)
	t_refused(cfg, "safety.freeze_windows[0].required_approval")
}

test_empty_freeze_window_list_is_fine if {
	count(errors) == 0 with data.twinops.config.safety.freeze_windows as []
}
