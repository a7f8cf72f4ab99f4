# Tests for data.twinops.safety.decision: every rule in its allow and deny case.
# Inputs are built from small helper rules and overridden with object.union.
package twinops.safety

import rego.v1

# --- fixtures ---------------------------------------------------------------

t_node(id, kind, tier, replicas) := {
	"id": id, "kind": kind, "tier": tier, "team": "payments", "tags": {},
	"replicas": replicas, "min_replicas": 1, "max_replicas": 40,
}

t_checkout := t_node("checkout", "service", "standard", 4)

t_scale(node, replicas) := {"type": "scale", "node": node, "replicas": replicas}

t_input(actions, nodes) := {
	"proposal": {
		"id": "p-1", "plan_hash": "plan-a", "blast_radius": 0.1, "predicted": {},
		"actions": actions, "nodes": nodes,
	},
	"snapshot_age_seconds": 5,
	"history": [],
	"now": "2026-11-21T22:00:00Z",
	"requester": {"kind": "agent", "id": "agent-1"},
}

t_base := t_input([t_scale("checkout", 8)], [t_checkout])

t_scale_from(from, to) := t_input([t_scale("checkout", to)], [object.union(t_checkout, {"replicas": from, "max_replicas": 100})])

t_history(node, at, plan, outcome) := {"at": at, "node": node, "action_type": "scale", "plan_hash": plan, "outcome": outcome}

# regorus schedules a comprehension only in a rule body, so it is built there.
t_codes(inp) := codes if {
	d := decision with input as inp
	codes := {r.code | some r in d.deny}
}

t_decision(inp) := d if {
	d := decision with input as inp
}

t_freeze := [{"name": "bf", "start": "2026-11-27T00:00:00Z", "end": "2026-11-30T00:00:00Z"}]

t_at(inp, now) := object.union(inp, {"now": now})

# --- baseline ---------------------------------------------------------------

test_small_scale_up_by_agent_is_allowed_and_auto_approved if {
	d := t_decision(t_base)
	d.allow == true
	d.deny == []
	d.risk == "low"
	d.auto_approve == true
	d.required_approvals == 0
	d.approver_groups == ["sre"]
}

test_empty_plan_denied if {
	"empty_plan" in t_codes(t_input([], [t_checkout]))
}

# --- stale twin -------------------------------------------------------------

test_stale_twin_denied if {
	codes := t_codes(object.union(t_base, {"snapshot_age_seconds": 121}))
	"stale_twin" in codes
}

test_twin_exactly_at_max_age_allowed if {
	t_decision(object.union(t_base, {"snapshot_age_seconds": 120})).allow
}

# --- nodes ------------------------------------------------------------------

test_unknown_node_denied if {
	"unknown_node" in t_codes(t_input([t_scale("ghost", 2)], [t_checkout]))
}

test_shift_traffic_source_must_be_described if {
	a := {"type": "shift_traffic", "source": "ghost", "ratios": {"checkout": 0.5}}
	"unknown_node" in t_codes(t_input([a], [t_checkout]))
}

test_external_node_never_acted_on if {
	ext := t_node("psp", "external", "standard", 1)
	"unactionable_kind" in t_codes(t_input([{"type": "rate_limit", "node": "psp", "max_rps": 10}], [ext]))
}

# --- replica bounds ---------------------------------------------------------

test_below_min_replicas_denied if {
	n := object.union(t_checkout, {"min_replicas": 3})
	"below_min_replicas" in t_codes(t_input([t_scale("checkout", 2)], [n]))
}

test_above_node_max_replicas_denied if {
	"above_node_max_replicas" in t_codes(t_input([t_scale("checkout", 41)], [object.union(t_checkout, {"replicas": 40})]))
}

test_node_max_replicas_reached_allowed if {
	t_decision(t_input([t_scale("checkout", 40)], [object.union(t_checkout, {"replicas": 38})])).allow
}

