# Approval gate: does this approval count, and is the quorum now met?
#
# Query: data.twinops.approval.decision
# Input: an ApprovalInput (see workflows/policy.py): who approves (id, roles,
# team), the proposal and its requester, the safety decision, the approvals
# already given, the time now and when the approval request expires.
# Tunables live in data.twinops.config.approval (policies/data.json); the freeze
# windows are the safety package's (data.twinops.config.safety.freeze_windows).
package twinops.approval

import rego.v1

cfg := data.twinops.config.approval

safety_cfg := data.twinops.config.safety

# Missing or mistyped settings (see ../config_check): while there are any, no approval counts.
config_ok if data.twinops.config_check.ok == true

# Evaluated only when the config is not ok (it costs a millisecond); never empty then.
config_errors := errors if {
	errors := data.twinops.config_check.errors
	count(errors) > 0
} else := {reason("config_invalid", "setting twinops.config is not usable", {"setting": "twinops.config"})}

reason(code, msg, details) := {"code": code, "msg": msg, "details": details}

approver := input.approver

now_ns := time.parse_rfc3339_ns(input.now)

expires_ns := time.parse_rfc3339_ns(input.expires_at)

action_types := {a.type | some a in input.proposal.actions}

# The teams owning the nodes the plan acts on (shift_traffic names its node `source`).
# An empty team is no team: it is never matched by an approver's (empty) team.
target_ids := {object.get(a, "node", object.get(a, "source", "")) | some a in input.proposal.actions}

owning_teams := {n.team | some n in input.proposal.nodes; n.id in target_ids; n.team != ""}

unowned_targets := sort({n.id | some n in input.proposal.nodes; n.id in target_ids; n.team == ""})

# An approver may approve only if, for every action type in the plan, one of
# their roles is among that type's approver groups. An unknown type has none.
missing_groups(who) := {t |
	some t in action_types
	groups := object.get(cfg.groups_by_action, t, [])
	count({g | some g in groups; g in who.roles}) == 0
}

# --- why this approval does not count ---------------------------------------

reasons contains r if {
	approver.id == input.requester.id
	r := reason("self_approval", sprintf("'%s' proposed this change and cannot approve it", [approver.id]), {"approver": approver.id})
}

# A playbook run started by hand is that user's change: their approval of its steps is a self-approval.
reasons contains r if {
	approver.id == object.get(input.requester, "on_behalf_of", null)
	r := reason("self_approval", sprintf("'%s' started this playbook run and cannot approve its steps", [approver.id]), {"approver": approver.id})
}

reasons contains r if {
	some prior in input.approvals
	prior.approver.id == approver.id
	r := reason("duplicate_approver", sprintf("'%s' has already approved; each approver counts once", [approver.id]), {"approver": approver.id})
}

reasons contains r if {
	now_ns >= expires_ns
	r := reason("expired", sprintf("the approval request expired at %s", [input.expires_at]), {"expires_at": input.expires_at, "now": input.now})
}

reasons contains r if {
	input.safety.allow != true
	r := reason("proposal_denied", "the safety policy denied this proposal; it cannot be approved", {})
}

reasons contains r if {
	missing := missing_groups(approver)
	count(missing) > 0
	r := reason(
		"not_in_approver_group",
		sprintf("'%s' holds none of the approver groups for %v", [approver.id, sort(missing)]),
		{"approver": approver.id, "action_types": sort(missing), "roles": approver.roles},
	)
}

counts if {
	config_ok
	input_ok
	count(reasons) == 0
}

# --- quorum -----------------------------------------------------------------

# Prior approvals are re-checked too: a stored approval never counts for its
# proposer, after expiry, or without the right group.
prior_valid contains prior.approver if {
	some prior in input.approvals
	prior.approver.id != input.requester.id
	prior.approver.id != object.get(input.requester, "on_behalf_of", null)
	time.parse_rfc3339_ns(prior.at) < expires_ns
	count(missing_groups(prior.approver)) == 0
}

counted contains a if {
	some a in prior_valid
}

counted contains approver if counts

counted_ids := {a.id | some a in counted}

required := input.safety.required_approvals

distinct_needed := cfg.high_risk_min_distinct_approvers if {
	input.safety.risk == "high"
} else := 0

# --- change freeze: the window's own quorum ----------------------------------

