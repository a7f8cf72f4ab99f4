"""A playbook run's report for people: Markdown, one self-contained HTML page, or the model's JSON.

The same view (`report_view`) feeds every format, so `twinops report`, the saved HTML file and
the web page say the same things in the same order: who ran which playbook on which twin and
how it ended, the one-line summary, then the nodes by what became of them (ran; waiting for
approval; blocked by policy; rejected, expired or cancelled; rolled back or failed; not acted
on, with the preconditions that did not hold and the nodes the run skipped). A figure the twin
had no trusted value for is "no data", never 0. Each node that reached a remediation names its
trail: a link when the caller says where trails are (`trail_url`), else the CLI command. Each fact
is shown once: a node's summary loses the reasons or actions another column lists, and the run's
texts read as words (`2 approvals`, not `2 approval(s)`). On a phone (720 px and less) each table
row is a card of label: value pairs, nothing wider than the screen.

The HTML page carries its CSS inline and loads nothing (no script, font or image), so it can be
mailed or archived; the web UI embeds its body (`render_html_body`), which has no inline style,
under the site's stylesheet and strict Content Security Policy. Everything is escaped by Jinja2's
autoescape; the Markdown escapes what Markdown would read as markup.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from pydantic import AwareDatetime, BaseModel, ConfigDict

from agents.playbook import PreconditionResult
from controller.adapters.audit.report import fmt_number, fmt_percent
from workflows.contracts import Stage
from workflows.playbook_contracts import (
    NodeFigures,
    NodeReport,
    PlaybookRunReport,
    PlaybookRunStatus,
    StepReport,
    Trigger,
)

__all__ = [
    "FORMATS",
    "NO_DATA",
    "PlaybookRunSummary",
    "ReportFormat",
    "TrailUrl",
    "render_html",
    "render_html_body",
    "render_json",
    "render_markdown",
    "render_report",
    "report_view",
    "run_summary",
    "trail_command",
]

ReportFormat = Literal["md", "html", "json"]
FORMATS: tuple[ReportFormat, ...] = ("md", "html", "json")
TrailUrl = Callable[[str], str]
"""Where the trail of a proposal is, given its id (the web UI: `/remediations/{id}/trail`)."""
NO_DATA = "no data"
"""How a figure the twin had no trusted value for is shown."""

_env = Environment(
    loader=PackageLoader("controller.app", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def trail_command(proposal_id: str) -> str:
    """The command that prints a remediation's trail (what a report names when it has no link to give)."""
    return f"twinops audit show {proposal_id}"


# ---- the list of runs ---------------------------------------------------------------------


class PlaybookRunSummary(BaseModel):
    """One run in a list of runs: what ran, when, how it ended, and its outcome counts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    playbook: str
    version: int
    status: PlaybookRunStatus
    trigger: Trigger
    requested_by: str | None = None
    twin_id: str | None = None
    started_at: AwareDatetime
    ended_at: AwareDatetime
    counts: dict[str, int]
    """Nodes per outcome (ran, waiting_approval, denied, ...); outcomes no node had are absent."""
    skipped: int
    """Matching nodes the run did not plan for."""
    summary: str
    """The report's one line (`PlaybookRunReport.summary`)."""


def run_summary(report: PlaybookRunReport) -> PlaybookRunSummary:
    """The list entry of one report."""
    return PlaybookRunSummary(
        run_id=report.run_id,
        playbook=report.playbook,
        version=report.version,
        status=report.status,
        trigger=report.trigger,
        requested_by=report.requested_by,
        twin_id=report.twin_id,
        started_at=report.started_at,
        ended_at=report.ended_at,
        counts=dict(sorted(report.counts().items())),
        skipped=len(report.skipped),
        summary=report.summary(),
    )


# ---- the view every format renders --------------------------------------------------------

