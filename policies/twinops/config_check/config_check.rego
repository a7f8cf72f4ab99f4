# Every setting the safety and approval rules read, present and of the right type.
#
# Query: data.twinops.config_check.ok (true when the config is usable), and
# data.twinops.config_check.errors (one reason per setting at fault) when it is not.
# Both decisions deny while `ok` is not true: a missing or mistyped setting would
# otherwise leave its rule undefined, and an undefined deny rule allows.
#
# `ok` is written out setting by setting because every decision evaluates it and
# regorus takes ~1 ms for the table-driven `errors`; `errors` runs only on a bad
# config. config_check_test.rego holds the two to the same verdict for every key.
# The controller checks the same settings when it loads the bundle
# (controller/policy/config.py); this is the check that still holds on an OPA server
# that was handed a bad data.json.
package twinops.config_check

import rego.v1

config := data.twinops.config if {
	is_object(data.twinops.config)
} else := {}

# A value no data.json can hold (JSON has no sets), standing in for "absent".
absent := {"twinops.config_check.absent"}

# setting (dotted path under data.twinops.config) -> kind
settings := {
	"safety.max_twin_age_seconds": "number",
	"safety.max_replicas_per_node": "count",
	"safety.max_total_replicas": "count",
	"safety.max_scale_factor": "factor",
	"safety.max_scale_increment": "count",
	"safety.rate_limit.max_actions": "count",
	"safety.rate_limit.window_minutes": "number",
	"safety.loop_breaker.max_failed_verifications": "count",
	"safety.loop_breaker.window_hours": "number",
	"safety.risk.medium_blast_radius": "fraction",
	"safety.risk.high_blast_radius": "fraction",
	"safety.risk.min_by_action.scale": "risk_level",
	"safety.risk.min_by_action.rate_limit": "risk_level",
	"safety.risk.min_by_action.shift_traffic": "risk_level",
	"safety.risk.min_by_action.restart": "risk_level",
	"safety.scale_down_low_risk.tiers": "strings",
	"safety.scale_down_low_risk.max_step_fraction": "fraction",
	"safety.scale_down_low_risk.max_step_replicas": "count",
	"safety.non_compensable_actions": "strings",
	"safety.unactionable_kinds": "strings",
	"safety.protected_restart_kinds": "counts_by_name",
	"safety.approvals_by_risk.low": "positive",
	"safety.approvals_by_risk.medium": "positive",
	"safety.approvals_by_risk.high": "positive",
	"safety.freeze_min_approvals": "count",
	"safety.never_auto_approve.tiers": "strings",
	"safety.never_auto_approve.kinds": "strings",
	"safety.never_auto_approve.nodes": "strings",
	"safety.auto_approve_requesters.kinds": "strings",
	"safety.auto_approve_requesters.ids": "strings",
	"safety.freeze_windows": "array",
	"approval.groups_by_action.scale": "groups",
	"approval.groups_by_action.rate_limit": "groups",
	"approval.groups_by_action.shift_traffic": "groups",
	"approval.groups_by_action.restart": "groups",
	"approval.high_risk_min_distinct_approvers": "count",
	"approval.unowned_fallback_group": "name",
}

# Each freeze window: required keys, then optional ones.
window_settings := {"name": "name", "start": "time", "end": "time"}

window_optional := {"required_approvals": "count", "approver_groups": "groups"}

window_keys := {k | some k, _ in object.union(window_settings, window_optional)}

expected := {
	"number": "a number >= 0",
	"count": "a whole number >= 0",
	"positive": "a whole number >= 1",
	"factor": "a number >= 1",
	"fraction": "a number from 0 to 1",
	"risk_level": "one of low, medium, high",
	"strings": "a list of strings",
	"groups": "a non-empty list of group names",
	"name": "a non-empty string",
	"time": "an RFC 3339 time with a zone, e.g. 2025-12-24T00:00:00Z",
	"array": "a list",
	"counts_by_name": "an object of whole numbers >= 0",
	"object": "an object",
}

# [0-9], not \d: regorus compiles the pattern on every call, and \d (all of Unicode's digits) costs 0.5 ms.
rfc3339 := `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`

is_count(v) if {
	is_number(v)
	v >= 0
	floor(v) == v
}

valid("number", v) if {
	is_number(v)
	v >= 0
}

valid("count", v) if is_count(v)

valid("positive", v) if _positive(v)

valid("factor", v) if {
	is_number(v)
	v >= 1
}

valid("fraction", v) if {
	is_number(v)
	v >= 0
	v <= 1
}

valid("risk_level", v) if v in {"low", "medium", "high"}

valid("strings", v) if {
	is_array(v)
	every x in v {
		is_string(x)
	}
}

valid("groups", v) if {
	is_array(v)
	count(v) > 0
	every x in v {
		is_string(x)
		x != ""
	}
}

valid("name", v) if {
	is_string(v)
	v != ""
}

valid("time", v) if {
	is_string(v)
	regex.match(rfc3339, v)
}

valid("array", v) if is_array(v)

valid("counts_by_name", v) if {
	is_object(v)
	every n in v {
		is_count(n)
	}
}

valid("object", v) if is_object(v)

got(v) := "absent" if {
	v == absent
} else := type_name(v)

problem(setting, kind, v) := {
	"code": "config_invalid",
	"msg": sprintf("setting twinops.config.%s is %s; it must be %s", [setting, got(v), expected[kind]]),
	"details": {"setting": setting, "expected": expected[kind], "got": got(v)},
}

