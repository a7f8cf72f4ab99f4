# Safety gate for a remediation proposal.
#
# Query: data.twinops.safety.decision
# Input: a SafetyInput (see workflows/policy.py): the proposal (actions, affected
# nodes, predicted effect, blast radius, plan hash), the twin snapshot's age, the
# recent action history of the target nodes, the time now and the requester.
# Tunables live in data.twinops.config.safety (policies/data.json).
#
# Every deny reason is {"code", "msg", "details"} so the approval queue and the
# audit trail can show why without parsing prose.
package twinops.safety

import rego.v1

cfg := data.twinops.config.safety

# Missing or mistyped settings (see ../config_check): while there are any, every decision denies.
config_ok if data.twinops.config_check.ok == true

# Evaluated only when the config is not ok (it costs a millisecond); never empty then.
config_errors := errors if {
	errors := data.twinops.config_check.errors
	count(errors) > 0
} else := {reason("config_invalid", "setting twinops.config is not usable", {"setting": "twinops.config"})}

proposal := input.proposal

nodes_by_id := {n.id: n | some n in proposal.nodes}

now_ns := time.parse_rfc3339_ns(input.now)

reason(code, msg, details) := {"code": code, "msg": msg, "details": details}

# Rules below make one pass over the actions or nodes each and share what they can
# (action types, scale actions), because evaluation cost grows with every pass over
# a 1,000-node proposal.

# shift_traffic names its node `source`; every other action names it `node`.
targets := {object.get(a, "node", object.get(a, "source", null)) | some a in proposal.actions}

action_types := {a.type | some a in proposal.actions}

scale_actions := [a | some a in proposal.actions; a.type == "scale"]

# --- deny rules -------------------------------------------------------------

deny contains r if {
	count(proposal.actions) == 0
	r := reason("empty_plan", "the proposal has no actions", {})
}

deny contains r if {
	input.snapshot_age_seconds > cfg.max_twin_age_seconds
	r := reason(
		"stale_twin",
		sprintf("twin snapshot is %vs old; the limit is %vs", [input.snapshot_age_seconds, cfg.max_twin_age_seconds]),
		{"age_seconds": input.snapshot_age_seconds, "max_age_seconds": cfg.max_twin_age_seconds},
	)
}

deny contains r if {
	some node in targets
	not nodes_by_id[node]
	r := reason("unknown_node", sprintf("node '%s' is acted on but not described in the proposal", [node]), {"node": node})
}

deny contains r if {
	some node in targets
	kind := nodes_by_id[node].kind
	kind in cfg.unactionable_kinds
	r := reason("unactionable_kind", sprintf("node '%s' is of kind %s, which twinops never acts on", [node, kind]), {"node": node, "kind": kind})
}

deny contains r if {
	some a in scale_actions
	n := nodes_by_id[a.node]
	a.replicas < n.min_replicas
	r := reason(
		"below_min_replicas",
		sprintf("node '%s': %d replicas < min_replicas %d", [a.node, a.replicas, n.min_replicas]),
		{"node": a.node, "replicas": a.replicas, "min_replicas": n.min_replicas},
	)
}

deny contains r if {
	some a in scale_actions
	n := nodes_by_id[a.node]
	a.replicas > n.max_replicas
	r := reason(
		"above_node_max_replicas",
		sprintf("node '%s': %d replicas > max_replicas %d", [a.node, a.replicas, n.max_replicas]),
		{"node": a.node, "replicas": a.replicas, "max_replicas": n.max_replicas},
	)
}

deny contains r if {
	some a in scale_actions
	a.replicas > cfg.max_replicas_per_node
	r := reason(
		"above_policy_max_replicas",
		sprintf("node '%s': %d replicas > policy cap %d per node", [a.node, a.replicas, cfg.max_replicas_per_node]),
		{"node": a.node, "replicas": a.replicas, "max_replicas_per_node": cfg.max_replicas_per_node},
	)
}

# A step is too large when it is more than the increment in absolute terms AND more
# than the factor either way (up: to > from * f; down: from > to * f).
deny contains r if {
	some a in scale_actions
	from := nodes_by_id[a.node].replicas
	abs(a.replicas - from) > cfg.max_scale_increment
	max([from, a.replicas]) > min([from, a.replicas]) * cfg.max_scale_factor
	r := reason(
		"scale_step_too_large",
		sprintf(
			"node '%s': %d -> %d is more than x%v or %v replicas in one step",
			[a.node, from, a.replicas, cfg.max_scale_factor, cfg.max_scale_increment],
		),
		{"node": a.node, "from": from, "to": a.replicas, "max_factor": cfg.max_scale_factor, "max_increment": cfg.max_scale_increment},
	)
}