# (key, title, outcomes, columns). A node's outcome puts it in exactly one section.
_SECTIONS: tuple[tuple[str, str, frozenset[str], tuple[str, ...]], ...] = (
    ("ran", "Ran", frozenset({"ran"}), ("node", "summary", "actions", "figures", "trail")),
    (
        "waiting",
        "Waiting for approval",
        frozenset({"waiting_approval"}),
        ("node", "summary", "actions", "risk", "trail"),
    ),
    ("denied", "Blocked by policy", frozenset({"denied"}), ("node", "summary", "actions", "details", "codes", "trail")),
    (
        "declined",
        "Rejected, expired or cancelled",
        frozenset({"rejected", "expired", "cancelled"}),
        ("node", "outcome", "summary", "details", "trail"),
    ),
    (
        "undone",
        "Rolled back / failed",
        frozenset({"rolled_back", "failed"}),
        ("node", "outcome", "summary", "details", "figures", "trail"),
    ),
    (
        "not_acted",
        "Not acted on",
        frozenset({"not_met", "nothing_to_do", "not_started", "already_open", "skipped"}),
        ("node", "outcome", "summary", "details", "trail"),
    ),
)
_HEADERS = {
    "node": "Node",
    "outcome": "Outcome",
    "summary": "What happened",
    "actions": "Actions",
    "figures": "Before → after",
    "risk": "Risk",
    "details": "Why",
    "codes": "Policy codes",
    "trail": "Trail",
}
_OUTCOME_WORDS = {
    "not_met": "precondition not met",
    "nothing_to_do": "nothing to do",
    "not_started": "not started",
    "already_open": "already open",
    "waiting_approval": "waiting for approval",
    "rolled_back": "rolled back",
    "skipped": "skipped",
}


def report_view(report: PlaybookRunReport, trail_url: TrailUrl | None = None) -> dict[str, Any]:
    """What every format shows, as display strings; pure, so it is tested without rendering."""
    rows = [_node_row(n, trail_url) for n in report.nodes]
    rows += [
        _row(node=s.node, outcome="skipped", summary="the run did not plan for this node", details=[s.reason])
        for s in report.skipped
    ]
    sections = []
    for key, title, outcomes, columns in _SECTIONS:
        found = [r for r in rows if r["outcome"] in outcomes]
        if found:
            sections.append(
                {
                    "key": key,
                    "title": title,
                    "columns": [(c, _HEADERS[c]) for c in columns],
                    "rows": found,
                }
            )
    return {
        "title": f"Playbook {report.playbook} v{report.version}",
        "playbook": report.playbook,
        "version": report.version,
        "run_id": report.run_id,
        "status": report.status,
        "status_words": report.status.replace("_", " "),
        "summary": report.summary(),
        "description": report.description,
        "facts": _facts(report),
        "sections": sections,
    }


def _facts(report: PlaybookRunReport) -> list[tuple[str, str]]:
    requested = report.requested_by or ("the schedule" if report.trigger == "schedule" else "not recorded")
    facts = [
        ("Run", report.run_id),
        ("Playbook", f"{report.playbook} v{report.version}"),
        ("Owner", report.owner),
        ("Trigger", report.trigger),
        ("Requested by", requested),
        ("Twin", report.twin_id or "not recorded"),
        ("Started", _when(report.started_at)),
        ("Ended", f"{_when(report.ended_at)} (after {_duration(report.ended_at - report.started_at)})"),
        ("Planned on", _when(report.observed_at) if report.observed_at else "no snapshot"),
        ("Status", report.status.replace("_", " ")),
        ("Stopped early", _words(report.stopped) if report.stopped else "no"),
        ("History for held conditions", _history(report.history)),
    ]
    # A report from before pre-approvals, or of a run that proposed nothing, has neither: no line then.
    if report.preapproval:
        facts.append(("Pre-approval", f"{report.preapproval} covered this run"))
    elif report.preapproval_note:
        facts.append(("Pre-approval", _words(report.preapproval_note)))
    return facts


# What the run's planner writes in `history` (workflows/playbook_activities.py, controller/app/playbooks.py).
_HISTORY_READ = re.compile(r"demand history of (?P<twin>.+?)(?P<where> from .+?)? \((?P<count>\d+) buckets?\)")
_HISTORY_NONE = "no demand history: "


def _history(history: str) -> str:
    """The run's `history` worded for its label ("History for held conditions"), so "history" is said once."""
    if not history:
        return "not recorded"
    read = _HISTORY_READ.fullmatch(history)
    if read:
        return f"{_count(int(read['count']), 'bucket')} of {read['twin']}{read['where'] or ''}"
    if history.startswith(_HISTORY_NONE):
        return "none: " + history.removeprefix(_HISTORY_NONE)
    return _words(history)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# "2 approval(s)" as the workflows write it; the report says "2 approvals" (stored reports included).
_PLURAL = re.compile(r"\b(\d+) ([A-Za-z]+)\(s\)")


def _words(text: str) -> str:
    """Producer text for reading: arrows for `->`, proper plurals for `N thing(s)`."""
    return _PLURAL.sub(lambda m: _count(int(m[1]), m[2]), text).replace(" -> ", " → ")