# Start inclusive, end exclusive, as in the safety package.
active_freezes := [w |
	some w in safety_cfg.freeze_windows
	time.parse_rfc3339_ns(w.start) <= now_ns
	now_ns < time.parse_rfc3339_ns(w.end)
]

# Per active window: how many approvals it needs, from which groups (none listed: any
# approver who counts), and how many of the counted approvers qualify.
freeze_quorums := [q |
	some w in active_freezes
	groups := object.get(w, "approver_groups", [])
	q := {
		"window": w.name,
		"required": object.get(w, "required_approvals", safety_cfg.freeze_min_approvals),
		"approver_groups": groups,
		"counted": count({a.id | some a in counted; freeze_member(a, groups)}),
	}
]

freeze_member(_, groups) if count(groups) == 0

freeze_member(a, groups) if {
	some g in groups
	g in a.roles
}

freeze_shortfalls := {(q.required - q.counted) | some q in freeze_quorums}

freeze_shortfall := max(freeze_shortfalls | {0})

# Approvals the quorum still lacks by number; a freeze may lack more of its own group.
count_needed := max([0, required - count(counted_ids), distinct_needed - count(counted_ids)])

still_needed := max([count_needed, freeze_shortfall])

pending contains r if {
	count_needed > 0
	r := reason(
		"quorum_not_met",
		sprintf("%d of %d approvals counted; %d more needed", [count(counted_ids), max([required, distinct_needed]), count_needed]),
		{"counted": count(counted_ids), "required": required, "still_needed": count_needed},
	)
}

pending contains r if {
	input.safety.risk == "high"
	count(owning_teams) > 0
	count({a.id | some a in counted; a.team in owning_teams}) == 0
	r := reason(
		"owner_team_missing",
		sprintf("a high-risk change needs an approval from the owning team %v", [sort(owning_teams)]),
		{"owning_teams": sort(owning_teams)},
	)
}

# A node nobody owns has nobody to vouch for it: the fallback group stands in.
pending contains r if {
	input.safety.risk == "high"
	count(unowned_targets) > 0
	fallback := cfg.unowned_fallback_group
	count({a.id | some a in counted; fallback in a.roles}) == 0
	r := reason(
		"unowned_fallback_missing",
		sprintf("nodes %v have no owning team; a high-risk change on them needs an approval from group '%s'", [unowned_targets, fallback]),
		{"nodes": unowned_targets, "fallback_group": fallback},
	)
}

pending contains r if {
	some q in freeze_quorums
	q.counted < q.required
	r := reason(
		"freeze_quorum_not_met",
		sprintf(
			"change freeze '%s' is in force: %d of %d approvals from %v counted",
			[q.window, q.counted, q.required, q.approver_groups],
		),
		q,
	)
}

pending contains r if {
	input.safety.allow != true
	r := reason("proposal_denied", "the safety policy denied this proposal; no quorum can approve it", {})
}

# The quorum is met by this approval: one that does not count meets nothing.
quorum_met if {
	counts
	count(pending) == 0
}

# --- decision ---------------------------------------------------------------

decision := d if {
	config_ok
	input_ok
	d := {
		"counts": counts_bool,
		"quorum_met": quorum_met_bool,
		"reasons": [r | some r in reasons],
		"pending": [r | some r in pending],
		"approvals_counted": count(counted_ids),
		"still_needed": still_needed,
	}
} else := d if {
	not config_ok
	d := {
		"counts": false,
		"quorum_met": false,
		"reasons": [r | some r in config_errors],
		"pending": [],
		"approvals_counted": 0,
		"still_needed": 0,
	}
} else := {
	"counts": false,
	"quorum_met": false,
	"reasons": [reason("malformed_input", "the input is not a well-formed ApprovalInput", {})],
	"pending": [],
	"approvals_counted": 0,
	"still_needed": 0,
}

# A rule that is not true is undefined; the decision wants plain booleans.
counts_bool := true if {
	counts
} else := false

quorum_met_bool := true if {
	quorum_met
} else := false

input_ok if {
	is_string(approver.id)
	is_array(approver.roles)
	is_string(approver.team)
	is_string(input.requester.id)
	is_array(input.proposal.actions)
	is_array(input.proposal.nodes)
	is_boolean(input.safety.allow)
	is_string(input.safety.risk)
	is_number(input.safety.required_approvals)
	is_array(input.approvals)
	is_number(now_ns)
	is_number(expires_ns)
}
