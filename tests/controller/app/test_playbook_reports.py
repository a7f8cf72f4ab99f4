"""A run's report as Markdown, self-contained HTML and JSON: every outcome in its section, escaped, gaps kept."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import pytest
from markupsafe import escape

from agents.playbook import PreconditionResult
from controller.app.playbook_reports import (
    NO_DATA,
    render_html,
    render_html_body,
    render_json,
    render_markdown,
    render_report,
    report_view,
    run_summary,
)
from tests.controller.playbook_run_factory import HOSTILE, figures, full_report, ran_and_waiting_report, small_report
from workflows.playbook_contracts import NodeReport, PlaybookRunReport, StepReport

WEB_TRAIL = "/remediations/{}/trail".format


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML document."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def rows_of(page: str) -> dict[str, str]:
    """Each node's table row (by its data-node attribute, unescaped) as HTML."""
    found = re.findall(
        r'<tr data-node="([^"]*)" data-outcome="[^"]*">(.*?)</tr>\s*(?=<tr data-node|</tbody>)', page, re.S
    )
    return {html.unescape(node): row for node, row in found}


def test_every_node_is_in_the_section_its_outcome_says() -> None:
    view = report_view(full_report())
    placed = {s["title"]: [r["node"] for r in s["rows"]] for s in view["sections"]}
    assert placed == {
        "Ran": ["checkout"],
        "Waiting for approval": ["payments"],
        "Blocked by policy": ["search"],
        "Rejected, expired or cancelled": [HOSTILE, "mail", "auth"],
        "Rolled back / failed": ["inventory", "ledger"],
        "Not acted on": ["cart", "frontend", "search-index", "reco", "legacy"],
    }


def test_an_empty_section_is_left_out_and_a_run_without_nodes_says_so() -> None:
    view = report_view(small_report("only-ran"))
    assert [s["title"] for s in view["sections"]] == ["Ran"]
    empty = small_report("empty", nodes=[], status="succeeded")
    assert "No node matched the playbook's target." in render_markdown(empty)
    assert '<p class="muted">No node matched the playbook\'s target.</p>' in render_html(empty)


def test_markdown_has_the_header_summary_and_each_sections_details() -> None:
    report = full_report()
    text = render_markdown(report)
    assert text.startswith("# Playbook nightly v3: partial\n")
    assert f"**{report.summary()}**" in text
    for fact in [
        "- Owner: team-edge",
        "- Trigger: manual",
        "- Requested by: alice",
        "- Twin: shop",
        "- Started: 2026-11-21 02:00:00 UTC",
        "- Ended: 2026-11-21 02:12:00 UTC (after 12 min)",
        "- Status: partial",
        "- Stopped early: max duration 10m reached",
        "- History for held conditions: 14 days of stored demand history",
    ]:
        assert fact in text.splitlines(), fact
    assert "## Ran (1)" in text and "## Not acted on (5)" in text
    ran = next(line for line in text.splitlines() if line.startswith("| `checkout`"))
    assert "replicas 4 → 7; demand 880 rps → 876 rps; utilization 92% → 61%; p95 41.5 ms → 18.2 ms" in ran
    assert "`twinops audit show p-ran0001`" in ran
    denied = next(line for line in text.splitlines() if line.startswith("| `search`"))
    assert "change freeze until 06:00; budget: 12 replicas exceed the cap of 10" in denied
    assert "freeze; budget_cap" in denied
    cart = next(line for line in text.splitlines() if line.startswith("| `cart`"))
    assert "utilization > 0.8: not met (value 0.42): 0.42 is not > 0.8" in cart
    failed = next(line for line in text.splitlines() if line.startswith("| `ledger`"))
    assert "1 compensation failed" in failed
    assert "| `legacy` | skipped | the run did not plan for this node | stale beliefs (observed 20 min ago) |" in text
    assert "- Requested by: the schedule" in render_markdown(small_report("s"))


def test_markdown_keeps_markup_in_the_data_as_text_and_every_table_row_whole() -> None:
    text = render_markdown(full_report(nodes=[NodeReport(node="a|b", outcome="expired", summary="x | *y* [z](w)")]))
    assert r"x \| \*y\* \[z\](w)" in text
    assert "`a\\|b`" in text
    rows = [line for line in text.splitlines() if line.startswith("|")]
    # Every row of a table has as many cell separators as its header (escaped pipes do not count).
    assert len({len(re.findall(r"(?<!\\)\|", line)) for line in rows}) == 1
    hostile = render_markdown(full_report())
    assert r"| rejected by alice | \<b>not tonight\</b> |" in hostile  # the reason once, in Why
    assert f"`{HOSTILE}`" in hostile  # a code span: nothing in it is markup
    assert HOSTILE not in hostile.replace(f"`{HOSTILE}`", "")


