"""Prometheus as the twin source: the twin model's PromQL, run concurrently, into a twin.v1 snapshot.

The model's `plan()` gives the queries: one per node and value (per edge) for a per-node template,
one per batched template (`{{nodes}}`, `{{sources}}`) and chunk of at most `batch` nodes, whose
answer is split by the label naming the node (`by`). Every query of one snapshot is sent as a
form body (a batched one's regex can be long), evaluated at the same instant (`time=`), at most
`concurrency` at once, and all of them within one deadline. What cannot be observed is said,
never guessed: a query that answers no series (or NaN) leaves its value unset and adds a
`missing` quality issue for the node (a batched query: no series with the node's label value);
several series where one was expected add an `ambiguous` one (they are not summed). An edge
whose ratio cannot be measured is left out and its target gets the issue. Fails closed with
`TwinSourceError`: Prometheus unreachable, an HTTP or PromQL error, the deadline passed, or a
node's replicas unknown (twin.v1 needs them, and a replica count is not something to guess)
mean no snapshot at all.

`history(window_seconds, step_seconds)` runs the same queries as range queries
(`/api/v1/query_range`) and gives one snapshot per step, oldest first.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import httpx

from controller.adapters.twin_model import MAX_BATCH, Measured, PlannedQuery, TwinModel
from twin.contract import Snapshot, SnapshotError, parse_snapshot
from twin.sources import TwinSourceError

__all__ = ["MAX_HISTORY_POINTS", "PrometheusSource", "prometheus_get", "prometheus_post", "split_answer"]

MAX_HISTORY_POINTS: Final = 11_000
"""Prometheus refuses a range query of more than 11,000 points per series."""

T = TypeVar("T")
Labels = dict[str, str]
Series = list[tuple[Labels, list[tuple[float, float]]]]
"""One query's answer: each series' labels and its (unix time, value) points."""


def _label(q: PlannedQuery, m: Measured) -> str:
    return f"{m.label()} ({q.shown()})"


async def prometheus_get(client: httpx.AsyncClient, url: str, path: str, params: Mapping[str, str], what: str) -> Any:
    """GET one Prometheus HTTP API `path` and return its `data`; TwinSourceError naming `what` otherwise.

    Unreachable, a status other than 200, a body that is not JSON or not `"status": "success"`: each
    is no answer (the caller fails closed), with Prometheus's own error text when it gave one.
    """
    try:
        response = await client.get(path, params=dict(params))
    except httpx.TransportError as exc:
        raise TwinSourceError(f"Prometheus at {url} unreachable: {type(exc).__name__}: {exc}") from exc
    return _data(response, url, what)


async def prometheus_post(client: httpx.AsyncClient, url: str, path: str, params: Mapping[str, str], what: str) -> Any:
    """`prometheus_get`, the parameters sent as a form body (no URL length limit for a long batched regex)."""
    try:
        response = await client.post(path, data=dict(params))
    except httpx.TransportError as exc:
        raise TwinSourceError(f"Prometheus at {url} unreachable: {type(exc).__name__}: {exc}") from exc
    return _data(response, url, what)


def _data(response: httpx.Response, url: str, what: str) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
        reason = body.get("error") if isinstance(body, dict) and body.get("error") else response.text[:200]
        raise TwinSourceError(f"Prometheus at {url}: HTTP {response.status_code} for {what}: {reason}")
    return body.get("data")


def split_answer(q: PlannedQuery, series: list[tuple[Labels, T]]) -> tuple[dict[Measured, list[tuple[Labels, T]]], int]:
    """A query's series per what they measure (by the values of its `by` labels), and how many had not all of them.

    Series whose key is none of the query's targets (another node's, an edge not measured) are dropped.
    """
    out: dict[Measured, list[tuple[Labels, T]]] = {m: [] for m in q.targets.values()}
    unlabelled = 0
    for labels, value in series:
        if any(name not in labels for name in q.by):
            unlabelled += 1
            continue
        measured = q.targets.get(tuple(labels[name] for name in q.by))
        if measured is not None:
            out[measured].append((labels, value))
    return out, unlabelled


class PrometheusSource:
    """A `twin.sources.TwinSource` over Prometheus' HTTP API, shaped by a `TwinModel`."""

    def __init__(
        self,
        url: str,
        model: TwinModel,
        *,
        timeout_seconds: float = 5.0,
        concurrency: int = 16,
        batch: int = MAX_BATCH,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.timeout_seconds = timeout_seconds
        self.concurrency = concurrency
        self._transport = transport
        self._clock = clock
        self.batch = batch
        self._queries = model.plan(batch)
        self._specs = {n.id: n for n in model.nodes}

    @property
    def queries(self) -> list[PlannedQuery]:
        """The queries of one snapshot (`TwinModel.plan`)."""
        return list(self._queries)

    async def latest(self) -> Snapshot:
        """One snapshot evaluated now; TwinSourceError rather than a snapshot built on guesses."""
        at = self._clock().astimezone(UTC)
        params = {"time": f"{at.timestamp():.3f}"}
        answers = await self._run("/api/v1/query", params)
        now = {q: [(labels, points[-1:]) for labels, points in s] for q, s in answers.items()}
        gap = self._replicas_gap(now)
        if gap is not None:
            raise TwinSourceError(gap)
        return self._snapshot(at, now)

    async def history(self, window_seconds: float, step_seconds: float) -> list[Snapshot]:
        """One snapshot per `step_seconds` over the last `window_seconds`, oldest first (range queries).

        A step at which some node's replicas are unknown is left out (no snapshot without replicas);
        every other gap is a quality issue of that step's snapshot, as in `latest`.
        """
        if step_seconds <= 0 or window_seconds < 0:
            raise ValueError("history needs step_seconds > 0 and window_seconds >= 0")
        if window_seconds / step_seconds >= MAX_HISTORY_POINTS:
            raise ValueError(f"history of {window_seconds:g}s at {step_seconds:g}s steps exceeds {MAX_HISTORY_POINTS}")
        end = round(self._clock().timestamp(), 3)
        start = end - window_seconds
        params = {"start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_seconds:g}"}
        answers = await self._run("/api/v1/query_range", params)
        # Prometheus evaluates at start + k * step; index every point by its step.
        by_step = {
            q: [(labels, {round((t - start) / step_seconds): v for t, v in points}) for labels, points in series]
            for q, series in answers.items()
        }
        snapshots: list[Snapshot] = []
        for k in range(int(window_seconds // step_seconds) + 1):
            t = start + k * step_seconds
            at_t = {
                q: [(labels, [(t, points[k])] if k in points else []) for labels, points in series]
                for q, series in by_step.items()
            }
            if self._replicas_gap(at_t) is None:
                snapshots.append(self._snapshot(datetime.fromtimestamp(t, UTC), at_t))
        return snapshots

    # ---- querying ---------------------------------------------------------------------------

    async def _run(self, path: str, params: Mapping[str, str]) -> dict[PlannedQuery, Series]:
        limit = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, transport=self._transport, timeout=self.timeout_seconds) as c:

            async def one(q: PlannedQuery) -> tuple[PlannedQuery, Series]:
                async with limit:
                    return q, await self._query(c, path, {**params, "query": q.promql}, q)

            try:
                async with asyncio.timeout(self.timeout_seconds):
                    answers = await _gather([one(q) for q in self._queries])
            except TimeoutError:
                # Fails closed: a snapshot half-answered by the deadline would mix moments and gaps.
                raise TwinSourceError(
                    f"Prometheus at {self.url}: {len(self._queries)} queries of twin {self.model.twin_id!r} "
                    f"not answered within {self.timeout_seconds:g}s; no snapshot"
                ) from None
        return dict(answers)

    async def _query(self, client: httpx.AsyncClient, path: str, params: Mapping[str, str], q: PlannedQuery) -> Series:
        what = f"{q.metric} ({q.shown()})"
        return _series(await prometheus_post(client, self.url, path, params, what), what)

    # ---- building the snapshot --------------------------------------------------------------

    def _judged(
        self, answers: Mapping[PlannedQuery, Series]
    ) -> Iterator[tuple[PlannedQuery, Measured, float | None, str, str]]:
        """Per measured value: its query, the value (one finite number) or None, and the problem and why."""
        for q, series in answers.items():
            present = [(labels, points[-1][1]) for labels, points in series if points]
            split, unlabelled = split_answer(q, present)
            for measured, mine in split.items():
                problem, detail = _judge(mine, q.by, measured, unlabelled)
                yield q, measured, (mine[0][1] if problem is None else None), problem or "", detail

    def _replicas_gap(self, answers: Mapping[PlannedQuery, Series]) -> str | None:
        """Why some node's replica count is unknown in `answers`, or None when every node has one."""
        replicas = {q: s for q, s in answers.items() if q.metric == "replicas"}
        for q, measured, value, _, detail in self._judged(replicas):
            if value is None:
                # Fails closed: twin.v1 needs replicas and a guessed count could hide a saturated node.
                return f"twin {self.model.twin_id!r}: {_label(q, measured)} {detail}; no snapshot without replicas"
        return None

    def _snapshot(self, at: datetime, answers: Mapping[PlannedQuery, Series]) -> Snapshot:
        """The snapshot of `answers` (one moment); `_replicas_gap` must have found every replica count."""
        values: dict[tuple[str, str], float] = {}
        ratios: dict[tuple[str, str], float] = {}
        quality: list[dict[str, str]] = []
        for q, m, value, problem, detail in self._judged(answers):
            if value is not None:
                if m.edge is not None:
                    ratios[m.edge] = value
                else:
                    values[(m.node, m.metric)] = value
                continue
            quality.append(
                {"node": m.node, "metric": m.metric, "problem": problem, "detail": f"{_label(q, m)} {detail}"}
            )
        doc: dict[str, Any] = {
            "schema": "twin.v1",
            "twin_id": self.model.twin_id,
            "observed_at": at.isoformat(),
            "nodes": [self._node(n.id, values) for n in self.model.nodes],
            "edges": [],
        }
        for e in self.model.edges:
            ratio = e.ratio if e.ratio is not None else ratios.get((e.source, e.target))
            if ratio is not None:  # an unmeasured ratio is left out; its target holds the quality issue
                doc["edges"].append({"source": e.source, "target": e.target, "ratio": ratio})
        if quality:
            doc["quality"] = sorted(quality, key=lambda i: (i["node"], i["metric"]))
        try:
            return parse_snapshot(doc)
        except SnapshotError as exc:
            raise TwinSourceError(f"Prometheus at {self.url}, twin model {self.model.twin_id!r}: {exc}") from exc

    def _node(self, node_id: str, values: Mapping[tuple[str, str], float]) -> dict[str, Any]:
        spec = self._specs[node_id]
        doc: dict[str, Any] = {
            "id": node_id,
            "kind": spec.kind.value,
            "replicas": values[(node_id, "replicas")],  # the contract accepts 4.0, refuses 3.5
            "capacity_per_replica": spec.capacity_per_replica,
            "min_replicas": spec.min_replicas,
            "max_replicas": spec.max_replicas,
            "tags": dict(spec.tags),
            "metrics": {
                m: values[(node_id, m)]
                for m in ("arrival_rate", "throughput", "utilization", "queue_depth", "latency_p95_ms", "error_rate")
                if (node_id, m) in values
            },
        }
        if (node_id, "external_arrival_rate") in values:
            doc["external_arrival_rate"] = values[(node_id, "external_arrival_rate")]
        return doc


async def _gather(
    calls: list[Coroutine[Any, Any, tuple[PlannedQuery, Series]]],
) -> list[tuple[PlannedQuery, Series]]:
    """All answers, or the first error with every other query cancelled (a TaskGroup's semantics)."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in calls]
    except* TwinSourceError as errors:
        raise errors.exceptions[0] from None
    return [t.result() for t in tasks]


def _series(data: Any, what: str) -> Series:
    """The answer of an instant (vector or scalar) or range (matrix) query as labelled points."""
    if not isinstance(data, dict):
        raise TwinSourceError(f"Prometheus answered no data for {what}")
    kind, result = data.get("resultType"), data.get("result")
    if not isinstance(result, list):
        raise TwinSourceError(f"Prometheus answered a malformed {kind} for {what}: no result list")
    try:
        if kind == "scalar":
            return [({}, [(float(result[0]), float(result[1]))])]
        if kind == "vector":
            return [(dict(s.get("metric", {})), [(float(s["value"][0]), float(s["value"][1]))]) for s in result]
        if kind == "matrix":
            return [(dict(s.get("metric", {})), [(float(t), float(v)) for t, v in s["values"]]) for s in result]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise TwinSourceError(f"Prometheus answered a malformed {kind} for {what}: {exc}") from exc
    raise TwinSourceError(f"Prometheus answered a {kind} for {what}; a number per node was expected")


def _judge(
    present: list[tuple[Labels, float]], by: tuple[str, ...] = (), m: Measured | None = None, unlabelled: int = 0
) -> tuple[str | None, str]:
    """None when exactly one finite value answered; else the quality problem and a sentence saying why.

    `by` and `m`: for a batched query, the labels and what they should name (said when nothing answered).
    """
    if not present:
        if not by or m is None:
            return "missing", "returned no series"
        ends = (m.edge or ()) if len(by) == 2 else (m.node,)
        wanted = ", ".join(f"{k}={v!r}" for k, v in zip(by, ends, strict=False))
        lacking = f" ({unlabelled} series without the label{'s' if len(by) > 1 else ''} {', '.join(by)})"
        return "missing", f"returned no series with {wanted}{lacking if unlabelled else ''}"
    if len(present) > 1:
        shown = "; ".join(
            "{" + ", ".join(f"{k}={v!r}" for k, v in sorted(labels.items())) + "}" for labels, _ in present[:3]
        )
        return (
            "ambiguous",
            f"returned {len(present)} series ({shown}{'; ...' if len(present) > 3 else ''}), one expected",
        )
    value = present[0][1]
    if not math.isfinite(value):
        return "missing", f"returned {value} (nothing measured to compute it from)"
    return None, ""
