"""Audit ledger: append throughput, verification time at 100k and 1M events, inclusion-proof time.

Appends go through the real `SqlAuditLedger.append_sync` (validation, lock, insert,
heads every 100 events). The 100k and 1M ledgers for verification are built by bulk
insert of precomputed rows (canonical entries, leaf hashes and signed heads every
100 events computed exactly as the ledger does), because appending a million events
one transaction at a time would take most of an hour and measure nothing new.
PostgreSQL figures are skipped (and say so) when TWINOPS_TEST_POSTGRES_URL is unreachable.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, Table, insert, text

from controller.adapters.audit import NoteSigner, SqlAuditLedger, prove_event
from controller.adapters.audit.canonical import canonical_json, entry_bytes, format_time
from controller.adapters.audit.merkle import Frontier, leaf_hash
from controller.adapters.audit.models import AuditEventRow, TreeHeadRow
from controller.core.db import create_engine, migrate, scratch_postgres_schema
from workflows.audit import AuditEventInput

NAME = "audit"
PG_URL = os.environ.get("TWINOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ORIGIN = "twinops.bench/audit"
T0 = datetime(2026, 11, 21, tzinfo=UTC)
HEAD_EVERY = 100


def _event(i: int, prefix: str) -> AuditEventInput:
    return AuditEventInput(
        event_id=f"{prefix}-{i}",
        time=T0 + timedelta(milliseconds=i),
        remediation_id=f"rem-{i // 20}",
        workflow_id=f"remediation/rem-{i // 20}",
        run_id="run-1",
        actor="agent:executor",
        kind="step_started",
        target_nodes=("checkout",),
        payload={
            "step_id": f"s{i}",
            "action": {"type": "scale", "node": "checkout", "from": 4, "to": 6},
            "idempotency_key": f"rem-{i // 20}:s{i}",
        },
    )


@contextmanager
def _sqlite() -> Iterator[Callable[[], Engine]]:
    with tempfile.TemporaryDirectory(prefix="twinops-bench-audit-") as home:
        engines: list[Engine] = []

        def make() -> Engine:
            engines.append(create_engine(f"sqlite:///{home}/audit.db"))
            return engines[-1]

        migrate(make())
        yield make
        for e in engines:
            e.dispose()


@contextmanager
def _postgres() -> Iterator[Callable[[], Engine]]:
    with scratch_postgres_schema(PG_URL, "twinops_bench") as make:
        yield make


def _appends(make: Callable[[], Engine], signer: NoteSigner, writers: int, per_writer: int) -> float:
    ledgers = [SqlAuditLedger(make(), signer, head_every_events=HEAD_EVERY) for _ in range(writers)]

    def write(w: int) -> None:
        for i in range(per_writer):
            ledgers[w].append_sync(_event(i, f"w{w}"))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    ledgers[0].publish_head()  # verification fails events left outside a head once its interval has passed
    report = ledgers[0].verify()
    assert report.ok and report.events == writers * per_writer, report.problems[:3]
    return round(writers * per_writer / elapsed, 1)


def _bulk_build(engine: Engine, signer: NoteSigner, n: int) -> float:
    """Insert n precomputed entries and their heads; returns seconds spent."""
    started = time.perf_counter()
    events, heads = cast(Table, AuditEventRow.__table__), cast(Table, TreeHeadRow.__table__)
    template = _event(0, "bulk")
    frontier = Frontier()
    chunk: list[dict[str, Any]] = []
    head_rows: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for seq in range(n):
            when = format_time(T0 + timedelta(milliseconds=seq))
            payload = {**template.payload, "step_id": f"s{seq}", "idempotency_key": f"rem-{seq // 20}:s{seq}"}
            entry = {
                "seq": seq,
                "event_id": f"bulk-{seq}",
                "time": when,
                "remediation_id": f"rem-{seq // 20}",
                "workflow_id": f"remediation/rem-{seq // 20}",
                "run_id": "run-1",
                "actor": template.actor,
                "kind": template.kind.value,
                "target_nodes": ["checkout"],
                "payload": payload,
            }
            leaf = leaf_hash(entry_bytes(entry))
            frontier.append(leaf)
            chunk.append(
                {
                    **entry,
                    "target_nodes": '["checkout"]',
                    "payload": canonical_json(payload).decode(),
                    "leaf_hash": leaf.hex(),
                }
            )
            if frontier.size % HEAD_EVERY == 0 or frontier.size == n:
                root = frontier.root()
                at = T0 + timedelta(milliseconds=seq)
                head_rows.append(
                    {
                        "tree_size": frontier.size,
                        "root_hash": root.hex(),
                        "time": format_time(at),
                        "checkpoint": signer.sign_checkpoint(ORIGIN, frontier.size, root, at),
                    }
                )
            if len(chunk) >= 10_000:
                conn.execute(insert(events), chunk)
                chunk = []
        if chunk:
            conn.execute(insert(events), chunk)
        conn.execute(insert(heads), head_rows)
    return time.perf_counter() - started


def _verify_and_prove(make: Callable[[], Engine], signer: NoteSigner, n: int) -> dict[str, float]:
    engine = make()
    build = _bulk_build(engine, signer, n)
    ledger = SqlAuditLedger(engine, signer, head_every_events=HEAD_EVERY)
    started = time.perf_counter()
    report = ledger.verify()
    verify_s = time.perf_counter() - started
    assert report.ok and report.events == n and report.verified_size == n, report.problems[:3]
    started = time.perf_counter()
    proof = prove_event(ledger, f"bulk-{n // 3}")
    prove_s = time.perf_counter() - started
    assert proof.tree_size == n
    return {
        "build_seconds": round(build, 2),
        "verify_seconds": round(verify_s, 2),
        "verify_events_per_second": round(n / verify_s),
        "prove_seconds": round(prove_s, 3),
    }


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any connection failure means: skip PostgreSQL, say why
        return f"{type(exc).__name__}: {exc}"
    return None


def run() -> dict[str, Any]:
    """Measure everything; PostgreSQL parts are skipped with the reason when unreachable."""
    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    result: dict[str, Any] = {"head_every_events": HEAD_EVERY, "bulk_built_for_verify": True}
    with _sqlite() as make:
        result["sqlite_appends_per_second_1_writer"] = _appends(make, signer, 1, 2000)
    with _sqlite() as make:
        result["sqlite_appends_per_second_8_writers"] = _appends(make, signer, 8, 250)
    for n, label in ((100_000, "100k"), (1_000_000, "1m")):
        with _sqlite() as make:
            result[f"sqlite_{label}"] = _verify_and_prove(make, signer, n)
    reason = _pg_reachable()
    if reason is not None:
        result["postgres_skipped"] = reason
        return result
    with _postgres() as make:
        result["postgres_appends_per_second_1_writer"] = _appends(make, signer, 1, 2000)
    with _postgres() as make:
        result["postgres_appends_per_second_8_writers"] = _appends(make, signer, 8, 250)
    with _postgres() as make:
        result["postgres_100k"] = _verify_and_prove(make, signer, 100_000)
    return result


def summarize(result: dict[str, Any]) -> list[str]:
    """Markdown lines for the README."""
    lines = [
        "**Audit ledger** (appends through the ledger, heads every 100 events; verify = recompute every leaf,",
        "the tree and every signed head; prove = one inclusion proof, leaf hashes loaded from the database)",
        "",
        "| store | appends/s, 1 writer | appends/s, 8 writers | verify 100k | verify 1M "
        "| proof at 100k | proof at 1M |",
        "|---|---|---|---|---|---|---|",
    ]
    for store in ("sqlite", "postgres"):
        if f"{store}_appends_per_second_1_writer" not in result:
            lines.append(f"| {store} | skipped: {result.get(f'{store}_skipped', 'not measured')} | | | | | |")
            continue
        k100, k1m = result.get(f"{store}_100k", {}), result.get(f"{store}_1m", {})

        def cell(d: dict[str, Any], key: str, unit: str) -> str:
            return f"{d[key]} {unit}" if key in d else "-"

        lines.append(
            f"| {store} | {result[f'{store}_appends_per_second_1_writer']} | "
            f"{result[f'{store}_appends_per_second_8_writers']} | {cell(k100, 'verify_seconds', 's')} | "
            f"{cell(k1m, 'verify_seconds', 's')} | {cell(k100, 'prove_seconds', 's')} | "
            f"{cell(k1m, 'prove_seconds', 's')} |"
        )
    return lines
