"""`PrometheusDemandHistory`: the `DemandHistoryStore` port read from Prometheus range queries, no local store.

With Prometheus as the twin source, the demand history the forecasts need is already in
Prometheus: the twin model's external arrival rate and edge ratio templates, over time. `read`
asks for those alone (not the replicas and six metrics of a full snapshot per step: "History" in
docs/twin-model.md has the measured difference), one range query per query of the model's plan
(per node and edge, or per batched template for all the nodes asked for: `TwinModel.plan`) and per
chunk of at most `CHUNK_POINTS` steps, one step per bucket, and computes each node's offered demand
through the graph, the quantity the deliberate activity records into `SqlDemandHistory`:

    D[i] = ext[i] + sum(ratio[u, i] * D[u])

- A bucket's value is the mean of each template over the bucket, sampled every `sample_seconds`
  (the subquery `avg_over_time((T)[bucket:sample])` evaluated at the bucket's end); only whole
  buckets are read, the one in progress is not. Buckets are keyed by their start, as in the SQL store.
- A gap is absent, never 0: where a node's external rate (when it has a template), the ratio of an
  edge into it, or the demand of a node feeding it answered no series, several, or NaN, the node
  has no point at that bucket. These are the inputs whose source quality issues make the agent
  distrust a node's demand and leave it unrecorded; a gap in another metric leaves demand known.
- `record` does nothing: Prometheus keeps the series already.

Fails as the twin source does, with `TwinSourceError`: Prometheus unreachable, an HTTP or PromQL
error, or the whole read past `timeout_seconds`. The deliberate activity turns any error of `read`
(and its own 10 s bound) into a tick without forecasts (workflows/activities.py), never a failed tick.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Collection, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import httpx

from agents.forecast import BUCKET_SECONDS, RETENTION_SECONDS, DemandHistory
from controller.adapters.prometheus_twin import MAX_HISTORY_POINTS, PrometheusSource, prometheus_post, split_answer
from controller.adapters.twin_model import Measured, PlannedQuery
from twin.graph import topological_order
from twin.sources import TwinSourceError

__all__ = ["CHUNK_POINTS", "PrometheusDemandHistory"]

CHUNK_POINTS: Final = MAX_HISTORY_POINTS - 1_000
"""Steps of one range query: below Prometheus' limit of `MAX_HISTORY_POINTS` points per series."""

SAMPLE_SECONDS: Final = 60
"""How often within a bucket a template is sampled for the bucket's mean (a tick of the agent loop)."""

Values = dict[int, float]
"""One input's answer: bucket start (epoch seconds) -> its mean, only where exactly one finite value came."""


INPUTS: Final = ("external_arrival_rate", "ratio")
"""The templates demand is computed from: a node's external arrival rate, an edge's ratio."""


