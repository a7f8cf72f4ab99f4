"""`twinops policy`: evaluate a decision from an input file, run the bundle's Rego tests.

`policy eval` exit codes, for scripts: 0 allow (the approval counts), 1 deny (does not
count), 2 invalid input or engine error (the input is not the package's input
document, the engine failed, timed out or gave a malformed answer; the gate failed
closed, so the JSON still shows a deny).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from controller.cli._common import console, fail, print_json, settings_of

if TYPE_CHECKING:
    from controller.adapters.policy import FailClosedGate
    from workflows.policy import ApprovalDecision, Reason, SafetyDecision

app = typer.Typer(no_args_is_help=True, help="Evaluate and test the Rego policy bundle.")

EXIT_ALLOW, EXIT_DENY, EXIT_INVALID = 0, 1, 2
# Reason codes that mean "no real decision": the input was not valid, or the engine failed.
# The gate's fail-closed codes all start with "policy_" (policy_timeout, policy_error, ...).
_INVALID_CODES = frozenset({"invalid_input", "malformed_input"})


def _no_decision(reason: Reason) -> bool:
    return reason.code in _INVALID_CODES or reason.code.startswith("policy_")


def exit_code(decision: SafetyDecision | ApprovalDecision) -> int:
    """0 allow / counts, 1 deny / does not count, 2 when the input was invalid or the engine failed."""
    from workflows.policy import SafetyDecision

    if isinstance(decision, SafetyDecision):
        allowed, reasons = decision.allow, decision.deny
    else:
        allowed, reasons = decision.counts, decision.reasons
    if any(_no_decision(r) for r in reasons):
        return EXIT_INVALID
    return EXIT_ALLOW if allowed else EXIT_DENY


async def _evaluate(
    gate: FailClosedGate, package: Literal["safety", "approval"], document: Any
) -> SafetyDecision | ApprovalDecision:
    try:
        return await gate.evaluate_document(package, document)
    finally:
        await gate.aclose()


def _print(decision: SafetyDecision | ApprovalDecision) -> None:
    from workflows.policy import SafetyDecision

    if isinstance(decision, SafetyDecision):
        verdict = "[green]allow[/]" if decision.allow else "[red]deny[/]"
        console.print(
            f"{verdict}  risk={decision.risk}  approvals={decision.required_approvals}  "
            f"auto_approve={decision.auto_approve}  groups={','.join(decision.approver_groups) or '-'}"
        )
        reasons = decision.deny
    else:
        verdict = "[green]counts[/]" if decision.counts else "[red]does not count[/]"
        console.print(
            f"{verdict}  quorum_met={decision.quorum_met}  counted={decision.approvals_counted}  "
            f"still_needed={decision.still_needed}"
        )
        reasons = [*decision.reasons, *decision.pending]
    for reason in reasons:
        console.print(f"  - {reason.code}: {reason.msg}", highlight=False)
    console.print(f"bundle {decision.bundle_revision} sha256:{decision.bundle_sha256[:12]} via {decision.engine}")


@app.command("eval")
def eval_(
    ctx: typer.Context,
    input_file: Annotated[Path, typer.Option("--input", help="JSON input document (SafetyInput or ApprovalInput)")],
    package: Annotated[
        Literal["safety", "approval"], typer.Option("--package", help="which decision to ask for")
    ] = "safety",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Ask the configured engine (regorus, or OPA when TWINOPS_OPA_URL is set) for one decision.

    Exit code: 0 allow (approval: counts), 1 deny (approval: does not count),
    2 invalid input or engine error (unreadable file, not JSON, not a valid input
    document, engine failure or timeout).
    """
    from controller.adapters.policy import FailClosedGate, make_policy_gate
    from controller.core.errors import PolicyError

    try:
        document = json.loads(input_file.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"{input_file}: {exc.strerror or exc}")
    except ValueError as exc:
        fail(f"{input_file}: not JSON ({exc})")
    settings = settings_of(ctx)
    try:
        gate = make_policy_gate(settings)
    except PolicyError as exc:
        fail(str(exc))
    if not isinstance(gate, FailClosedGate):  # pragma: no cover - the factory only builds these
        fail(f"unexpected gate {type(gate).__name__}")
    decision = asyncio.run(_evaluate(gate, package, document))
    if as_json:
        print_json(decision.model_dump(mode="json"))
    else:
        _print(decision)
    raise typer.Exit(exit_code(decision))


@app.command("test")
def test(
    ctx: typer.Context,
    policies_dir: Annotated[
        Path | None, typer.Option("--dir", help="bundle folder (default: TWINOPS_POLICIES_DIR)")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose/--quiet", "-v/-q", help="list passing tests too")] = True,
) -> None:
    """Run every test_* rule of the bundle with regorus, like `opa test`; exit 1 when any fails."""
    from controller.adapters.policy import format_report, run_rego_tests

    report = run_rego_tests(policies_dir or settings_of(ctx).policies_dir)
    typer.echo(format_report(report, verbose=verbose))
    if not report.ok:
        raise typer.Exit(1)