test_above_policy_max_replicas_denied if {
	"above_policy_max_replicas" in t_codes(t_scale_from(45, 51))
}

test_policy_max_replicas_reached_allowed if {
	t_decision(t_scale_from(45, 50)).allow
}

# --- scale step -------------------------------------------------------------

test_doubling_allowed if {
	t_decision(t_scale_from(20, 40)).allow
}

test_more_than_double_and_more_than_ten_denied if {
	"scale_step_too_large" in t_codes(t_scale_from(20, 41))
}

test_plus_ten_from_one_allowed if {
	t_decision(t_scale_from(1, 11)).allow
}

test_plus_eleven_from_one_denied if {
	"scale_step_too_large" in t_codes(t_scale_from(1, 12))
}

test_halving_allowed if {
	t_decision(t_scale_from(40, 20)).allow
}

test_scale_down_beyond_half_and_ten_denied if {
	"scale_step_too_large" in t_codes(t_scale_from(40, 15))
}

# --- replica budget ---------------------------------------------------------

test_budget_reached_exactly_allowed if {
	# 396 + (8 - 4) = 400 = budget
	t_decision(object.union(t_base, {"proposal": {"fleet_replicas": 396}})).allow
}

test_budget_exceeded_denied if {
	"replica_budget_exceeded" in t_codes(object.union(t_base, {"proposal": {"fleet_replicas": 397}}))
}

test_budget_without_fleet_total_counts_affected_nodes if {
	d := t_decision(t_base) with data.twinops.config.safety.max_total_replicas as 7
	"replica_budget_exceeded" in {r.code | some r in d.deny}
}

# --- change freeze (start inclusive, end exclusive) ---------------------------

test_freeze_start_is_inclusive if {
	codes := t_codes(t_at(t_base, "2026-11-27T00:00:00Z")) with data.twinops.config.safety.freeze_windows as t_freeze
	"change_freeze" in codes
}

test_freeze_end_is_exclusive if {
	d := t_decision(t_at(t_base, "2026-11-30T00:00:00Z")) with data.twinops.config.safety.freeze_windows as t_freeze
	d.allow
	d.auto_approve
}

test_just_before_freeze_allowed if {
	d := t_decision(t_at(t_base, "2026-11-26T23:59:59.999Z")) with data.twinops.config.safety.freeze_windows as t_freeze
	d.allow
}

test_last_instant_of_freeze_denied if {
	codes := t_codes(t_at(t_base, "2026-11-29T23:59:59.999Z")) with data.twinops.config.safety.freeze_windows as t_freeze
	"change_freeze" in codes
}

test_freeze_window_with_offset_timezone if {
	codes := t_codes(t_at(t_base, "2026-11-27T01:30:00+02:00")) with data.twinops.config.safety.freeze_windows as t_freeze
	not "change_freeze" in codes
}

test_freeze_lets_human_propose_but_never_auto_approves if {
	inp := object.union(t_at(t_base, "2026-11-28T12:00:00Z"), {"requester": {"kind": "human", "id": "alice"}})
	d := t_decision(inp) with data.twinops.config.safety.freeze_windows as t_freeze
	d.allow
	d.auto_approve == false
	d.required_approvals == 2
}

# --- rate limit -------------------------------------------------------------

test_rate_limit_denies_when_max_reached if {
	h := [
		t_history("checkout", "2026-11-21T21:50:00Z", "p-x", "verified"),
		t_history("checkout", "2026-11-21T21:40:00Z", "p-y", "executed"),
		t_history("checkout", "2026-11-21T21:31:00Z", "p-z", "rolled_back"),
	]
	"rate_limited" in t_codes(object.union(t_base, {"history": h}))
}

test_rate_limit_allows_below_max if {
	h := [
		t_history("checkout", "2026-11-21T21:50:00Z", "p-x", "verified"),
		t_history("checkout", "2026-11-21T21:40:00Z", "p-y", "executed"),
	]
	t_decision(object.union(t_base, {"history": h})).allow
}