class PrometheusDemandHistory:
    """A `workflows.ports.DemandHistoryStore` read from the Prometheus and twin model of a `PrometheusSource`.

    `bucket_seconds` (whole seconds) is the step of the range queries; `retention_seconds` how far back
    `read` looks. `timeout_seconds` (default the source's) bounds one whole `read`.
    """

    def __init__(
        self,
        source: PrometheusSource,
        bucket_seconds: int = int(BUCKET_SECONDS),
        retention_seconds: float = RETENTION_SECONDS,
        *,
        sample_seconds: int = SAMPLE_SECONDS,
        timeout_seconds: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        for name, value in (("bucket_seconds", bucket_seconds), ("sample_seconds", sample_seconds)):
            if isinstance(value, bool) or int(value) != value or value <= 0:
                raise ValueError(f"{name} must be a positive whole number of seconds, not {value!r}")
        if not retention_seconds > 0 or not math.isfinite(retention_seconds):
            raise ValueError(f"retention_seconds must be positive, not {retention_seconds!r}")
        self.source = source
        self.bucket_seconds = int(bucket_seconds)
        self.retention_seconds = float(retention_seconds)
        self.sample_seconds = min(int(sample_seconds), self.bucket_seconds)
        self.timeout_seconds = source.timeout_seconds if timeout_seconds is None else timeout_seconds
        self._transport = transport
        model = source.model
        self._order = topological_order([n.id for n in model.nodes], [(e.source, e.target) for e in model.edges])
        self._external = {
            n.id: Measured(n.id, "external_arrival_rate")
            for n in model.nodes
            if "external_arrival_rate" in model.node_queries(n)
        }
        # Per node, its in-edges: (source, a fixed ratio or what measures it).
        self._into: dict[str, list[tuple[str, float | Measured]]] = {n: [] for n in self._order}
        for e in model.edges:
            measured = Measured(e.target, "ratio", (e.source, e.target)) if model.edge_query(e) is not None else None
            self._into[e.target].append((e.source, measured or e.ratio or 0.0))

    async def record(self, twin_id: str, observed_at: datetime, demand: Mapping[str, float]) -> int:
        """Keep nothing and return 0: Prometheus already holds the series `read` computes demand from."""
        return 0

    async def read(self, twin_id: str, now: datetime, nodes: Collection[str] | None = None) -> DemandHistory:
        """The whole buckets of the retention window before `now`, of `nodes` (default all); empty for another twin.

        Only the inputs of the nodes asked for and of the nodes feeding them are queried: the activity
        asks for the entry nodes, which costs one query per entry with an external load template.
        """
        if now.tzinfo is None:
            raise ValueError(f"naive datetime {now.isoformat()}: give `now` a time zone")
        b = self.bucket_seconds
        empty = DemandHistory(bucket_seconds=float(b))
        asked = None if nodes is None else set(nodes)
        wanted = [n for n in self._order if asked is None or n in asked]
        # The same oldest bucket as the SQL store's cut-off; the newest is the last whole one.
        first = math.floor((now.timestamp() - self.retention_seconds) / b) * b
        last = math.floor(now.timestamp() / b) * b - b
        if twin_id != self.source.model.twin_id or not wanted or last < first:
            return empty
        needed = self._upstream(wanted)
        queries = self.source.model.plan(self.source.batch, nodes=needed, metrics=INPUTS)
        values = await self._fetch(queries, first, last)
        series: dict[str, list[tuple[float, float]]] = {n: [] for n in wanted}
        for start in range(first, last + 1, b):
            demand = self._demand_at(start, needed, values)
            for n in wanted:
                d = demand.get(n)
                if d is not None and math.isfinite(d) and d >= 0:
                    series[n].append((float(start), d))
        return DemandHistory(series={n: tuple(p) for n, p in series.items() if p}, bucket_seconds=float(b))

    def _upstream(self, wanted: Sequence[str]) -> list[str]:
        """`wanted` and every node whose demand flows into them, in topological order."""
        seen: set[str] = set()
        todo = list(wanted)
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(source for source, _ in self._into[n])
        return [n for n in self._order if n in seen]

    def _demand_at(
        self, start: int, order: Sequence[str], values: Mapping[Measured, Values]
    ) -> dict[str, float | None]:
        """Offered demand per node at the bucket `start`; None where an input of it is a gap (unknown, not 0)."""
        demand: dict[str, float | None] = {}
        for n in order:
            ext = self._external.get(n)
            d = values[ext].get(start) if ext is not None else 0.0  # no template: no load from outside, as in `latest`
            for source, ratio in self._into[n]:
                r = values[ratio].get(start) if isinstance(ratio, Measured) else ratio
                upstream = demand[source]
                d = None if d is None or r is None or upstream is None else d + r * upstream
            demand[n] = d
        return demand

    # ---- querying ---------------------------------------------------------------------------

    async def _fetch(self, queries: Sequence[PlannedQuery], first: int, last: int) -> dict[Measured, Values]:
        """Every input's bucket means from `first` to `last` (bucket starts), chunked, all within the deadline."""
        b = self.bucket_seconds
        chunks = [(lo, min(lo + (CHUNK_POINTS - 1) * b, last)) for lo in range(first, last + 1, CHUNK_POINTS * b)]
        limit = asyncio.Semaphore(self.source.concurrency)
        values: dict[Measured, Values] = {m: {} for q in queries for m in q.targets.values()}
        async with httpx.AsyncClient(
            base_url=self.source.url, transport=self._transport, timeout=self.timeout_seconds
        ) as client:

            async def one(q: PlannedQuery, lo: int, hi: int) -> None:
                async with limit:
                    for measured, answered in (await self._range(client, q, lo, hi)).items():
                        values[measured].update(answered)

            try:
                async with asyncio.timeout(self.timeout_seconds):
                    await _all([one(q, lo, hi) for q in queries for lo, hi in chunks])
            except TimeoutError:
                # A forecast is no reason to hold the tick: the activity decides without one.
                raise TwinSourceError(
                    f"Prometheus at {self.source.url}: demand history of twin {self.source.model.twin_id!r} "
                    f"({len(queries)} queries x {len(chunks)} ranges) not read within {self.timeout_seconds:g}s"
                ) from None
        return values

    async def _range(self, client: httpx.AsyncClient, q: PlannedQuery, lo: int, hi: int) -> dict[Measured, Values]:
        """One range query of `q`'s bucket means, evaluated at the ends of the buckets `lo`..`hi` (starts)."""
        b, url = self.bucket_seconds, self.source.url
        params = {
            "query": f"avg_over_time(({q.promql})[{b}s:{self.sample_seconds}s])",
            "start": str(lo + b),
            "end": str(hi + b),
            "step": str(b),
        }
        what = f"{q.metric} ({q.shown()})"
        data = await prometheus_post(client, url, "/api/v1/query_range", params, what)
        try:
            series = [
                (dict(s.get("metric", {})), [(round(float(t)) - b, float(v)) for t, v in s["values"]])
                for s in data["result"]
            ]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TwinSourceError(f"Prometheus at {url} answered a malformed matrix for {what}: {exc}") from exc
        out: dict[Measured, Values] = {}
        for measured, mine in split_answer(q, series)[0].items():
            answered: dict[int, list[float]] = {}
            for _, points in mine:
                for start, v in points:
                    answered.setdefault(start, []).append(v)
            # Several series where one was meant is as unknown as none (never their sum), and so is NaN.
            out[measured] = {start: vs[0] for start, vs in answered.items() if len(vs) == 1 and math.isfinite(vs[0])}
        return out


async def _all(calls: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run every call; the first error cancels the rest and is raised as it is."""
    try:
        async with asyncio.TaskGroup() as group:
            for call in calls:
                group.create_task(call)
    except* TwinSourceError as errors:
        raise errors.exceptions[0] from None
