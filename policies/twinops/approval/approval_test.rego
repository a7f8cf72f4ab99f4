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

t_playbook_by(user) := {"kind": "playbook", "id": "nightly-rightsize", "on_behalf_of": user}

test_user_who_started_a_playbook_run_cannot_approve_its_steps if {
	inp := object.union(t_input(t_alice, "low", 1, []), {"requester": t_playbook_by("alice")})
	d := t_decision(inp)
	d.counts == false
	d.quorum_met == false
	"self_approval" in t_codes(inp)
}

test_another_user_approves_a_step_of_a_run_started_by_hand if {
	inp := object.union(t_input(t_bob, "low", 1, []), {"requester": t_playbook_by("alice")})
	t_decision(inp).counts
}

test_a_stored_approval_by_the_user_who_started_the_run_never_counts if {
	inp := object.union(t_input(t_bob, "medium", 2, [t_prior(t_alice)]), {"requester": t_playbook_by("alice")})
	d := t_decision(inp)
	d.counts == true
	d.approvals_counted == 1
	d.quorum_met == false
}

test_a_scheduled_run_has_nobody_behind_it if {
	inp := object.union(t_input(t_alice, "low", 1, []), {"requester": {"kind": "playbook", "id": "nightly-rightsize", "on_behalf_of": null}})
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

# --- owning team: never vacuous ------------------------------------------------

t_unowned(inp) := object.union(inp, {"proposal": {"nodes": [object.union(inp.proposal.nodes[0], {"team": ""})]}})

t_lead := t_person("lee", ["sre", "sre-leads"], "platform")

test_high_risk_on_unowned_node_needs_the_fallback_group if {
	inp := t_unowned(t_input(t_bob, "high", 2, [t_prior(t_alice)]))
	d := t_decision(inp)
	d.counts
	d.quorum_met == false
	"unowned_fallback_missing" in t_pending(inp)
	not "owner_team_missing" in t_pending(inp)
}

test_high_risk_on_unowned_node_met_with_a_fallback_member if {
	d := t_decision(t_unowned(t_input(t_lead, "high", 2, [t_prior(t_alice)])))
	d.counts
	d.quorum_met
}

test_teamless_approvers_do_not_own_a_teamless_node if {
	# Before: node team "" matched approver team "", and the owner rule passed vacuously.
	nobody1 := t_person("n1", ["sre"], "")
	nobody2 := t_person("n2", ["sre"], "")
	inp := t_unowned(t_input(nobody2, "high", 2, [t_prior(nobody1)]))
	t_decision(inp).quorum_met == false
	"unowned_fallback_missing" in t_pending(inp)
}

test_teamless_approvers_do_not_own_a_team_node if {
	nobody1 := t_person("n1", ["sre"], "")
	nobody2 := t_person("n2", ["sre"], "")
	inp := t_input(nobody2, "high", 2, [t_prior(nobody1)])
	t_decision(inp).quorum_met == false
	"owner_team_missing" in t_pending(inp)
}

test_fallback_group_comes_from_config if {
	owl := t_person("ola", ["sre", "night-owls"], "edge")
	inp := t_unowned(t_input(owl, "high", 2, [t_prior(t_alice)]))
	t_decision(inp).quorum_met with data.twinops.config.approval.unowned_fallback_group as "night-owls"
	not t_decision(inp).quorum_met
}

test_low_risk_on_unowned_node_needs_no_fallback if {
	t_decision(t_unowned(t_input(t_alice, "low", 1, []))).quorum_met
}

# --- approver groups other than sre are required for real -----------------------

t_pat := t_person("pat", ["platform"], "payments")

test_group_other_than_sre_refuses_an_sre if {
	inp := t_input(t_alice, "low", 1, [])
	d := t_decision(inp) with data.twinops.config.approval.groups_by_action.scale as ["platform"]
	d.counts == false
	d.quorum_met == false
	codes := t_codes(inp) with data.twinops.config.approval.groups_by_action.scale as ["platform"]
	"not_in_approver_group" in codes
}

test_group_other_than_sre_accepts_a_member if {
	d := t_decision(t_input(t_pat, "low", 1, [])) with data.twinops.config.approval.groups_by_action.scale as ["platform"]
	d.counts
	d.quorum_met
}

test_group_other_than_sre_does_not_count_a_prior_sre_approval if {
	d := t_decision(t_input(t_pat, "medium", 2, [t_prior(t_alice)])) with data.twinops.config.approval.groups_by_action.scale as ["platform"]
	d.counts
	d.quorum_met == false
	d.approvals_counted == 1
}

test_approver_without_roles_never_counts if {
	inp := t_input(t_person("vic", [], "payments"), "low", 1, [])
	t_decision(inp).counts == false
	"not_in_approver_group" in t_codes(inp)
}

# --- a freeze window's own quorum --------------------------------------------------

# In force at t_input's `now` (2026-11-21T22:30:00Z).
t_freeze(extra) := [object.union({"name": "bf", "start": "2026-11-21T00:00:00Z", "end": "2026-11-22T00:00:00Z"}, extra)]

t_leads_freeze := t_freeze({"required_approvals": 2, "approver_groups": ["sre-leads"]})

t_lead2 := t_person("lia", ["sre", "sre-leads"], "payments")

test_freeze_refuses_quorum_without_its_group if {
	inp := t_input(t_alice, "low", 1, [])
	d := t_decision(inp) with data.twinops.config.safety.freeze_windows as t_leads_freeze
	d.counts
	d.quorum_met == false
	d.still_needed == 2
	pending := t_pending(inp) with data.twinops.config.safety.freeze_windows as t_leads_freeze
	pending == {"freeze_quorum_not_met"}
}

test_freeze_refuses_with_one_of_two_from_its_group if {
	d := t_decision(t_input(t_lead, "low", 1, [t_prior(t_alice)])) with data.twinops.config.safety.freeze_windows as t_leads_freeze
	d.counts
	d.quorum_met == false
	d.still_needed == 1
}

test_freeze_quorum_met_by_two_of_its_group if {
	inp := t_input(t_lead2, "low", 1, [t_prior(t_lead)])
	d := t_decision(inp) with data.twinops.config.safety.freeze_windows as t_leads_freeze
	d.counts
	d.quorum_met
	d.still_needed == 0
}

test_freeze_without_its_own_groups_needs_freeze_min_approvals_from_anyone if {
	w := t_freeze({})
	one := t_decision(t_input(t_alice, "low", 1, [])) with data.twinops.config.safety.freeze_windows as w
	one.quorum_met == false
	one.still_needed == 1
	two := t_decision(t_input(t_bob, "low", 1, [t_prior(t_alice)])) with data.twinops.config.safety.freeze_windows as w
	two.quorum_met
}

test_freeze_end_is_exclusive_for_approvals if {
	inp := object.union(t_input(t_alice, "low", 1, []), {"now": "2026-11-22T00:00:00Z", "expires_at": "2026-11-22T01:00:00Z"})
	d := t_decision(inp) with data.twinops.config.safety.freeze_windows as t_leads_freeze
	d.quorum_met
}

test_freeze_start_is_inclusive_for_approvals if {
	inp := object.union(t_input(t_alice, "low", 1, []), {"now": "2026-11-21T00:00:00Z"})
	d := t_decision(inp) with data.twinops.config.safety.freeze_windows as t_leads_freeze
	d.quorum_met == false
}

test_no_freeze_in_force_leaves_the_quorum_alone if {
	d := t_decision(t_input(t_alice, "low", 1, []))
	d.quorum_met
	d.pending == []
}

# --- a decision that does not contradict itself --------------------------------------

test_an_approval_that_does_not_count_never_meets_the_quorum if {
	# The quorum was met by alice's earlier approval; her second one does not count, and meets nothing.
	inp := t_input(t_alice, "low", 1, [t_prior(t_alice)])
	d := t_decision(inp)
	d.counts == false
	d.quorum_met == false
	"duplicate_approver" in t_codes(inp)
}
