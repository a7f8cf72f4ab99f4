"""`twinops audit`: read, query, export, prove and verify the tamper-evident decision trail.

Exit codes: 0 fine, 1 verification failed (the message names the first bad seq), 2 bad input or unknown id.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich import box
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from controller.adapters.audit import (
    InclusionProof,
    KeptCheckpoint,
    LedgerReader,
    NoteVerifier,
    SqlAuditLedger,
    VerificationReport,
    load_verifier,
    prove_event,
    read_witness_dir,
    verify_export,
    verify_inclusion_proof,
    write_export,
)
from controller.adapters.audit.report import render_report
from controller.cli._common import console, err_console, fail, print_json, settings_of
from controller.cli._ids import remediation_ids, resolve_id
from controller.core.errors import AuditError, ConfigurationError, LedgerIntegrityError, NotFoundError
from workflows.audit import AuditRecord, EventKind

app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit trail (RFC 6962 log, signed checkpoints).")

_KIND_STYLE = {
    "rejected": "red",
    "step_failed": "red",
    "verification_failed": "red",
    "compensation_failed": "bold red",
    "expired": "yellow",
    "escalated": "yellow",
    "approved": "green",
    "verified": "green",
    "completed": "bold",
}


def _ledger(ctx: typer.Context) -> SqlAuditLedger:
    try:
        return SqlAuditLedger.from_settings(settings_of(ctx))
    except (AuditError, ConfigurationError) as exc:
        fail(str(exc))


def _resolve(ledger: SqlAuditLedger, remediation_id: str) -> str:
    """The full remediation id for an id or unique prefix: the resolver `approve` and `show` use too."""
    try:
        return resolve_id(remediation_id, remediation_ids(ledger.engine), "remediation")
    except NotFoundError as exc:  # AmbiguousIdError included
        fail(str(exc))


def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{name} {value!r}: not an ISO 8601 time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _summary(record: AuditRecord) -> str:
    p = record.payload
    match record.kind:
        case EventKind.PROPOSED:
            return str(p.get("rationale", ""))
        case EventKind.POLICY_EVALUATED:
            verdict = "allow" if p.get("allow") else "deny"
            return f"{verdict} (bundle {p.get('bundle_revision')}, sha256 {str(p.get('bundle_sha256'))[:12]}…)"
        case EventKind.APPROVED | EventKind.REJECTED:
            return f"by {p.get('by')} rule {p.get('rule')}: {p.get('comment') or ''}".rstrip(": ")
        case EventKind.APPROVAL_REQUESTED:
            details = p.get("details") or {}
            groups = " or ".join(details.get("approver_groups") or []) or "any approver"
            return (
                f"{p.get('required_approvals')} approval(s) from {groups}, risk {details.get('risk', '-')}, "
                f"expires {p.get('expires_at')}"
            )
        case EventKind.STEP_STARTED | EventKind.COMPENSATION_STARTED:
            return f"{p.get('step_id')}: {json.dumps(p.get('action'), sort_keys=True)}"
        case EventKind.STEP_FAILED | EventKind.COMPENSATION_FAILED:
            return f"{p.get('step_id')}: {p.get('error')}"
        case EventKind.COMPLETED:
            return f"{p.get('outcome')} {p.get('summary') or ''}".strip()
        case _:
            shown = {k: v for k, v in p.items() if v not in ({}, [], None, "")}
            text = json.dumps(shown, sort_keys=True, ensure_ascii=False)
            return text if len(text) <= 200 else text[:199] + "…"  # cut visibly; --json has it all


WIDE = 120
"""From this width the timeline is a table; below it each event is a line with its text beneath."""


def _timeline(records: list[AuditRecord], title: str) -> RenderableType:
    """The timeline fit to the terminal; `--json` has every field in full."""
    days = {r.time.date() for r in records}
    one_day = len(days) == 1
    if one_day:
        title = f"{title} ({next(iter(days)).isoformat()}, UTC)"
    when = "%H:%M:%S" if one_day else "%m-%d %H:%M:%S"
    if console.width >= WIDE:
        return _table(records, title, when)
    lines: list[RenderableType] = [Text(title, style="italic")]
    for r in records:
        style = _KIND_STYLE.get(r.kind.value, "")
        head = Text.assemble(
            f"{r.seq:>4} {r.time.strftime(when)} ",
            (r.kind.value, style),
            f"  {r.actor}  {', '.join(r.target_nodes)}",
            no_wrap=True,
            overflow="ellipsis",
        )
        lines += [head, Padding(Text(_summary(r), overflow="fold"), (0, 0, 0, 5))]
    return Group(*lines)


def _table(records: list[AuditRecord], title: str, when: str) -> Table:
    table = Table(
        title=title, title_justify="left", expand=True, box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0)
    )
    table.add_column("seq", no_wrap=True, justify="right")
    table.add_column("time", no_wrap=True)
    for column, width in (("kind", 20), ("actor", 20), ("nodes", 24)):
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=width)
    table.add_column("what", overflow="fold", ratio=1, min_width=30)
    for r in records:
        style = _KIND_STYLE.get(r.kind.value, "")
        table.add_row(
            str(r.seq),
            r.time.strftime(when),
            f"[{style}]{r.kind.value}[/]" if style else r.kind.value,
            r.actor,
            ", ".join(r.target_nodes),
            _summary(r),
        )
    return table


@app.command()
def show(
    ctx: typer.Context,
    remediation_id: Annotated[str, typer.Argument(help="remediation id (a unique prefix is enough)")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output, nothing cut")] = False,
) -> None:
    """The decision trail of one remediation, as a timeline."""
    ledger = _ledger(ctx)
    remediation_id = _resolve(ledger, remediation_id)
    trail = ledger.trail_sync(remediation_id)
    if not trail:
        fail(f"remediation {remediation_id!r}: no audit events")
    if as_json:
        print_json([r.model_dump(mode="json") for r in trail])
        return
    console.print(_timeline(trail, f"Remediation {remediation_id}"))


@app.command()
def query(
    ctx: typer.Context,
    node: Annotated[str | None, typer.Option("--node", help="events targeting this node")] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="agent:NAME, user:ID, playbook:NAME or system")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="event kind")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time, inclusive (naive means UTC)")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time, exclusive (naive means UTC)")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Events matching every given filter, in log order."""
    event_kind = None
    if kind is not None:
        try:
            event_kind = EventKind(kind)
        except ValueError:
            fail(f"--kind {kind!r}: unknown; known kinds: {', '.join(k.value for k in EventKind)}")
    records = _ledger(ctx).query(
        node=node, actor=actor, kind=event_kind, since=_when(since, "since"), until=_when(until, "until"), limit=limit
    )
    if as_json:
        print_json([r.model_dump(mode="json") for r in records])
        return
    console.print(_timeline(records, f"{len(records)} event(s)"))


