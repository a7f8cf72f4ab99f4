"""CLI start-up: wall time of `twinops --help`, `queue` and `show`, and the import time of `controller.cli`.

Each command runs as a user runs it (the console script, a fresh process), median of
REPEATS runs after one warm-up, on a fresh TWINOPS_HOME (SQLite). `queue` lists 20 open
proposals. `show` runs its whole path against the embedded Temporal dev server: token
check, id resolution, connect, the `state` query, which answers "workflow not found"
because no worker runs the proposal (exit 2; rendering a state costs a few ms more).
`import controller.cli` is the cumulative figure from `python -X importtime`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

NAME = "cli"
REPEATS = 7
TARGET_SECONDS = 0.5
TWINOPS = Path(sys.executable).with_name("twinops")


def _time(args: list[str], env: dict[str, str], expect: set[int]) -> float:
    runs = []
    for i in range(REPEATS + 1):
        started = time.perf_counter()
        done = subprocess.run([str(TWINOPS), *args], env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode not in expect:
            raise RuntimeError(f"twinops {' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}")
        if i:  # the first run warms the page cache and writes .pyc files
            runs.append(elapsed)
    return statistics.median(runs)


def _import_seconds(module: str, env: dict[str, str]) -> float:
    runs = []
    for _ in range(REPEATS):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"], env=env, capture_output=True, text=True
        ).stderr
        last = [line for line in err.splitlines() if line.rstrip().endswith(f"| {module}")][-1]
        runs.append(int(last.split("|")[1]) / 1e6)
    return statistics.median(runs)


def _seed(home: Path) -> tuple[str, str]:
    """20 open proposals in the inbox and an approver's token; returns (token, one proposal id)."""
    from controller.adapters.identity import Identities
    from controller.adapters.inbox import SqlApprovalInbox
    from controller.core.db import create_engine, migrate
    from workflows.ports import InboxEntry, InboxStatus

    engine = create_engine(f"sqlite:///{(home / 'twinops.db').resolve()}")
    migrate(engine)
    inbox = SqlApprovalInbox(engine)
    now = datetime.now(UTC)
    for i in range(20):
        inbox.upsert_sync(
            InboxEntry(
                proposal_id=f"p-{i:04d}bench{'0' * 11}",
                workflow_id=f"remediation-bench-{i}",
                twin_id="shop",
                status=InboxStatus.PENDING,
                risk="medium",
                target="gateway",
                summary="gateway saturated; scale gateway and checkout in one step " * 3,
                created_at=now,
                deadline=now + timedelta(hours=1),
                required_approvals=2,
            )
        )
    token = Identities(engine).add_user("bench", "approver", "edge")
    engine.dispose()
    return token, "p-0007bench"


def run() -> dict[str, Any]:
    """Time the commands; see the module docstring."""
    from controller.adapters.temporal_server import TemporalRuntime
    from controller.core.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWINOPS_")}
        env.update({"TWINOPS_HOME": str(home), "COLUMNS": "120"})
        token, proposal = _seed(home)
        figures: dict[str, float] = {
            "import controller.cli": _import_seconds("controller.cli", env),
            "twinops --help": _time(["--help"], env, {0}),
            "twinops queue": _time(["queue"], env, {0}),
        }

        async def with_temporal() -> float:
            async with TemporalRuntime(Settings(home=home / "temporal", temporal_ui=False)) as rt:
                assert rt.info is not None
                show_env = {**env, "TWINOPS_TEMPORAL_ADDRESS": rt.info.address, "TWINOPS_TOKEN": token}
                return await asyncio.to_thread(_time, ["show", proposal], show_env, {2})

        figures["twinops show"] = asyncio.run(with_temporal())
    return {
        "repeats": REPEATS,
        "target_seconds": TARGET_SECONDS,
        "seconds": {k: round(v, 3) for k, v in figures.items()},
    }


def summarize(result: dict[str, Any]) -> list[str]:
    """Markdown lines for README."""
    lines = [
        f"**CLI start-up** (median of {result['repeats']} fresh processes; `python -m benchmarks cli`)",
        "",
        "| command | seconds |",
        "|---|---:|",
    ]
    lines += [f"| `{name}` | {seconds:.2f} |" for name, seconds in result["seconds"].items()]
    return lines