def test_html_is_self_contained() -> None:
    page = render_html(full_report())
    tags = Tags(page)
    assert tags.named("script") == [] and tags.named("link") == [] and tags.named("iframe") == []
    assert tags.named("img") == []  # the hostile node name's <img> is text, not a tag
    references = [(name, a.get("src") or a.get("href")) for name, a in tags.tags if a.get("src") or a.get("href")]
    assert references == []  # without a trail_url nothing links anywhere
    assert "@import" not in page and "url(" not in page
    assert len(tags.named("style")) == 1
    assert page.startswith("<!doctype html>") and '<meta charset="utf-8">' in page


def test_html_escapes_a_hostile_node_name_and_summary() -> None:
    page = render_html(full_report())
    assert HOSTILE not in page
    assert str(escape(HOSTILE)) in page
    assert "&lt;b&gt;not tonight&lt;/b&gt;" in page and "<b>" not in page
    text = "".join(Tags(page).text)
    assert HOSTILE in text  # shown to the reader as it is
    assert HOSTILE in rows_of(page)


def test_html_shows_the_header_summary_and_sections() -> None:
    report = full_report()
    page = render_html(report)
    text = " ".join(" ".join(Tags(page).text).split())
    assert str(escape(report.summary())) in page
    for words in [
        "Owner team-edge",
        "Requested by alice",
        "Twin shop",
        "Started 2026-11-21 02:00:00 UTC",
        "Status partial",
        "Stopped early max duration 10m reached",
        "Ran (1)",
        "Waiting for approval (1)",
        "Blocked by policy (1)",
        "Rejected, expired or cancelled (3)",
        "Rolled back / failed (2)",
        "Not acted on (5)",
    ]:
        assert words in text, words
    rows = rows_of(page)
    assert "badge risk-high" in rows["payments"] and "twinops audit show p-wait0002" in rows["payments"]
    assert "<code>freeze</code>" in rows["search"] and "<code>budget_cap</code>" in rows["search"]
    assert "utilization &gt; 0.8: not met (value 0.42)" in rows["cart"]
    assert "stale beliefs (observed 20 min ago)" in rows["legacy"]


def test_a_missing_figure_is_no_data_never_zero() -> None:
    gaps = NodeReport(
        node="gappy",
        outcome="ran",
        summary="scaled",
        before=figures(3, None, None, None),
        after=figures(4, 0.0, None, None),
    )
    none = NodeReport(node="blind", outcome="rolled_back", summary="undone")
    report = full_report(nodes=[gaps, none], skipped=[])
    [ran, undone] = report_view(report)["sections"]
    assert ran["rows"][0]["figures"] == [
        ("replicas", "3", "4"),
        ("demand", NO_DATA, "0 rps"),  # a measured zero is a zero; a gap is not
        ("utilization", NO_DATA, NO_DATA),
        ("p95", NO_DATA, NO_DATA),
    ]
    assert undone["rows"][0]["figures"] == []
    text = render_markdown(report)
    assert "replicas 3 → 4; demand no data → 0 rps; utilization no data → no data; p95 no data → no data" in text
    assert "| `blind` | rolled back | undone | – | no data |" in text
    rows = rows_of(render_html(report))
    assert rows["gappy"].count('class="no-data">no data</td>') == 5
    assert "0%" not in rows["gappy"] and "0 ms" not in rows["gappy"]
    assert '<span class="no-data">no data</span>' in rows["blind"]


def test_trail_links_use_the_given_url_and_default_to_the_cli_command() -> None:
    report = full_report()
    linked = render_html(report, trail_url=WEB_TRAIL)
    hrefs = [str(a["href"]) for a in Tags(linked).named("a")]
    assert sorted(hrefs) == sorted(WEB_TRAIL(n.proposal_id) for n in report.nodes if n.proposal_id is not None)
    assert "/remediations/p-&lt;rej&gt;0006/trail" in linked  # escaped in the attribute
    assert "twinops audit show" not in linked
    assert "[p-ran0001](</remediations/p-ran0001/trail>)" in render_markdown(report, trail_url=WEB_TRAIL)
    plain = render_html(report)
    assert Tags(plain).named("a") == []
    assert '<code class="command">twinops audit show p-ran0001</code>' in plain
    assert "twinops audit show p-&lt;rej&gt;0006" in plain
    assert rows_of(plain)["cart"].count("–") >= 1 and "twinops" not in rows_of(plain)["cart"]  # no proposal, no trail


def test_the_body_for_the_web_page_has_no_inline_style_or_script() -> None:
    body = str(render_html_body(full_report(), trail_url=WEB_TRAIL))
    assert "<style" not in body and "style=" not in body and "<script" not in body
    assert body.lstrip().startswith("<article") and "<html" not in body
    assert 'id="run-summary"' in body


