"""Prometheus as the twin source: the twin model's PromQL, run concurrently, into a twin.v1 snapshot.

Every query of one snapshot is evaluated at the same instant (`time=`), at most
`concurrency` at once, and all of them within one deadline. What cannot be observed is said,
never guessed: a query that answers no series (or NaN) leaves its value unset and adds a
`missing` quality issue for the node; several series where one was expected add an
`ambiguous` one (they are not summed). An edge whose ratio cannot be measured is left out
and its target gets the issue. Fails closed with `TwinSourceError`: Prometheus unreachable,
an HTTP or PromQL error, the deadline passed, or a node's replicas unknown (twin.v1 needs them,
and a replica count is not something to guess) mean no snapshot at all.

`history(window_seconds, step_seconds)` runs the same queries as range queries
(`/api/v1/query_range`) and gives one snapshot per step, oldest first.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from controller.adapters.twin_model import TwinModel
from twin.contract import Snapshot, SnapshotError, parse_snapshot
from twin.sources import TwinSourceError

__all__ = ["MAX_HISTORY_POINTS", "PrometheusSource", "prometheus_get"]

MAX_HISTORY_POINTS: Final = 11_000
"""Prometheus refuses a range query of more than 11,000 points per series."""

Labels = dict[str, str]
Series = list[tuple[Labels, list[tuple[float, float]]]]
"""One query's answer: each series' labels and its (unix time, value) points."""


@dataclass(frozen=True)
class _Query:
    """One PromQL query of the model: which node (or edge) and value it measures."""

    node: str
    metric: str
    promql: str
    edge: tuple[str, str] | None = None

    def label(self) -> str:
        what = f"edge {self.edge[0]!r}->{self.edge[1]!r} ratio" if self.edge else f"node {self.node!r} {self.metric}"
        return f"{what} (query {self.promql!r})"


async def prometheus_get(client: httpx.AsyncClient, url: str, path: str, params: Mapping[str, str], what: str) -> Any:
    """GET one Prometheus HTTP API `path` and return its `data`; TwinSourceError naming `what` otherwise.

    Unreachable, a status other than 200, a body that is not JSON or not `"status": "success"`: each
    is no answer (the caller fails closed), with Prometheus's own error text when it gave one.
    """
    try:
        response = await client.get(path, params=dict(params))
    except httpx.TransportError as exc:
        raise TwinSourceError(f"Prometheus at {url} unreachable: {type(exc).__name__}: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
        reason = body.get("error") if isinstance(body, dict) and body.get("error") else response.text[:200]
        raise TwinSourceError(f"Prometheus at {url}: HTTP {response.status_code} for {what}: {reason}")
    return body.get("data")


class PrometheusSource:
    """A `twin.sources.TwinSource` over Prometheus' HTTP API, shaped by a `TwinModel`."""

    def __init__(
        self,
        url: str,
        model: TwinModel,
        *,
        timeout_seconds: float = 5.0,
        concurrency: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.timeout_seconds = timeout_seconds
        self.concurrency = concurrency
        self._transport = transport
        self._clock = clock
        self._queries = self._plan()

    def _plan(self) -> list[_Query]:
        queries = [
            _Query(node.id, metric, promql)
            for node in self.model.nodes
            for metric, promql in self.model.node_queries(node).items()
        ]
        for edge in self.model.edges:
            promql = self.model.edge_query(edge)
            if promql is not None:
                queries.append(_Query(edge.target, "ratio", promql, (edge.source, edge.target)))
        return queries

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

    async def _run(self, path: str, params: Mapping[str, str]) -> dict[_Query, Series]:
        limit = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(base_url=self.url, transport=self._transport, timeout=self.timeout_seconds) as c:

            async def one(q: _Query) -> tuple[_Query, Series]:
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

    async def _query(self, client: httpx.AsyncClient, path: str, params: Mapping[str, str], q: _Query) -> Series:
        return _series(await prometheus_get(client, self.url, path, params, q.label()), q)

    # ---- building the snapshot --------------------------------------------------------------

    def _replicas_gap(self, answers: Mapping[_Query, Series]) -> str | None:
        """Why some node's replica count is unknown in `answers`, or None when every node has one."""
        for q, series in answers.items():
            if q.metric == "replicas":
                problem, detail = _judge([(labels, points[-1][1]) for labels, points in series if points])
                if problem is not None:
                    # Fails closed: twin.v1 needs replicas and a guessed count could hide a saturated node.
                    return f"twin {self.model.twin_id!r}: {q.label()} {detail}; no snapshot without replicas"
        return None

    def _snapshot(self, at: datetime, answers: Mapping[_Query, Series]) -> Snapshot:
        """The snapshot of `answers` (one moment); `_replicas_gap` must have found every replica count."""
        values: dict[tuple[str, str], float] = {}
        ratios: dict[tuple[str, str], float] = {}
        quality: list[dict[str, str]] = []
        for q, series in answers.items():
            present = [(labels, points[-1][1]) for labels, points in series if points]
            problem, detail = _judge(present)
            if problem is None:
                if q.edge is not None:
                    ratios[q.edge] = present[0][1]
                else:
                    values[(q.node, q.metric)] = present[0][1]
                continue
            quality.append({"node": q.node, "metric": q.metric, "problem": problem, "detail": f"{q.label()} {detail}"})
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
        spec = next(n for n in self.model.nodes if n.id == node_id)
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


async def _gather(calls: list[Coroutine[Any, Any, tuple[_Query, Series]]]) -> list[tuple[_Query, Series]]:
    """All answers, or the first error with every other query cancelled (a TaskGroup's semantics)."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in calls]
    except* TwinSourceError as errors:
        raise errors.exceptions[0] from None
    return [t.result() for t in tasks]


def _series(data: Any, q: _Query) -> Series:
    """The answer of an instant (vector or scalar) or range (matrix) query as labelled points."""
    if not isinstance(data, dict):
        raise TwinSourceError(f"Prometheus answered no data for {q.label()}")
    kind, result = data.get("resultType"), data.get("result")
    if not isinstance(result, list):
        raise TwinSourceError(f"Prometheus answered a malformed {kind} for {q.label()}: no result list")
    try:
        if kind == "scalar":
            return [({}, [(float(result[0]), float(result[1]))])]
        if kind == "vector":
            return [(dict(s.get("metric", {})), [(float(s["value"][0]), float(s["value"][1]))]) for s in result]
        if kind == "matrix":
            return [(dict(s.get("metric", {})), [(float(t), float(v)) for t, v in s["values"]]) for s in result]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise TwinSourceError(f"Prometheus answered a malformed {kind} for {q.label()}: {exc}") from exc
    raise TwinSourceError(f"Prometheus answered a {kind} for {q.label()}; a number per node was expected")


def _judge(present: list[tuple[Labels, float]]) -> tuple[str | None, str]:
    """None when exactly one finite value answered; else the quality problem and a sentence saying why."""
    if not present:
        return "missing", "returned no series"
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