test_rate_limit_window_excludes_action_exactly_window_old if {
	h := [
		t_history("checkout", "2026-11-21T21:50:00Z", "p-x", "verified"),
		t_history("checkout", "2026-11-21T21:40:00Z", "p-y", "executed"),
		t_history("checkout", "2026-11-21T21:30:00Z", "p-z", "executed"),
	]
	t_decision(object.union(t_base, {"history": h})).allow
}

test_rate_limit_counts_only_the_target_node if {
	h := [
		t_history("cart", "2026-11-21T21:50:00Z", "p-x", "verified"),
		t_history("cart", "2026-11-21T21:40:00Z", "p-y", "executed"),
		t_history("cart", "2026-11-21T21:35:00Z", "p-z", "executed"),
	]
	t_decision(object.union(t_base, {"history": h})).allow
}

# --- loop breaker -----------------------------------------------------------

test_loop_breaker_denies_and_escalates_after_two_failed_verifications if {
	h := [
		t_history("checkout", "2026-11-21T10:00:00Z", "plan-a", "verification_failed"),
		t_history("checkout", "2026-11-21T04:00:00Z", "plan-a", "verification_failed"),
	]
	d := t_decision(object.union(t_base, {"history": h}))
	some r in d.deny
	r.code == "loop_breaker"
	r.details.escalate == true
	d.allow == false
}

test_loop_breaker_counts_rollbacks_as_the_loop_records_them if {
	h := [
		t_history("checkout", "2026-11-21T10:00:00Z", "plan-a", "rolled_back"),
		t_history("checkout", "2026-11-21T04:00:00Z", "plan-a", "rolled_back"),
	]
	d := t_decision(object.union(t_base, {"history": h}))
	some r in d.deny
	r.code == "loop_breaker"
	r.details.window_hours == 24
}

test_loop_breaker_counts_one_remediation_once_however_many_actions if {
	# Two actions of one rolled-back remediation: one failure, not two.
	h := [
		t_history("checkout", "2026-11-21T10:00:00Z", "plan-a", "rolled_back"),
		t_history("payments", "2026-11-21T10:00:00Z", "plan-a", "rolled_back"),
	]
	t_decision(object.union(t_base, {"history": h})).allow
}

test_loop_breaker_allows_after_one_failure if {
	h := [t_history("checkout", "2026-11-21T10:00:00Z", "plan-a", "verification_failed")]
	t_decision(object.union(t_base, {"history": h})).allow
}

test_loop_breaker_ignores_other_plans_and_old_failures if {
	h := [
		t_history("checkout", "2026-11-21T10:00:00Z", "plan-b", "verification_failed"),
		t_history("checkout", "2026-11-20T21:00:00Z", "plan-a", "verification_failed"),
		t_history("checkout", "2026-11-21T09:00:00Z", "plan-a", "verification_failed"),
	]
	t_decision(object.union(t_base, {"history": h})).allow
}

# --- risk and approvals -----------------------------------------------------

test_restart_is_high_risk_and_never_auto_approved if {
	d := t_decision(t_input([{"type": "restart", "node": "checkout"}], [t_checkout]))
	d.allow
	d.risk == "high"
	d.auto_approve == false
	d.required_approvals == 2
}

test_database_restart_needs_two_approvals_even_when_config_says_one if {
	db := t_node("orders-db", "database", "standard", 3)
	d := t_decision(t_input([{"type": "restart", "node": "orders-db"}], [db])) with data.twinops.config.safety.approvals_by_risk as {"low": 1, "medium": 1, "high": 1}
	d.required_approvals == 2
	d.auto_approve == false
}

test_service_restart_follows_risk_table if {
	d := t_decision(t_input([{"type": "restart", "node": "checkout"}], [t_checkout])) with data.twinops.config.safety.approvals_by_risk as {"low": 1, "medium": 1, "high": 1}
	d.required_approvals == 1
}