def _row(
    *,
    node: str,
    outcome: str,
    summary: str,
    actions: list[str] | None = None,
    figures: list[tuple[str, str, str]] | None = None,
    risk: str = "",
    details: list[str] | None = None,
    codes: list[str] | None = None,
    trail: dict[str, str | None] | None = None,
    approved_ahead: str = "",
) -> dict[str, Any]:
    return {
        "node": node,
        "outcome": outcome,
        "outcome_words": _OUTCOME_WORDS.get(outcome, outcome.replace("_", " ")),
        "summary": summary,
        "approved_ahead": approved_ahead,
        "actions": actions or [],
        "figures": figures or [],
        "risk": risk,
        "details": details or [],
        "codes": codes or [],
        "trail": trail,
    }


def _node_row(node: NodeReport, trail_url: TrailUrl | None) -> dict[str, Any]:
    trail = None
    if node.proposal_id:
        trail = {
            "id": node.proposal_id,
            "url": trail_url(node.proposal_id) if trail_url else None,
            "command": trail_command(node.proposal_id),
        }
    details = [_words(r) for r in node.reasons]
    if node.compensations_failed:
        failed = _count(node.compensations_failed, "compensation")
        details.append(f"{failed} failed: the estate may be half changed")
    if node.outcome == "not_met":
        details += [_precondition(p) for p in sorted(node.preconditions, key=lambda p: p.met)]
    if node.outcome in ("nothing_to_do", "not_met"):
        details += [_step(s) for s in node.steps if s.status != "planned"]
    return _row(
        node=node.node,
        outcome=node.outcome,
        summary=_not_acted(node) or _words(_said_once(node)),
        actions=[f"{s.name}: {_words(s.action)}" for s in node.steps if s.action],
        figures=_figures(node.before, node.after),
        risk=node.risk or "not assessed",
        details=details,
        codes=list(node.deny_codes),
        trail=trail,
        approved_ahead=f"approved ahead by pre-approval {node.preapproval_id}" if node.preapproval_id else "",
    )


def _said_once(node: NodeReport) -> str:
    """The run's summary of a node without its tail when another column shows that tail.

    The workflow ends a finished node's summary with its reasons (`denied by the safety policy: R1; R2`,
    `rolled_back: R1`), which Why lists, or a run node's with its actions, which Actions lists.
    """
    shown = [node.reasons]
    if node.outcome == "ran":
        shown.append([s.action for s in node.steps if s.action])
    for items in shown:
        tail = ": " + "; ".join(items)
        if items and node.summary.endswith(tail) and len(node.summary) > len(tail):
            before, sep, last = node.summary.removesuffix(tail).rpartition(": ")
            # A stage left at the end (`rolled_back`) as words; nothing else has its underscores replaced.
            return before + sep + (last.replace("_", " ") if last in _STAGES else last)
    return node.summary


_STAGES = frozenset(stage.value for stage in Stage)


def _not_acted(node: NodeReport) -> str:
    """What happened to a node the run planned no change for, when its Why lists the facts; else "".

    The run's summary of such a node restates its preconditions or refused steps, which Why shows
    one by one: What happened says the rule instead, so each fact is shown once.
    """
    if node.outcome == "not_met" and node.preconditions:
        return "no action: the run acts only where every precondition holds"
    if node.outcome == "nothing_to_do" and any(s.status != "planned" for s in node.steps):
        if any(s.status == "refused" for s in node.steps):
            return "no action: when one step is refused, none of the node's steps runs"
        return "no action: no step would change anything"
    return ""


def _step(step: StepReport) -> str:
    return f"step {step.name}: {step.status}" + (f" ({_words(step.reason)})" if step.reason else "")


def _precondition(p: PreconditionResult) -> str:
    """`SOURCE: met|not met[ (value N)][: why]`; a condition's true/false is what met says, so only numbers show."""
    number = (
        f" (value {fmt_number(p.value)})" if isinstance(p.value, int | float) and not isinstance(p.value, bool) else ""
    )
    why = _words(p.detail)
    if not p.met and p.value is None and not why:
        why = "it could not be evaluated, and the run did not record why"
    if not p.met and p.hold_seconds > 0 and p.value is True:
        # Held conditions: true now, yet not shown to have held over the whole window.
        why = f"holds now, but {why}" if why else "holds now, but was not shown to hold over its whole window"
    return f"{p.source}: {'met' if p.met else 'not met'}{number}" + (f": {why}" if why else "")