deny contains r if {
	total_replicas_after > cfg.max_total_replicas
	r := reason(
		"replica_budget_exceeded",
		sprintf("the plan leaves %d replicas in total; the budget is %d", [total_replicas_after, cfg.max_total_replicas]),
		{"total_after": total_replicas_after, "total_before": fleet_replicas_before, "budget": cfg.max_total_replicas},
	)
}

deny contains r if {
	in_freeze
	input.requester.kind != "human"
	names := [w.name | some w in active_freezes]
	r := reason(
		"change_freeze",
		sprintf("change freeze %v is in force; only a human may propose changes now", [names]),
		{"windows": names, "requester_kind": input.requester.kind},
	)
}

deny contains r if {
	some node, n in recent_action_counts
	node in targets
	n >= cfg.rate_limit.max_actions
	r := reason(
		"rate_limited",
		sprintf(
			"node '%s' already had %d actions in the last %v minutes (limit %d)",
			[node, n, cfg.rate_limit.window_minutes, cfg.rate_limit.max_actions],
		),
		{"node": node, "recent_actions": n, "max_actions": cfg.rate_limit.max_actions, "window_minutes": cfg.rate_limit.window_minutes},
	)
}

# The loop breaker, the one rule (the agent loop has no check of its own): a plan that
# already failed this often (rolled back after verification, or compensated after a failed
# step) is not retried by machines; `escalate` tells the workflow to page a human, and
# `window_hours` tells the loop how long to hold the plan back.
deny contains r if {
	failed_verifications >= cfg.loop_breaker.max_failed_verifications
	r := reason(
		"loop_breaker",
		sprintf(
			"plan %s failed %d times in the last %v hours; escalate instead of retrying",
			[proposal.plan_hash, failed_verifications, cfg.loop_breaker.window_hours],
		),
		{
			"plan_hash": proposal.plan_hash,
			"failed_verifications": failed_verifications,
			"window_hours": cfg.loop_breaker.window_hours,
			"escalate": true,
		},
	)
}

# --- helpers ----------------------------------------------------------------

# The caller may give the whole twin's replica total; without it the affected nodes are the fleet.
fleet_replicas_before := proposal.fleet_replicas if {
	is_number(proposal.fleet_replicas)
} else := affected_replicas_before

affected_replicas_before := sum([n.replicas | some n in proposal.nodes])

scale_delta := sum([(a.replicas - nodes_by_id[a.node].replicas) | some a in scale_actions; nodes_by_id[a.node]])

total_replicas_after := fleet_replicas_before + scale_delta

# Start inclusive, end exclusive: a window [start, end) covers start but not end.
active_freezes := [w |
	some w in cfg.freeze_windows
	time.parse_rfc3339_ns(w.start) <= now_ns
	now_ns < time.parse_rfc3339_ns(w.end)
]

in_freeze if count(active_freezes) > 0

rate_window_ns := (cfg.rate_limit.window_minutes * 60) * 1000000000

# Parse each history timestamp once; rules below only compare numbers.
history_ns := [{"node": h.node, "plan_hash": h.plan_hash, "outcome": h.outcome, "age_ns": now_ns - time.parse_rfc3339_ns(h.at)} |
	some h in input.history
]

# Counted per node that appears in the history (short), not per target (maybe 1,000).
recent_nodes := [h.node | some h in history_ns; h.age_ns < rate_window_ns]

recent_action_counts[node] := n if {
	some node in recent_nodes
	n := count([1 | some m in recent_nodes; m == node])
}

loop_window_ns := (cfg.loop_breaker.window_hours * 3600) * 1000000000

# Outcomes of a failed attempt as the agent loop records them (one record per action of a
# remediation, all at the time it ended: counted once per time, i.e. once per remediation).
failed_outcomes := {"verification_failed", "rolled_back"}

failed_verifications := count({h.age_ns |
	some h in history_ns
	h.plan_hash == proposal.plan_hash
	h.outcome in failed_outcomes
	h.age_ns < loop_window_ns
})

# --- risk, approvals, auto-approval -----------------------------------------

risk_levels := ["low", "medium", "high"]

risk_rank := {"low": 0, "medium": 1, "high": 2}

blast_radius_rank := 2 if {
	proposal.blast_radius >= cfg.risk.high_blast_radius
} else := 1 if {
	proposal.blast_radius >= cfg.risk.medium_blast_radius
} else := 0