test_critical_tier_never_auto_approved if {
	n := object.union(t_checkout, {"tier": "critical"})
	d := t_decision(t_input([t_scale("checkout", 8)], [n]))
	d.allow
	d.risk == "low"
	d.auto_approve == false
	d.required_approvals == 1
}

test_listed_node_never_auto_approved if {
	d := t_decision(t_base) with data.twinops.config.safety.never_auto_approve.nodes as ["checkout"]
	d.auto_approve == false
}

test_blast_radius_just_below_medium_is_low if {
	t_decision(object.union(t_base, {"proposal": {"blast_radius": 0.199}})).risk == "low"
}

test_blast_radius_at_medium_threshold_is_medium_and_manual if {
	d := t_decision(object.union(t_base, {"proposal": {"blast_radius": 0.2}}))
	d.risk == "medium"
	d.auto_approve == false
	d.required_approvals == 1
}

test_blast_radius_at_high_threshold_is_high if {
	d := t_decision(object.union(t_base, {"proposal": {"blast_radius": 0.5}}))
	d.risk == "high"
	d.required_approvals == 2
}

test_rate_limit_action_is_medium_risk if {
	d := t_decision(t_input([{"type": "rate_limit", "node": "checkout", "max_rps": 100}], [t_checkout]))
	d.risk == "medium"
	d.approver_groups == ["network", "sre"]
}

test_human_requester_not_auto_approved if {
	d := t_decision(object.union(t_base, {"requester": {"kind": "human", "id": "alice"}}))
	d.allow
	d.auto_approve == false
	d.required_approvals == 1
}

test_requester_id_allowlist_auto_approves if {
	inp := object.union(t_base, {"requester": {"kind": "human", "id": "night-bot"}})
	d := t_decision(inp) with data.twinops.config.safety.auto_approve_requesters as {"kinds": [], "ids": ["night-bot"]}
	d.auto_approve
}

test_agent_not_on_allowlist_not_auto_approved if {
	d := t_decision(t_base) with data.twinops.config.safety.auto_approve_requesters as {"kinds": ["playbook"], "ids": []}
	d.allow
	d.auto_approve == false
}

test_denied_proposal_is_never_auto_approved if {
	d := t_decision(object.union(t_base, {"snapshot_age_seconds": 999}))
	d.allow == false
	d.auto_approve == false
	d.required_approvals >= 1
}

test_malformed_input_denied if {
	d := t_decision({"proposal": {"actions": []}})
	d.allow == false
	d.auto_approve == false
	[r.code | some r in d.deny] == ["malformed_input"]
}

test_wrong_typed_field_denied if {
	d := t_decision(object.union(t_base, {"snapshot_age_seconds": "old"}))
	d.allow == false
}

# --- a freeze window's own quorum --------------------------------------------

test_freeze_window_may_ask_for_more_approvals if {
	inp := object.union(t_at(t_base, "2026-11-28T12:00:00Z"), {"requester": {"kind": "human", "id": "alice"}})
	w := [object.union(t_freeze[0], {"required_approvals": 3, "approver_groups": ["sre-leads"]})]
	d := t_decision(inp) with data.twinops.config.safety.freeze_windows as w
	d.allow
	d.required_approvals == 3
	d.approver_groups == ["sre", "sre-leads"]
}

test_freeze_window_groups_are_not_asked_outside_it if {
	w := [object.union(t_freeze[0], {"approver_groups": ["sre-leads"]})]
	d := t_decision(t_at(t_base, "2026-11-26T12:00:00Z")) with data.twinops.config.safety.freeze_windows as w
	d.approver_groups == ["sre"]
}

# --- re-evaluated at the moment of action ---------------------------------------

