# Tests for data.twinops.approval.decision: each rule in its counting and refusing case.
package twinops.approval

import rego.v1

# --- fixtures ---------------------------------------------------------------

t_person(id, roles, team) := {"id": id, "roles": roles, "team": team}

t_alice := t_person("alice", ["sre"], "payments")

t_bob := t_person("bob", ["sre"], "edge")

t_carol := t_person("carol", ["sre"], "payments")

t_safety(risk, required) := {
	"allow": true, "deny": [], "risk": risk, "required_approvals": required,
	"approver_groups": ["sre"], "auto_approve": false,
}

t_input(approver, risk, required, approvals) := {
	"approver": approver,
	"requester": {"kind": "agent", "id": "agent-1"},
	"proposal": {
		"id": "p-1", "plan_hash": "plan-a", "blast_radius": 0.1, "predicted": {},
		"actions": [{"type": "scale", "node": "checkout", "replicas": 8}],
		"nodes": [{
			"id": "checkout", "kind": "service", "tier": "standard", "team": "payments", "tags": {},
			"replicas": 4, "min_replicas": 1, "max_replicas": 40,
		}],
	},
	"safety": t_safety(risk, required),
	"approvals": approvals,
	"now": "2026-11-21T22:30:00Z",
	"expires_at": "2026-11-21T23:00:00Z",
}

t_prior(who) := {"approver": who, "at": "2026-11-21T22:10:00Z"}

t_decision(inp) := d if {
	d := decision with input as inp
}

# regorus schedules a comprehension only in a rule body, so it is built there.
t_codes(inp) := codes if {
	d := decision with input as inp
	codes := {r.code | some r in d.reasons}
}

t_pending(inp) := codes if {
	d := decision with input as inp
	codes := {r.code | some r in d.pending}
}

# --- single approval, low risk ----------------------------------------------

test_sre_approval_counts_and_meets_quorum_of_one if {
	d := t_decision(t_input(t_alice, "low", 1, []))
	d.counts == true
	d.quorum_met == true
	d.reasons == []
	d.approvals_counted == 1
	d.still_needed == 0
}

test_proposer_cannot_approve_own_proposal if {
	inp := object.union(t_input(t_alice, "low", 1, []), {"requester": {"kind": "human", "id": "alice"}})
	d := t_decision(inp)
	d.counts == false
	d.quorum_met == false
	"self_approval" in t_codes(inp)
}

test_other_human_can_approve_a_human_proposal if {
	inp := object.union(t_input(t_bob, "low", 1, []), {"requester": {"kind": "human", "id": "alice"}})
	t_decision(inp).counts
}

test_same_approver_counts_once if {
	inp := t_input(t_alice, "medium", 2, [t_prior(t_alice)])
	d := t_decision(inp)
	d.counts == false
	"duplicate_approver" in t_codes(inp)
	d.approvals_counted == 1
	d.still_needed == 1
}

test_approval_after_expiry_never_counts if {
	inp := object.union(t_input(t_alice, "low", 1, []), {"now": "2026-11-21T23:00:00Z"})
	d := t_decision(inp)
	d.counts == false
	d.quorum_met == false
	"expired" in t_codes(inp)
}

test_approval_just_before_expiry_counts if {
	t_decision(object.union(t_input(t_alice, "low", 1, []), {"now": "2026-11-21T22:59:59.999Z"})).counts
}

test_approver_outside_group_does_not_count if {
	dev := t_person("dave", ["developer"], "payments")
	inp := t_input(dev, "low", 1, [])
	t_decision(inp).counts == false
	"not_in_approver_group" in t_codes(inp)
}

test_shift_traffic_accepts_network_group if {
	net := t_person("nina", ["network"], "edge")
	inp := object.union(t_input(net, "medium", 1, []), {"proposal": {"actions": [{"type": "shift_traffic", "source": "checkout", "ratios": {"cart": 0.5}}]}})
	t_decision(inp).counts
}

test_scale_rejects_network_only_group if {
	net := t_person("nina", ["network"], "edge")
	"not_in_approver_group" in t_codes(t_input(net, "low", 1, []))
}

test_denied_proposal_cannot_be_approved if {
	inp := object.union(t_input(t_alice, "low", 1, []), {"safety": {"allow": false}})
	d := t_decision(inp)
	d.counts == false
	d.quorum_met == false
	"proposal_denied" in t_codes(inp)
	"proposal_denied" in t_pending(inp)
}

# --- quorum -----------------------------------------------------------------

test_two_of_n_needs_a_second_person if {
	d := t_decision(t_input(t_alice, "medium", 2, []))
	d.counts
	d.quorum_met == false
	d.still_needed == 1
	"quorum_not_met" in t_pending(t_input(t_alice, "medium", 2, []))
}

test_two_of_n_met_by_second_distinct_person if {
	d := t_decision(t_input(t_bob, "medium", 2, [t_prior(t_alice)]))
	d.counts
	d.quorum_met
	d.approvals_counted == 2
}

test_prior_approval_by_proposer_is_not_counted if {
	inp := object.union(t_input(t_bob, "medium", 2, [t_prior(t_alice)]), {"requester": {"kind": "human", "id": "alice"}})
	d := t_decision(inp)
	d.counts
	d.quorum_met == false
	d.approvals_counted == 1
}

test_prior_approval_after_expiry_is_not_counted if {
	late := {"approver": t_alice, "at": "2026-11-21T23:00:00Z"}
	d := t_decision(t_input(t_bob, "medium", 2, [late]))
	d.quorum_met == false
	d.approvals_counted == 1
}

test_high_risk_met_with_two_people_including_owner_team if {
	d := t_decision(t_input(t_bob, "high", 2, [t_prior(t_alice)]))
	d.counts
	d.quorum_met
}

test_high_risk_without_owner_team_not_met if {
	frank := t_person("frank", ["sre"], "data")
	inp := t_input(t_bob, "high", 2, [t_prior(frank)])
	d := t_decision(inp)
	d.counts
	d.quorum_met == false
	d.still_needed == 0
	"owner_team_missing" in t_pending(inp)
}

test_high_risk_needs_two_people_even_if_one_required if {
	inp := t_input(t_alice, "high", 1, [])
	d := t_decision(inp)
	d.counts
	d.quorum_met == false
	d.still_needed == 1
}

test_high_risk_two_from_owner_team_met if {
	d := t_decision(t_input(t_carol, "high", 2, [t_prior(t_alice)]))
	d.quorum_met
}

test_auto_approved_proposal_needs_nobody if {
	d := t_decision(t_input(t_alice, "low", 0, []))
	d.quorum_met
	d.still_needed == 0
}

test_malformed_input_never_counts if {
	d := t_decision({"approver": {"id": "alice"}})
	d.counts == false
	d.quorum_met == false
	[r.code | some r in d.reasons] == ["malformed_input"]
}
