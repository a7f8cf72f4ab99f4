"""Start-up stays fast: the CLI imports no heavy module before a command needs it.

The timing itself is measured by `benchmarks/bench_cli.py`; this only checks what is imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("temporalio", "sqlalchemy", "alembic", "regorus", "fastapi", "opentelemetry", "httpx", "twin.simulator")


def imported_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY)


def test_importing_the_cli_imports_nothing_heavy() -> None:
    assert heavy(imported_after("import controller.cli")) == []


def test_help_imports_nothing_heavy() -> None:
    code = (
        "from typer.testing import CliRunner\nfrom controller.cli import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0"
    )
    assert heavy(imported_after(code)) == []


@pytest.mark.parametrize("name", ["detect", "plan", "twin", "audit", "users"])
def test_lazy_commands_show_the_help_of_the_real_ones(name: str) -> None:
    from controller.cli import _LAZY, load_command

    real = load_command(name)
    assert _LAZY[name][2] == real.get_short_help_str(limit=1000)