def test_json_is_the_models_json() -> None:
    report = full_report()
    text = render_json(report)
    assert PlaybookRunReport.model_validate_json(text) == report
    assert json.loads(text)["nodes"][8]["node"] == HOSTILE


def test_render_report_picks_the_format() -> None:
    report = small_report("r")
    assert render_report(report, "md") == render_markdown(report)
    assert render_report(report, "html", WEB_TRAIL) == render_html(report, WEB_TRAIL)
    assert render_report(report, "json") == render_json(report)
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        render_report(report, "pdf")  # type: ignore[arg-type]


def test_a_runs_summary_counts_its_outcomes() -> None:
    summary = run_summary(full_report())
    assert summary.counts["ran"] == 1 and summary.counts["waiting_approval"] == 1 and sum(summary.counts.values()) == 12
    assert summary.skipped == 1
    assert summary.summary == full_report().summary()
    assert (summary.playbook, summary.version, summary.status) == ("nightly", 3, "partial")


def facts_of(report: PlaybookRunReport) -> dict[str, str]:
    return dict(report_view(report)["facts"])


def why_of(node: NodeReport) -> list[str]:
    [section] = report_view(full_report(nodes=[node], skipped=[]))["sections"]
    return list(section["rows"][0]["details"])


HELD = "demand_utilization < 0.3 for 2h"


def test_a_held_condition_that_does_not_hold_now_reads_as_needing_its_window_not_as_having_held() -> None:
    node = NodeReport(
        node="web",
        outcome="not_met",
        summary=f"preconditions not met: {HELD}: does not hold now (it must hold for 2 h)",
        preconditions=[
            PreconditionResult(
                source=HELD,
                met=False,
                value=False,
                hold_seconds=7200,
                detail="does not hold now (it must hold for 2 h)",
            )
        ],
    )
    assert why_of(node) == [f"{HELD}: not met: does not hold now (it must hold for 2 h)"]
    text = render_markdown(full_report(nodes=[node], skipped=[]))
    assert "value false" not in text and "held 2 h" not in text


def test_a_precondition_without_a_value_says_why_never_no_value() -> None:
    forecast = "forecast_peak_utilization(next=24h) > 0.5"
    errored = PreconditionResult(
        source=forecast, met=False, detail="no seasonal demand forecast reaches 'web' over the next 24 h"
    )
    unexplained = PreconditionResult(source="demand_rps > 5", met=False)
    held_now = PreconditionResult(
        source=HELD, met=False, value=True, hold_seconds=7200, detail="no demand history: cannot show it held for 2 h"
    )
    node = NodeReport(node="web", outcome="not_met", summary="x", preconditions=[errored, unexplained, held_now])
    why = why_of(node)
    assert why == [
        f"{forecast}: not met: no seasonal demand forecast reaches 'web' over the next 24 h",
        "demand_rps > 5: not met: it could not be evaluated, and the run did not record why",
        f"{HELD}: not met: holds now, but no demand history: cannot show it held for 2 h",
    ]
    everything = render_markdown(full_report(nodes=[node], skipped=[])) + render_html(full_report(nodes=[node]))
    assert "no value" not in everything and "value true" not in everything