@app.command()
def export(
    ctx: typer.Context,
    fmt: Annotated[Literal["jsonl"], typer.Option("--format", help="export format")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", help="file to write (default: stdout)")] = None,
) -> None:
    """Every event with its leaf hash, every signed head and the verifier key, as JSON Lines."""
    ledger = _ledger(ctx)
    if out is None:
        write_export(ledger, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    with out.open("wb") as fh:
        count = write_export(ledger, fh)
    err_console.print(f"exported {count} events to {out}")


@app.command("public-key")
def public_key(
    ctx: typer.Context,
    pem: Annotated[bool, typer.Option("--pem", help="PEM instead of the signed-note verifier key")] = False,
) -> None:
    """The log's public key, to hand to auditors out of band."""
    ledger = _ledger(ctx)
    typer.echo(ledger.signer.public_pem().rstrip() if pem else ledger.signer.verifier_key)


@app.command()
def head(ctx: typer.Context) -> None:
    """Sign a tree head now (heads are also signed every N events or T seconds)."""
    signed = _ledger(ctx).publish_head()
    typer.echo(signed.checkpoint, nl=False)


def _print_report(report: VerificationReport, what: str, kept: int = 0) -> None:
    first = report.first
    if first is not None:
        where = f"seq {first.seq}: " if first.seq is not None else ""
        err_console.print(
            f"[bold red]FAILED[/] {what}: {where}{first.kind}: {first.message}", highlight=False, soft_wrap=True
        )
        for problem in report.problems[1:10]:
            err_console.print(f"  also: {problem.kind}: {problem.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    against = f", matches {kept} kept checkpoint(s)" if kept else ""
    console.print(
        f"[green]OK[/] {what}: {report.events} events, {report.heads} signed heads, "
        f"verified up to size {report.verified_size}, root {report.root_hash}{against}",
        highlight=False,
        soft_wrap=True,
    )
    if report.unsigned_tail:
        console.print(f"note: {report.unsigned_tail} newest event(s) are not yet under a signed head")


@app.command()
def verify(
    ctx: typer.Context,
    export_file: Annotated[
        Path | None, typer.Option("--export", help="verify this export instead of the database")
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option("--public-key", help="verifier key (or PEM) obtained independently")
    ] = None,
    kept: Annotated[
        list[Path] | None,
        typer.Option("--checkpoint", help="a signed checkpoint kept from an earlier look; must still match"),
    ] = None,
    witness: Annotated[
        Path | None,
        typer.Option("--witness", help="a witness directory: every checkpoint kept there must still match"),
    ] = None,
) -> None:
    """Recompute every leaf and the tree, check every signed head and kept checkpoint; exit 1 naming the first
    bad seq (or checkpoint). Creates nothing: a missing database or key exits 2 naming the path."""
    checkpoints: list[KeptCheckpoint] = []
    try:
        for path in kept or []:
            checkpoints.append(KeptCheckpoint(path.read_text(encoding="utf-8"), str(path)))
        if witness is not None:
            checkpoints.extend(read_witness_dir(witness))
    except OSError as exc:
        fail(f"checkpoint {exc.filename}: {exc.strerror or exc}")
    except AuditError as exc:
        fail(str(exc))
    if export_file is None:
        settings = settings_of(ctx)
        try:
            reader = LedgerReader.open(settings, _verifier(key_file, name=settings.audit_origin))
        except (AuditError, ConfigurationError) as exc:
            fail(str(exc))
        if key_file is None and settings.audit_public_key is None:
            err_console.print(
                f"note: checked with the key at {settings.resolved_signing_key}; whoever can replace the database "
                "can often replace that too: pass --public-key (obtained independently) and --witness",
                highlight=False,
                soft_wrap=True,
            )
        try:
            _print_report(reader.verify(kept_checkpoints=checkpoints), "ledger", len(checkpoints))
        finally:
            reader.engine.dispose()
        return
    verifier = _verifier(key_file, name=None)
    try:
        data = export_file.read_bytes()
    except OSError as exc:
        fail(f"{export_file}: {exc.strerror or exc}")
    if verifier is None:
        err_console.print("warning: no --public-key: checked against the key inside the export (self-consistency only)")
    _print_report(verify_export(data, verifier, kept_checkpoints=checkpoints), str(export_file), len(checkpoints))


def _verifier(key_file: Path | None, name: str | None) -> NoteVerifier | None:
    if key_file is None:
        return None
    try:
        return load_verifier(key_file, name)
    except (OSError, AuditError) as exc:
        fail(f"{key_file}: {exc}")


@app.command()
def prove(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(help="event id")],
    out: Annotated[Path | None, typer.Option("--out", help="file to write (default: stdout)")] = None,
) -> None:
    """An inclusion proof of one event against the latest signed head (signing one if needed)."""
    try:
        proof = prove_event(_ledger(ctx), event_id)
    except NotFoundError as exc:
        fail(str(exc))
    text = proof.model_dump_json(indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        err_console.print(f"proof of {event_id} (seq {proof.leaf_index}, tree size {proof.tree_size}) written to {out}")


@app.command("verify-proof")
def verify_proof(
    proof_file: Annotated[Path, typer.Argument(help="proof JSON from `twinops audit prove`")],
    key_file: Annotated[Path, typer.Option("--public-key", help="verifier key (or PEM) obtained independently")],
    origin: Annotated[str | None, typer.Option("--origin", help="key name, needed with a PEM key")] = None,
) -> None:
    """Check an inclusion proof offline, with only the public key."""
    try:
        proof = InclusionProof.model_validate_json(proof_file.read_text())
    except OSError as exc:
        fail(f"{proof_file}: {exc.strerror or exc}")
    except ValueError as exc:
        fail(f"{proof_file}: not an inclusion proof ({exc})")
    verifier = _verifier(key_file, origin)
    assert verifier is not None
    try:
        checkpoint = verify_inclusion_proof(proof, verifier)
    except LedgerIntegrityError as exc:
        err_console.print(f"[bold red]FAILED[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(
        f"[green]OK[/] event {proof.entry.get('event_id')!r} is entry {proof.leaf_index} of {checkpoint.origin}, "
        f"tree size {checkpoint.size}, signed at {checkpoint.time.isoformat()}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def report(
    ctx: typer.Context,
    remediation_id: Annotated[str, typer.Argument(help="remediation id (a unique prefix is enough)")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write")] = Path("report.html"),
) -> None:
    """A self-contained HTML report of one remediation, inclusion proofs included."""
    ledger = _ledger(ctx)
    remediation_id = _resolve(ledger, remediation_id)
    try:
        html = render_report(ledger, remediation_id)
    except NotFoundError as exc:
        fail(str(exc))
    out.write_text(html, encoding="utf-8")
    err_console.print(f"report written to {out}")