# A small scale-down (below) is not raised by its blast radius: it removes a little capacity
# from nodes whose tier the config trusts with that. Everything else still applies to it:
# the action floors, freezes, never_auto_approve, the step and rate limits, the replica
# budget, the loop breaker. (Checked only when the blast radius would raise the risk.)
blast_rank := 0 if {
	blast_radius_rank > 0
	small_scale_down
} else := blast_radius_rank

# Small (cfg.scale_down_low_risk): every action is a scale to fewer replicas than the node
# runs, each removing at most max_step_replicas and at most max(1, floor(max_step_fraction x
# the node's replicas)), and every node of the proposal is in one of `tiers`. A step is a
# whole number, so `step <= max(1, from * fraction)` is the same bound without the floor.
small_scale_down if {
	action_types == {"scale"}
	limits := cfg.scale_down_low_risk
	every a in scale_actions {
		from := nodes_by_id[a.node].replicas
		step := from - a.replicas
		step >= 1
		step <= limits.max_step_replicas
		step <= max([1, from * limits.max_step_fraction])
	}
	every n in proposal.nodes {
		n.tier in limits.tiers
	}
}

# An action type the config does not know is treated as high risk.
action_ranks := {risk_rank[object.get(cfg.risk.min_by_action, t, "high")] | some t in action_types}

non_compensable contains t if {
	some t in action_types
	t in cfg.non_compensable_actions
}

non_compensable_rank := 2 if {
	count(non_compensable) > 0
} else := 0

risk := risk_levels[max(action_ranks | {blast_rank, non_compensable_rank})]

protected_restarts contains node if {
	some a in proposal.actions
	a.type == "restart"
	node := a.node
	cfg.protected_restart_kinds[nodes_by_id[node].kind]
}

# A freeze window may ask for more approvals than freeze_min_approvals (its own quorum).
approval_floors := array.concat(
	[cfg.approvals_by_risk[risk]],
	array.concat(
		[cfg.protected_restart_kinds[nodes_by_id[node].kind] | some node in protected_restarts],
		[object.get(w, "required_approvals", cfg.freeze_min_approvals) | some w in active_freezes],
	),
)

required_approvals := 0 if {
	auto_approve
} else := max(approval_floors)

# During a freeze the window's own groups are asked too (the approval policy needs their quorum).
approver_groups := sort({g |
	some t in action_types
	some g in object.get(data.twinops.config.approval.groups_by_action, t, [])
} | {g |
	some w in active_freezes
	some g in object.get(w, "approver_groups", [])
})

allow if {
	config_ok
	input_ok
	count(deny) == 0
}

requester_may_auto_approve if input.requester.kind in cfg.auto_approve_requesters.kinds

requester_may_auto_approve if input.requester.id in cfg.auto_approve_requesters.ids

never_auto_approved if {
	some n in proposal.nodes
	n.tier in cfg.never_auto_approve.tiers
}

never_auto_approved if {
	some n in proposal.nodes
	n.kind in cfg.never_auto_approve.kinds
}

never_auto_approved if {
	some n in proposal.nodes
	n.id in cfg.never_auto_approve.nodes
}

default auto_approve := false

auto_approve if {
	allow
	risk == "low"
	requester_may_auto_approve
	not in_freeze
	count(non_compensable) == 0
	count(protected_restarts) == 0
	not never_auto_approved
}

# A config or an input without the expected shape would leave rules undefined and the
# deny set empty, so the decision is only computed for a usable config and a well-formed input.
decision := d if {
	config_ok
	input_ok
	d := {
		"allow": allow_bool,
		"deny": [r | some r in deny],
		"risk": risk,
		"required_approvals": required_approvals,
		"approver_groups": approver_groups,
		"auto_approve": auto_approve,
	}
} else := d if {
	not config_ok
	d := {
		"allow": false,
		"deny": [r | some r in config_errors],
		"risk": "high",
		"required_approvals": 0,
		"approver_groups": [],
		"auto_approve": false,
	}
} else := {
	"allow": false,
	"deny": [reason("malformed_input", "the input is not a well-formed SafetyInput", {})],
	"risk": "high",
	"required_approvals": 0,
	"approver_groups": [],
	"auto_approve": false,
}

allow_bool := true if {
	allow
} else := false

input_ok if {
	is_object(proposal)
	is_string(proposal.id)
	is_string(proposal.plan_hash)
	is_number(proposal.blast_radius)
	is_array(proposal.actions)
	is_array(proposal.nodes)
	is_number(input.snapshot_age_seconds)
	is_array(input.history)
	is_string(input.requester.kind)
	is_string(input.requester.id)
	is_number(now_ns)
}