# The workflow asks again just before executing, with the time and twin age of that
# moment: what was allowed when proposed is denied once a freeze began or the twin aged.
test_reevaluation_inside_a_freeze_denies_what_was_allowed if {
	t_decision(t_at(t_base, "2026-11-26T23:00:00Z")).allow with data.twinops.config.safety.freeze_windows as t_freeze
	d := t_decision(t_at(t_base, "2026-11-27T00:00:01Z")) with data.twinops.config.safety.freeze_windows as t_freeze
	d.allow == false
	d.auto_approve == false
	{r.code | some r in d.deny} == {"change_freeze"}
}

test_reevaluation_with_an_old_twin_denies_what_was_allowed if {
	t_decision(t_base).allow
	d := t_decision(object.union(t_base, {"snapshot_age_seconds": 600}))
	d.allow == false
	{r.code | some r in d.deny} == {"stale_twin"}
}

# --- small scale-downs (scale_down_low_risk) ------------------------------------

# A node with a large blast radius (28% of the traffic, "medium" by the thresholds).
t_wide(inp) := object.union(inp, {"proposal": {"blast_radius": 0.28}})

t_scale_down(node, from, to) := t_wide(t_input([t_scale(node.id, to)], [object.union(node, {"replicas": from})]))

test_small_scale_down_of_a_standard_node_is_low_and_auto_approved_whatever_its_blast_radius if {
	d := t_decision(t_scale_down(t_checkout, 4, 3))
	d.allow
	d.risk == "low"
	d.auto_approve == true
	d.required_approvals == 0
}

test_the_same_step_up_keeps_its_blast_radius_risk if {
	d := t_decision(t_scale_down(t_checkout, 3, 4))
	d.risk == "medium"
	d.auto_approve == false
	d.required_approvals == 1
}

test_small_scale_down_by_a_human_is_low_but_still_needs_an_approval if {
	d := t_decision(object.union(t_scale_down(t_checkout, 4, 3), {"requester": {"kind": "human", "id": "alice"}}))
	d.risk == "low"
	d.auto_approve == false
	d.required_approvals == 1
}

test_small_scale_down_of_a_critical_node_is_not_auto_approved if {
	d := t_decision(t_scale_down(object.union(t_checkout, {"tier": "critical"}), 4, 3))
	d.allow
	d.risk == "medium"
	d.auto_approve == false
	d.required_approvals == 1
}

test_small_scale_down_of_a_database_is_not_auto_approved if {
	db := t_node("orders-db", "database", "standard", 4)
	d := t_decision(t_scale_down(db, 4, 3))
	d.allow
	d.risk == "low"
	d.auto_approve == false
	d.required_approvals == 1
}

test_removing_three_of_four_replicas_is_not_small if {
	d := t_decision(t_scale_down(t_checkout, 4, 1))
	d.allow
	d.risk == "medium"
	d.auto_approve == false
}

test_a_step_is_small_up_to_the_fraction_and_the_count if {
	# 8 -> 6: 2 <= 8 x 0.25 and 2 <= 2; 12 -> 9: 3 <= 12 x 0.25 but 3 > 2; 7 -> 5: 2 > 7 x 0.25.
	t_decision(t_scale_down(t_checkout, 8, 6)).risk == "low"
	t_decision(t_scale_down(t_checkout, 12, 9)).risk == "medium"
	t_decision(t_scale_down(t_checkout, 7, 5)).risk == "medium"
}

test_one_replica_is_always_a_small_step if {
	# 2 -> 1 removes half, but one replica is the least a scale-down can remove; min_replicas is the floor.
	t_decision(t_scale_down(t_checkout, 2, 1)).auto_approve
	"below_min_replicas" in t_codes(t_scale_down(object.union(t_checkout, {"min_replicas": 2}), 2, 1))
}

test_a_scale_down_mixed_with_a_scale_up_is_not_small if {
	cart := t_node("cart", "service", "standard", 4)
	inp := t_wide(t_input([t_scale("checkout", 3), t_scale("cart", 5)], [t_checkout, cart]))
	d := t_decision(inp)
	d.allow
	d.risk == "medium"
	d.auto_approve == false
}