# The objects that hold the settings (safety, safety.rate_limit, ...) must be objects too.
containers := {concat(".", array.slice(parts, 0, n)): "object" |
	some setting, _ in settings
	parts := split(setting, ".")
	some n in numbers.range(1, count(parts) - 1)
}

specs := object.union(containers, settings)

# Only the outermost problem is reported: `rate_limit: null` is one reason, not three.
errors contains r if {
	some setting, kind in specs
	parts := split(setting, ".")
	is_object(object.get(config, array.slice(parts, 0, count(parts) - 1), absent))
	v := object.get(config, parts, absent)
	not valid(kind, v)
	r := problem(setting, kind, v)
}

windows := w if {
	w := config.safety.freeze_windows
	is_array(w)
} else := []

errors contains r if {
	some i, w in windows
	not is_object(w)
	r := problem(sprintf("safety.freeze_windows[%d]", [i]), "object", w)
}

errors contains r if {
	some i, w in windows
	is_object(w)
	some key, kind in window_settings
	v := object.get(w, key, absent)
	not valid(kind, v)
	r := problem(sprintf("safety.freeze_windows[%d].%s", [i, key]), kind, v)
}

errors contains r if {
	some i, w in windows
	is_object(w)
	some key, kind in window_optional
	v := object.get(w, key, absent)
	v != absent
	not valid(kind, v)
	r := problem(sprintf("safety.freeze_windows[%d].%s", [i, key]), kind, v)
}

# A misspelt optional key (required_approval) would silently leave the window's quorum at its default.
errors contains r if {
	some i, w in windows
	is_object(w)
	some key in object.keys(w) - window_keys
	setting := sprintf("safety.freeze_windows[%d].%s", [i, key])
	r := {
		"code": "config_invalid",
		"msg": sprintf("setting twinops.config.%s is not a known setting of a freeze window", [setting]),
		"details": {"setting": setting, "expected": sprintf("one of %v", [sort(window_keys)]), "got": "unknown"},
	}
}

errors contains r if {
	some i, w in windows
	is_object(w)
	valid("time", object.get(w, "start", absent))
	valid("time", object.get(w, "end", absent))
	time.parse_rfc3339_ns(w.end) <= time.parse_rfc3339_ns(w.start)
	setting := sprintf("safety.freeze_windows[%d].end", [i])
	r := {
		"code": "config_invalid",
		"msg": sprintf("setting twinops.config.%s (%s) is not after its start (%s)", [setting, w.end, w.start]),
		"details": {"setting": setting, "expected": "a time after start", "got": w.end},
	}
}

# --- the fast verdict every decision evaluates ---------------------------------

ok if {
	s := config.safety
	_number(s.max_twin_age_seconds)
	is_count(s.max_replicas_per_node)
	is_count(s.max_total_replicas)
	is_number(s.max_scale_factor)
	s.max_scale_factor >= 1
	is_count(s.max_scale_increment)
	is_count(s.rate_limit.max_actions)
	_number(s.rate_limit.window_minutes)
	is_count(s.loop_breaker.max_failed_verifications)
	_number(s.loop_breaker.window_hours)
	_fraction(s.risk.medium_blast_radius)
	_fraction(s.risk.high_blast_radius)
	every t in ["scale", "rate_limit", "shift_traffic", "restart"] {
		s.risk.min_by_action[t] in {"low", "medium", "high"}
	}
	_strings(s.scale_down_low_risk.tiers)
	_fraction(s.scale_down_low_risk.max_step_fraction)
	is_count(s.scale_down_low_risk.max_step_replicas)
	_strings(s.non_compensable_actions)
	_strings(s.unactionable_kinds)
	is_object(s.protected_restart_kinds)
	every n in s.protected_restart_kinds {
		is_count(n)
	}
	_positive(s.approvals_by_risk.low)
	_positive(s.approvals_by_risk.medium)
	_positive(s.approvals_by_risk.high)
	is_count(s.freeze_min_approvals)
	_strings(s.never_auto_approve.tiers)
	_strings(s.never_auto_approve.kinds)
	_strings(s.never_auto_approve.nodes)
	_strings(s.auto_approve_requesters.kinds)
	_strings(s.auto_approve_requesters.ids)
	is_array(s.freeze_windows)
	every w in s.freeze_windows {
		_window(w)
	}
	a := config.approval
	every t in ["scale", "rate_limit", "shift_traffic", "restart"] {
		_groups(a.groups_by_action[t])
	}
	is_count(a.high_risk_min_distinct_approvers)
	_name(a.unowned_fallback_group)
}

# An allowed proposal that is not auto-approved needs someone to approve it.
_positive(v) if {
	is_count(v)
	v >= 1
}

_number(v) if {
	is_number(v)
	v >= 0
}

_fraction(v) if {
	is_number(v)
	v >= 0
	v <= 1
}

_strings(v) if {
	is_array(v)
	every x in v {
		is_string(x)
	}
}

# One function per kind: a call to `valid` tries each of its eleven bodies.
_groups(v) if {
	is_array(v)
	count(v) > 0
	every x in v {
		is_string(x)
		x != ""
	}
}

_name(v) if {
	is_string(v)
	v != ""
}

_time(v) if {
	is_string(v)
	regex.match(rfc3339, v)
}

_window(w) if {
	is_object(w)
	count(object.keys(w) - window_keys) == 0
	_name(object.get(w, "name", null))
	_time(object.get(w, "start", null))
	_time(object.get(w, "end", null))
	time.parse_rfc3339_ns(w.start) < time.parse_rfc3339_ns(w.end)
	is_count(object.get(w, "required_approvals", 0))
	_groups(object.get(w, "approver_groups", ["-"]))
}