def _figures(before: NodeFigures | None, after: NodeFigures | None) -> list[tuple[str, str, str]]:
    """(figure, before, after) rows, a missing figure NO_DATA; none at all when neither moment has figures."""
    if before is None and after is None:
        return []

    def pick(figures: NodeFigures | None, name: str, show: Callable[[Any], str]) -> str:
        value = getattr(figures, name) if figures is not None else None
        return NO_DATA if value is None else show(value)

    shown: list[tuple[str, str, Callable[[Any], str]]] = [
        ("replicas", "replicas", str),
        ("demand", "demand_rps", lambda v: f"{fmt_number(v)} rps"),
        ("utilization", "utilization", fmt_percent),
        ("p95", "p95_ms", lambda v: f"{fmt_number(v)} ms"),
    ]
    return [(label, pick(before, name, show), pick(after, name, show)) for label, name, show in shown]


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment.utcoffset() == timedelta(0) else moment.isoformat()


def _duration(span: timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {round(rest / 60)} min"


# ---- the formats --------------------------------------------------------------------------


def render_html(report: PlaybookRunReport, trail_url: TrailUrl | None = None) -> str:
    """The report as one self-contained HTML page: inline CSS, no script, nothing loaded from anywhere."""
    view = report_view(report, trail_url)
    return _env.get_template("playbook_report.html.j2").render(view=view, body=_body(view))


def render_html_body(report: PlaybookRunReport, trail_url: TrailUrl | None = None) -> Markup:
    """The page's content alone (no inline style), for a page of the web UI to embed."""
    return _body(report_view(report, trail_url))


def _body(view: dict[str, Any]) -> Markup:
    # Markup: the template escaped every value it put in (autoescape), so the whole is safe to embed as is.
    return Markup(_env.get_template("playbook_report_body.html.j2").render(view=view, no_data=NO_DATA))


def render_json(report: PlaybookRunReport) -> str:
    """The report as the model's JSON (what the store keeps and the API answers)."""
    return report.model_dump_json(indent=2) + "\n"


def render_markdown(report: PlaybookRunReport, trail_url: TrailUrl | None = None) -> str:
    """The report as Markdown: the facts, the summary line, one table per section."""
    view = report_view(report, trail_url)
    lines = [f"# {_md(view['title'])}: {_md(view['status_words'])}", ""]
    if view["description"]:
        lines += [_md(view["description"]), ""]
    lines += [f"**{_md(view['summary'])}**", ""]
    lines += [f"- {label}: {_md(value)}" for label, value in view["facts"]]
    if not view["sections"]:
        lines += ["", "No node matched the playbook's target."]
    for section in view["sections"]:
        columns = section["columns"]
        lines += ["", f"## {section['title']} ({len(section['rows'])})", ""]
        lines.append("| " + " | ".join(header for _, header in columns) + " |")
        lines.append("|" + "---|" * len(columns))
        for row in section["rows"]:
            lines.append("| " + " | ".join(_md_cell(key, row) for key, _ in columns) + " |")
    return "\n".join(lines) + "\n"


def _md_cell(key: str, row: dict[str, Any]) -> str:
    match key:
        case "node":
            return _code(row["node"])
        case "outcome":
            return _md(row["outcome_words"])
        case "summary":
            return _md_list(text for text in (row["summary"], row["approved_ahead"]) if text) or "–"
        case "figures":
            return _md_list(f"{label} {b} → {a}" for label, b, a in row["figures"]) or NO_DATA
        case "actions" | "details" | "codes":
            return _md_list(row[key]) or "–"
        case "trail":
            trail = row["trail"]
            if trail is None:
                return "–"
            if trail["url"]:
                return f"[{_md(trail['id'])}](<{_md_url(trail['url'])}>)"
            return _code(trail["command"])
        case _:
            return _md(str(row[key])) or "–"


def _md_list(items: Iterable[str]) -> str:
    return "; ".join(_md(item) for item in items)


# What Markdown would read as markup in running text: HTML (`<`), links, code, tables, emphasis, strikethrough.
# An underscore inside a word is never emphasis, so `demand_rps` stays as it is.
_MD_SPECIAL = re.compile(r"([\\`*\[\]<|~]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")


def _md(text: str) -> str:
    """Free text for Markdown: on one line, with every character Markdown would read as markup escaped."""
    return _MD_SPECIAL.sub(r"\\\g<0>", " ".join(text.split()))


def _code(text: str) -> str:
    """An identifier as a code span (nothing in it is markup), `|` escaped for the table around it."""
    flat = " ".join(text.split()).replace("|", "\\|")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _md_url(url: str) -> str:
    return url.replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")


def render_report(report: PlaybookRunReport, fmt: ReportFormat = "md", trail_url: TrailUrl | None = None) -> str:
    """The report in `fmt` (md, html or json)."""
    if fmt == "md":
        return render_markdown(report, trail_url)
    if fmt == "html":
        return render_html(report, trail_url)
    if fmt == "json":
        return render_json(report)
    raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")