def test_a_node_not_acted_on_shows_each_fact_once() -> None:
    not_met = NodeReport(
        node="web",
        outcome="not_met",
        summary=f"preconditions not met: {HELD}: does not hold now (it must hold for 2 h)",
        preconditions=[
            PreconditionResult(source=HELD, met=False, value=False, hold_seconds=7200, detail="does not hold now")
        ],
    )
    refused = NodeReport(
        node="api",
        outcome="nothing_to_do",
        summary="trim was refused (replicas computed as 1, outside api's bounds 2..8): nothing runs on api",
        steps=[StepReport(name="trim", action="", status="refused", reason="replicas computed as 1, outside 2..8")],
    )
    same = NodeReport(
        node="db",
        outcome="nothing_to_do",
        summary="no step changes anything",
        steps=[StepReport(name="trim", action="", status="skipped", reason="db already runs 2 replicas")],
    )
    text = render_markdown(full_report(nodes=[not_met, refused, same], skipped=[]))
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| `")}
    for node, fact in [
        ("`web`", "does not hold now"),
        ("`api`", "replicas computed as 1"),
        ("`db`", "db already runs 2 replicas"),
    ]:
        assert rows[node].count(fact) == 1, rows[node]
    assert "| no action: the run acts only where every precondition holds |" in rows["`web`"]
    assert "| no action: when one step is refused, none of the node's steps runs |" in rows["`api`"]
    assert (
        "| no action: no step would change anything | step trim: skipped (db already runs 2 replicas) |" in rows["`db`"]
    )


def test_the_history_fact_says_history_once() -> None:
    label = "History for held conditions"
    for history, shown in [
        ("demand history of 'shop' (5 buckets)", "5 buckets of 'shop'"),
        ("demand history of 'shop' (1 buckets)", "1 bucket of 'shop'"),
        (
            "demand history of 'shop' from the controller database (288 buckets)",
            "288 buckets of 'shop' from the controller database",
        ),
        ("no demand history: no controller database yet", "none: no controller database yet"),
        ("", "not recorded"),
    ]:
        assert facts_of(small_report("r", history=history))[label] == shown, history
    text = render_markdown(small_report("r", history="demand history of 'shop' (5 buckets)"))
    assert f"- {label}: 5 buckets of 'shop'" in text.splitlines()


def test_a_run_that_went_to_its_end_was_not_stopped_early() -> None:
    assert facts_of(small_report("r"))["Stopped early"] == "no"
    assert "- Stopped early: no" in render_markdown(small_report("r")).splitlines()


def test_counts_are_plural_words_not_s_in_brackets() -> None:
    report = ran_and_waiting_report()
    text = render_markdown(report) + render_html(report)
    assert "(s)" not in text
    assert "waits in the SRE queue for 2 approvals from sre" in text
    one = ran_and_waiting_report(
        nodes=[NodeReport(node="web", outcome="waiting_approval", summary="waits in the SRE queue for 1 approval(s)")]
    )
    assert "| waits in the SRE queue for 1 approval |" in render_markdown(one)
    assert "(s)" not in render_markdown(full_report()) + render_html(full_report())


def test_the_pre_approval_is_in_the_header_and_on_the_nodes_it_approved() -> None:
    ran = NodeReport(
        node="catalog",
        outcome="ran",
        summary="ran and verified: scale catalog -> 8",
        proposal_id="p-1",
        preapproval_id="pa-7f3c",
    )
    covered = small_report(
        "r", preapproval="pa-7f3c", preapproval_note="pre-approval pa-7f3c covers this run", nodes=[ran]
    )
    assert facts_of(covered)["Pre-approval"] == "pa-7f3c covered this run"
    text = render_markdown(covered)
    assert "- Pre-approval: pa-7f3c covered this run" in text.splitlines()
    assert "| ran and verified: scale catalog → 8; approved ahead by pre-approval pa-7f3c |" in text
    cell = rows_of(render_html(covered))["catalog"]
    assert '<span class="approved-ahead">approved ahead by pre-approval pa-7f3c</span>' in cell
    assert "approved ahead" not in render_markdown(full_report())  # no node of it ran on a pre-approval

    used = small_report("r", preapproval_note="pre-approval pa-7f3c was used by run playbook-run-nightly-1")
    assert facts_of(used)["Pre-approval"] == "pre-approval pa-7f3c was used by run playbook-run-nightly-1"
    assert "Pre-approval" not in facts_of(small_report("r"))  # a run that claimed none says nothing of it


def test_a_summary_does_not_repeat_the_reasons_or_actions_another_column_shows() -> None:
    steps = [StepReport(name="trim", action="scale catalog -> 8", status="planned")]
    reasons = ["change freeze until 06:00", "budget: 12 replicas exceed the cap of 10"]
    nodes = [
        NodeReport(node="ran", outcome="ran", summary="ran and verified: scale catalog -> 8", steps=steps),
        NodeReport(
            node="denied",
            outcome="denied",
            summary=f"denied by the safety policy: {'; '.join(reasons)}",
            steps=steps,
            reasons=reasons,
        ),
        NodeReport(
            node="back",
            outcome="rolled_back",
            summary="rolled_back: p95 latency rose to 250 ms",
            reasons=["p95 latency rose to 250 ms"],
        ),
        NodeReport(
            node="stopped",
            outcome="rolled_back",
            summary="stopped at the deadline: cancelled: run stopped",
            reasons=["run stopped"],
        ),
        NodeReport(node="alone", outcome="failed", summary="quota exceeded", reasons=["quota exceeded"]),
    ]
    rows = {r["node"]: r for s in report_view(full_report(nodes=nodes, skipped=[]))["sections"] for r in s["rows"]}
    assert rows["ran"]["summary"] == "ran and verified" and rows["ran"]["actions"] == ["trim: scale catalog → 8"]
    assert rows["denied"]["summary"] == "denied by the safety policy" and rows["denied"]["details"] == reasons
    assert rows["back"]["summary"] == "rolled back"
    assert rows["stopped"]["summary"] == "stopped at the deadline: cancelled"
    assert rows["alone"]["summary"] == "quota exceeded"  # nothing would be left: said in both