test_a_scale_down_mixed_with_another_action_is_not_small if {
	a := {"type": "rate_limit", "node": "checkout", "max_rps": 100}
	d := t_decision(t_wide(t_input([t_scale("checkout", 3), a], [t_checkout])))
	d.risk == "medium"
	d.auto_approve == false
}

test_small_scale_downs_of_two_standard_nodes_are_low if {
	cart := t_node("cart", "service", "standard", 4)
	d := t_decision(t_wide(t_input([t_scale("checkout", 3), t_scale("cart", 3)], [t_checkout, cart])))
	d.risk == "low"
	d.auto_approve
}

test_every_node_of_the_plan_must_be_in_a_listed_tier if {
	edge := t_node("cart", "service", "edge", 4)
	d := t_decision(t_wide(t_input([t_scale("checkout", 3), t_scale("cart", 3)], [t_checkout, edge])))
	d.risk == "medium"
	d.auto_approve == false
}

test_small_scale_down_during_a_freeze_is_not_auto_approved if {
	inp := t_at(t_scale_down(t_checkout, 4, 3), "2026-11-28T12:00:00Z")
	codes := t_codes(inp) with data.twinops.config.safety.freeze_windows as t_freeze
	"change_freeze" in codes
	human := object.union(inp, {"requester": {"kind": "human", "id": "alice"}})
	d := t_decision(human) with data.twinops.config.safety.freeze_windows as t_freeze
	d.allow
	d.auto_approve == false
	d.required_approvals == 2
}

test_small_scale_down_keeps_the_rate_limit_and_the_loop_breaker if {
	h := [
		t_history("checkout", "2026-11-21T21:50:00Z", "p-x", "verified"),
		t_history("checkout", "2026-11-21T21:40:00Z", "p-y", "executed"),
		t_history("checkout", "2026-11-21T21:31:00Z", "p-z", "executed"),
	]
	"rate_limited" in t_codes(object.union(t_scale_down(t_checkout, 4, 3), {"history": h}))
	failed := [
		t_history("checkout", "2026-11-21T10:00:00Z", "plan-a", "rolled_back"),
		t_history("checkout", "2026-11-21T04:00:00Z", "plan-a", "rolled_back"),
	]
	d := t_decision(object.union(t_scale_down(t_checkout, 4, 3), {"history": failed}))
	"loop_breaker" in {r.code | some r in d.deny}
	d.auto_approve == false
}

test_small_scale_down_with_a_high_blast_radius_is_low if {
	d := t_decision(object.union(t_scale_down(t_checkout, 4, 3), {"proposal": {"blast_radius": 0.7}}))
	d.risk == "low"
	d.auto_approve
}

test_the_step_limit_still_denies_what_the_config_makes_small if {
	cfg := {"tiers": ["standard"], "max_step_fraction": 1, "max_step_replicas": 50}
	d := t_decision(t_scale_down(object.union(t_checkout, {"max_replicas": 100}), 40, 15)) with data.twinops.config.safety.scale_down_low_risk as cfg
	"scale_step_too_large" in {r.code | some r in d.deny}
	d.allow == false
	d.auto_approve == false
}

test_no_tiers_listed_turns_it_off if {
	cfg := {"tiers": [], "max_step_fraction": 0.25, "max_step_replicas": 2}
	d := t_decision(t_scale_down(t_checkout, 4, 3)) with data.twinops.config.safety.scale_down_low_risk as cfg
	d.risk == "medium"
	d.auto_approve == false
}

test_a_scale_floor_above_low_still_holds if {
	d := t_decision(t_scale_down(t_checkout, 4, 3)) with data.twinops.config.safety.risk.min_by_action.scale as "medium"
	d.risk == "medium"
	d.auto_approve == false
}
