"""A deterministic, time-stepped simulator of a twin.v1 service graph, and its what-if engine.

Each step of `dt` seconds, evaluated at the end of the step (time t):

1. Due events fire: scenario faults and the end of restart warm-ups.
2. External load per entry node = its `external_arrival_rate` + the sum of its profiles at t.
3. Flow, in topological order, exactly the reference semantics of `twin.graph.propagate`
   extended by queues:
   - offered demand  D[i] = ext[i] + sum(ratio * min(D[u], limit[u]))
   - arrivals        A[i] = ext[i] + sum(ratio * T[u]);  admitted a[i] = min(A[i], limit[i])
     (load above a rate limit is shed and counted as errors, never queued)
   - throughput      T[i] = min(a[i] + Q[i] / dt, C[i]);  C[i] = replicas x mu x factors
   - queue           Q[i] += (a[i] - T[i]) x dt
   So a saturated node's queue grows at exactly (a - C) per second, a draining node runs
   at capacity, and with empty queues T = min(A, C, limit) as in the reference.
4. Metrics are derived only when `snapshot()` is asked for (the hot loop stays pydantic-free):
   utilization = T / C (observed); p95 latency from M/M/c (`twin.queueing.response_time_p95`,
   exact) while a / C < 1 and the queue is empty; otherwise Q / T + 1/mu, the mean wait by
   Little's law plus one service time (the spec's saturated approximation), never less than
   the M/M/c p95 at min(a / C, `SATURATION_RHO`), so latency is monotone through rho = 1.
   A node that serves nothing with work queued reports `LATENCY_CEILING_MS`. Bad releases add
   their extra latency and error rate on top; load shed by a rate limit counts as errors.
   `capacity_per_replica` is reported as it is now (after capacity faults and warm-up), since
   that is what an observer of the real system would measure. With `noise > 0` the observed
   external rate, arrival rate, throughput, queue depth and latency are each multiplied by
   max(0, 1 + noise x N(0, 1)) from the seeded RNG (utilization follows the noisy throughput).

Readiness: with `readiness_seconds` > 0 (the scenario's, or the constructor's), replicas added by
a scale-up serve only that long after it (scheduling, image pull, start, readiness probe). Until
then they are provisioned (they count in `provisioned`, the spec, and cost replica-hours) but
not ready: snapshots report ready replicas, as `kube_deployment_status_replicas_available`
does, and capacity counts only those. A scale-down cancels pending replicas first (newest
first), then removes ready ones at once. A replica loss takes ready replicas and lowers the
spec with them (they stay lost until scaled back).

Actions (`apply`) return the action that undoes them. `restart` is not compensable: queued work
is lost and the node runs at `RESTART_WARMUP_FACTOR` of its capacity for
`RESTART_WARMUP_SECONDS`; its "undo" is a no-op marker, a `ScaleAction` to the replica count the
node had at the restart (a scale to the current count is always accepted, even out of bounds).
"""

from __future__ import annotations

import copy
import functools
import heapq
import math
import random
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import TypeAdapter

from twin.actions import Action, RateLimitAction, RestartAction, ScaleAction, ShiftTrafficAction
from twin.contract import SCHEMA_VERSION, Edge, Metrics, Node, Snapshot
from twin.graph import topological_order
from twin.queueing import response_time_p95
from twin.scenario import BadRelease, CapacityFactor, ConstantLoad, ReplicasLost, Scenario, ScenarioNode

__all__ = [
    "LATENCY_CEILING_MS",
    "RESTART_WARMUP_FACTOR",
    "RESTART_WARMUP_SECONDS",
    "SATURATION_RHO",
    "Simulator",
    "SimulatorSource",
    "parse_action",
    "what_if",
]

RESTART_WARMUP_SECONDS = 30.0
"""After a restart the node's replicas are warming up (cold caches, JIT) for this long..."""
RESTART_WARMUP_FACTOR = 0.5
"""...and serve at this fraction of their capacity meanwhile."""
SATURATION_RHO = 0.99
"""A saturated node's p95 is at least the M/M/c p95 at this utilization."""
LATENCY_CEILING_MS = 600_000.0
"""p95 reported for a node that has work queued but serves nothing (twin.v1 forbids inf)."""

ActionModel = ScaleAction | ShiftTrafficAction | RateLimitAction | RestartAction
_ACTION: TypeAdapter[ActionModel] = TypeAdapter(Action)
_QUEUE_EPSILON = 1e-9

# Event kinds in the heap: (time, sequence, kind, node index, value).
_EV_LOSE = 0
_EV_FACTOR_ON = 1
_EV_FACTOR_OFF = 2
_EV_BAD_ON = 3
_EV_BAD_OFF = 4
_EV_WARM_END = 5
_EV_READY = 6


class Simulator:
    """Time-stepped, seeded model of a service graph; see the module docstring for the semantics."""

    def __init__(self, scenario: Scenario, seed: int | None = None, readiness_seconds: float | None = None) -> None:
        readiness = scenario.readiness_seconds if readiness_seconds is None else readiness_seconds
        if not (readiness >= 0 and math.isfinite(readiness)):
            raise ValueError(f"readiness_seconds must be a finite number >= 0, got {readiness_seconds}")
        self._readiness = float(readiness)
        self._scenario = scenario
        self._rng = random.Random(scenario.seed if seed is None else seed)
        self._noise = scenario.noise
        self._start = scenario.start
        self._elapsed = 0.0
        nodes = scenario.nodes
        self._nodes: list[ScenarioNode] = list(nodes)
        self._ids = [n.id for n in nodes]
        self._index = {name: i for i, name in enumerate(self._ids)}
        n = len(nodes)
        self._replicas = [node.replicas for node in nodes]
        """Ready replicas (serving)."""
        self._provisioned = [node.replicas for node in nodes]
        """Replicas asked for (the spec): ready + pending."""
        self._pending: list[list[tuple[float, int]]] = [[] for _ in nodes]
        """Per node, scale-ups not ready yet: (ready at, replicas), oldest first."""
        self._mu = [node.capacity_per_replica for node in nodes]
        self._factors: list[list[float]] = [[] for _ in range(n)]
        self._warm_until = [-math.inf] * n
        self._capacity = [0.0] * n
        self._limit = [math.inf] * n
        self._queue = [0.0] * n
        # Bad releases by fault number, and the numbers active per node.
        self._bad_table: list[tuple[float, float]] = []
        self._bad_active: list[list[int]] = [[] for _ in range(n)]
        # Edges keep scenario order for output; `_out` is the adjacency the hot loop walks.
        self._edges: list[tuple[int, int, float]] = [
            (self._index[e.source], self._index[e.target], e.ratio) for e in scenario.edges
        ]
        self._order = [
            self._index[x] for x in topological_order(self._ids, [(e.source, e.target) for e in scenario.edges])
        ]
        self._rebuild_adjacency()
        self._base_ext = [node.external_arrival_rate for node in nodes]
        self._profiles = [(self._index[name], tuple(profiles)) for name, profiles in scenario.load.items() if profiles]
        self._ext = [0.0] * n
        self._demand = [0.0] * n
        self._arrivals = [0.0] * n
        self._admitted = [0.0] * n
        self._throughput = [0.0] * n
        self._events: list[tuple[float, int, int, int, float]] = []
        self._seq = 0
        for fault in scenario.faults:
            i = self._index[fault.node]
            if isinstance(fault, ReplicasLost):
                self._push(fault.at, _EV_LOSE, i, float(fault.replicas))
            elif isinstance(fault, CapacityFactor):
                self._push(fault.at, _EV_FACTOR_ON, i, fault.factor)
                if fault.duration is not None:
                    self._push(fault.at + fault.duration, _EV_FACTOR_OFF, i, fault.factor)
            elif isinstance(fault, BadRelease):
                number = float(len(self._bad_table))
                self._bad_table.append((fault.error_rate, fault.extra_latency_ms))
                self._push(fault.at, _EV_BAD_ON, i, number)
                if fault.duration is not None:
                    self._push(fault.at + fault.duration, _EV_BAD_OFF, i, number)
        self._applied: dict[str, tuple[ActionModel, ActionModel]] = {}
        for i in range(n):
            self._recompute_capacity(i)
        self._fire_events()
        self._flow(0.0)

    # ---- construction from observations ----------------------------------------------------

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, seed: int = 0, noise: float = 0.0) -> Simulator:
        """A simulator at the snapshot's state: constant external load at its rates, queues at the
        observed `queue_depth` (0 if missing), time starting at `observed_at`."""
        scenario = Scenario(
            twin_id=snapshot.twin_id,
            start=snapshot.observed_at,
            seed=seed,
            noise=noise,
            nodes=[
                ScenarioNode(
                    id=n.id,
                    kind=n.kind,
                    replicas=n.replicas,
                    capacity_per_replica=n.capacity_per_replica,
                    min_replicas=n.min_replicas,
                    max_replicas=n.max_replicas,
                    tags=dict(n.tags),
                )
                for n in snapshot.nodes
            ],
            edges=list(snapshot.edges),
            load={
                n.id: [ConstantLoad(rate=n.external_arrival_rate)]
                for n in snapshot.nodes
                if n.external_arrival_rate  # None (not reported) runs as no external load
            },
        )
        sim = cls(scenario)
        for i, node in enumerate(snapshot.nodes):
            sim._queue[i] = node.metrics.queue_depth or 0.0
        sim._flow(0.0)
        return sim

    # ---- time ------------------------------------------------------------------------------

    @property
    def scenario(self) -> Scenario:
        """The scenario this simulator was built from (graph as at t = 0)."""
        return self._scenario

    @property
    def elapsed(self) -> float:
        """Seconds simulated so far."""
        return self._elapsed

    @property
    def now(self) -> datetime:
        """Simulated wall time: scenario start + elapsed."""
        return self._start + timedelta(seconds=self._elapsed)

    def step(self, dt: float = 1.0) -> None:
        """Advance by `dt` seconds (> 0)."""
        if not dt > 0 or not math.isfinite(dt):
            raise ValueError(f"dt must be a positive number of seconds, got {dt}")
        self._elapsed += dt
        self._fire_events()
        self._flow(dt)

    def run(self, seconds: float, dt: float = 1.0, record_every: float | None = None) -> list[Snapshot]:
        """Advance `seconds` in steps of `dt`; return a snapshot every `record_every` seconds
        (default: every step). The starting state is not included."""
        steps = _whole(seconds, dt, "seconds")
        every = 1 if record_every is None else _whole(record_every, dt, "record_every")
        if every < 1:
            raise ValueError(f"record_every must be at least dt={dt}, got {record_every}")
        out: list[Snapshot] = []
        for k in range(1, steps + 1):
            self.step(dt)
            if k % every == 0:
                out.append(self.snapshot())
        return out

    # ---- hot loop --------------------------------------------------------------------------

    def _flow(self, dt: float) -> None:
        t = self._elapsed
        n = len(self._ids)
        ext = self._base_ext[:]
        for i, profiles in self._profiles:
            total = ext[i]
            for p in profiles:
                total += p.rate_at(t)
            ext[i] = total if total > 0 else 0.0
        demand = ext[:]
        arrivals = ext[:]
        admitted = [0.0] * n
        throughput = [0.0] * n
        limit = self._limit
        cap = self._capacity
        queue = self._queue
        out = self._out
        for i in self._order:
            lim = limit[i]
            d = demand[i]
            a = arrivals[i]
            if d > lim:
                d = lim
            if a > lim:
                a = lim
            admitted[i] = a
            c = cap[i]
            q = queue[i]
            if dt > 0:
                avail = a + q / dt
                if avail <= c:
                    served = avail
                    queue[i] = 0.0
                else:
                    served = c
                    q += (a - c) * dt
                    queue[i] = q if q > _QUEUE_EPSILON else 0.0
            else:
                # An instant (construction, after an action) has no interval to drain a queue in,
                # so flows are the reference T = min(A, C, limit) until the next step.
                served = a if a < c else c
            throughput[i] = served
            for j, ratio in out[i]:
                demand[j] += ratio * d
                arrivals[j] += ratio * served
        self._ext = ext
        self._demand = demand
        self._arrivals = arrivals
        self._admitted = admitted
        self._throughput = throughput

    # ---- events ----------------------------------------------------------------------------

    def _push(self, at: float, kind: int, node: int, value: float) -> None:
        heapq.heappush(self._events, (at, self._seq, kind, node, value))
        self._seq += 1

    def _fire_events(self) -> None:
        events = self._events
        # Half a microsecond of slack keeps float accumulation of `elapsed` from delaying an event a step.
        horizon = self._elapsed + 5e-7
        while events and events[0][0] <= horizon:
            _, _, kind, i, value = heapq.heappop(events)
            if kind == _EV_LOSE:
                lost = min(self._replicas[i], int(value))
                self._replicas[i] -= lost
                self._provisioned[i] -= lost
            elif kind == _EV_READY:
                due = [p for p in self._pending[i] if p[0] <= horizon]
                if not due:
                    continue  # cancelled by a scale-down
                self._pending[i] = [p for p in self._pending[i] if p[0] > horizon]
                self._replicas[i] += sum(count for _, count in due)
            elif kind == _EV_FACTOR_ON:
                self._factors[i].append(value)
            elif kind == _EV_FACTOR_OFF:
                self._factors[i].remove(value)
            elif kind == _EV_BAD_ON:
                self._bad_active[i].append(int(value))
            elif kind == _EV_BAD_OFF:
                self._bad_active[i].remove(int(value))
            elif kind == _EV_WARM_END and self._elapsed + 5e-7 < self._warm_until[i]:
                continue  # a later restart extended the warm-up
            self._recompute_capacity(i)

    def _recompute_capacity(self, i: int) -> None:
        self._capacity[i] = self._replicas[i] * self._effective_mu(i)

    def _effective_mu(self, i: int) -> float:
        mu = self._mu[i]
        for f in self._factors[i]:
            mu *= f
        if self._elapsed + 5e-7 < self._warm_until[i]:
            mu *= RESTART_WARMUP_FACTOR
        return mu

    def _rebuild_adjacency(self) -> None:
        self._edge_models: list[Edge] | None = None  # frozen models, rebuilt only after a shift
        out: list[list[tuple[int, float]]] = [[] for _ in self._ids]
        for s, t, ratio in self._edges:
            out[s].append((t, ratio))
        self._out = out

    # ---- observation -----------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The current state as a twin.v1 snapshot (metrics derived now; noise drawn now)."""
        noise = self._noise
        gauss = self._rng.gauss

        def jitter(value: float) -> float:
            if noise <= 0 or value == 0:
                return value
            return value * max(0.0, 1.0 + noise * gauss(0.0, 1.0))

        nodes: list[Node] = []
        for i, spec in enumerate(self._nodes):
            mu = self._effective_mu(i)
            replicas = self._replicas[i]
            capacity = replicas * mu
            arrivals = self._arrivals[i]
            admitted = self._admitted[i]
            served = self._throughput[i]
            queue = self._queue[i]
            latency = self._latency_seconds(replicas, mu, admitted, served, queue)
            errors_ok = admitted / arrivals if arrivals > 0 else 1.0
            extra_ms = 0.0
            for number in self._bad_active[i]:
                rate, extra = self._bad_table[number]
                errors_ok *= 1.0 - rate
                extra_ms += extra
            latency_ms = None if latency is None else min(LATENCY_CEILING_MS, latency * 1000.0 + extra_ms)
            ext = jitter(self._ext[i])
            arrival_rate = jitter(arrivals)
            throughput = jitter(served)
            queue_depth = jitter(queue)
            if latency_ms is not None:
                latency_ms = min(LATENCY_CEILING_MS, jitter(latency_ms))
            metrics = Metrics.model_construct(
                arrival_rate=arrival_rate,
                throughput=throughput,
                utilization=throughput / capacity if capacity > 0 else None,
                queue_depth=queue_depth,
                latency_p95_ms=latency_ms,
                error_rate=min(1.0, max(0.0, 1.0 - errors_ok)),
            )
            nodes.append(
                Node.model_construct(
                    id=spec.id,
                    kind=spec.kind,
                    replicas=replicas,
                    capacity_per_replica=mu,
                    min_replicas=spec.min_replicas,
                    max_replicas=spec.max_replicas,
                    external_arrival_rate=ext,
                    tags=dict(spec.tags),
                    metrics=metrics,
                )
            )
        if self._edge_models is None:
            ids = self._ids
            self._edge_models = [Edge.model_construct(source=ids[s], target=ids[t], ratio=r) for s, t, r in self._edges]
        edges = list(self._edge_models)
        # Built unvalidated for speed: every value is valid by construction (finite, in range),
        # and the graph was validated when the scenario was (actions change ratios, never edges).
        # tests/twin/test_simulator.py re-parses snapshots to keep this honest.
        return Snapshot.model_construct(
            schema_=SCHEMA_VERSION, twin_id=self._scenario.twin_id, observed_at=self.now, nodes=nodes, edges=edges
        )

    @staticmethod
    def _latency_seconds(replicas: int, mu: float, admitted: float, served: float, queue: float) -> float | None:
        capacity = replicas * mu
        if capacity <= 0:
            return None if queue <= 0 and admitted <= 0 else LATENCY_CEILING_MS / 1000.0
        if queue <= 0 and admitted < capacity:
            return _mmc_p95(replicas, admitted, mu)
        if served <= 0:
            return LATENCY_CEILING_MS / 1000.0
        # Saturated or draining: Little's-law wait plus a service time, floored by the M/M/c p95
        # at (at most) SATURATION_RHO so latency never drops as a node crosses rho = 1.
        floor = _mmc_p95(replicas, min(admitted, SATURATION_RHO * capacity), mu)
        return max(floor, queue / served + 1.0 / mu)

    # ---- actions ---------------------------------------------------------------------------

    def apply(self, action: Action, idempotency_key: str | None = None) -> Action:
        """Apply an action now; return the action that undoes it.

        The same `idempotency_key` again is a no-op that returns the recorded undo; reusing a key
        for a different action is a ValueError. Unknown nodes or edges and out-of-bounds replica
        counts raise ValueError naming them; nothing is clamped.
        """
        if idempotency_key is not None and idempotency_key in self._applied:
            recorded, undo = self._applied[idempotency_key]
            if recorded != action:
                raise ValueError(
                    f"idempotency key {idempotency_key!r} was already used for {recorded!r}, not {action!r}"
                )
            return undo
        undo = self._apply(action)
        self._flow(0.0)
        if idempotency_key is not None:
            self._applied[idempotency_key] = (action, undo)
        return undo

    def _node_index(self, name: str, what: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise ValueError(f"{what}: unknown node {name!r} in twin {self._scenario.twin_id!r}") from None

    def _apply(self, action: ActionModel) -> ActionModel:
        match action:
            case ScaleAction(node=name, replicas=replicas):
                i = self._node_index(name, "scale")
                spec = self._nodes[i]
                current = self._provisioned[i]
                if replicas != current and not spec.min_replicas <= replicas <= spec.max_replicas:
                    raise ValueError(
                        f"scale {name!r} to {replicas}: outside bounds "
                        f"[{spec.min_replicas}, {spec.max_replicas}] (min_replicas, max_replicas)"
                    )
                self._scale(i, replicas)
                return ScaleAction(node=name, replicas=current)
            case ShiftTrafficAction(source=name, ratios=ratios):
                s = self._node_index(name, "shift_traffic")
                positions = {self._ids[t]: k for k, (src, t, _) in enumerate(self._edges) if src == s}
                missing = sorted(t for t in ratios if t not in positions)
                if missing:
                    raise ValueError("shift_traffic: unknown edge(s) " + ", ".join(f"{name!r}->{t!r}" for t in missing))
                previous: dict[str, float] = {}
                for target, ratio in ratios.items():
                    k = positions[target]
                    src, t, old = self._edges[k]
                    previous[target] = old
                    self._edges[k] = (src, t, ratio)
                self._rebuild_adjacency()
                return ShiftTrafficAction(source=name, ratios=previous)
            case RateLimitAction(node=name, max_rps=max_rps):
                i = self._node_index(name, "rate_limit")
                old_limit = self._limit[i]
                self._limit[i] = math.inf if max_rps is None else max_rps
                return RateLimitAction(node=name, max_rps=None if math.isinf(old_limit) else old_limit)
            case RestartAction(node=name):
                i = self._node_index(name, "restart")
                self._queue[i] = 0.0
                self._warm_until[i] = self._elapsed + RESTART_WARMUP_SECONDS
                self._push(self._warm_until[i], _EV_WARM_END, i, 0.0)
                self._recompute_capacity(i)
                # Not compensable: the marker "undo" sets what is already there.
                return ScaleAction(node=name, replicas=self._provisioned[i])
        raise TypeError(f"not a twin action: {action!r}")

    def _scale(self, i: int, replicas: int) -> None:
        current = self._provisioned[i]
        if replicas > current and self._readiness > 0:
            at = self._elapsed + self._readiness
            self._pending[i].append((at, replicas - current))
            self._push(at, _EV_READY, i, 0.0)
        elif replicas > current:
            self._replicas[i] += replicas - current
        else:
            remove = current - replicas
            pending = self._pending[i]
            while remove and pending:
                at, count = pending.pop()
                if count > remove:
                    pending.append((at, count - remove))
                    remove = 0
                else:
                    remove -= count
            self._replicas[i] -= remove
        self._provisioned[i] = replicas
        self._recompute_capacity(i)

    @property
    def readiness_seconds(self) -> float:
        """Seconds a replica added by a scale-up takes to serve (0: at once)."""
        return self._readiness

    def provisioned(self) -> dict[str, int]:
        """Replicas asked for per node (ready + pending): what a scale-up set, what replica-hours cost."""
        return dict(zip(self._ids, self._provisioned, strict=True))

    # ---- what-if ---------------------------------------------------------------------------

    # Never mutated in place after construction (only rebound, if at all): safe to share.
    _SHARED = frozenset(
        {"_scenario", "_nodes", "_ids", "_index", "_profiles", "_base_ext", "_mu", "_order", "_out", "_edge_models",
         "_bad_table", "_ext", "_demand", "_arrivals", "_admitted", "_throughput"}
    )  # fmt: skip

    def fork(self) -> Simulator:
        """A deep, independent copy: state, pending events, idempotency records and RNG state."""
        clone = object.__new__(Simulator)
        for name, value in self.__dict__.items():
            clone.__dict__[name] = value if name in self._SHARED else _copy_state(value)
        return clone


def _copy_state(value: object) -> object:
    # Much cheaper than deepcopy on big graphs: state is lists of immutable scalars or tuples,
    # lists of such lists, dicts of frozen models, and the RNG.
    if isinstance(value, list):
        return [x[:] for x in value] if value and isinstance(value[0], list) else value[:]
    if isinstance(value, dict):
        return dict(value)
    return copy.deepcopy(value)


@functools.lru_cache(maxsize=8192)
def _mmc_p95(replicas: int, admitted: float, mu: float) -> float:
    # Steady load repeats the same (c, lambda, mu) snapshot after snapshot; the solve is pure.
    return response_time_p95(replicas, admitted, mu)


def _whole(seconds: float, dt: float, what: str) -> int:
    if not dt > 0 or not math.isfinite(dt):
        raise ValueError(f"dt must be a positive number of seconds, got {dt}")
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"{what} must be >= 0, got {seconds}")
    steps = round(seconds / dt)
    if abs(steps * dt - seconds) > 1e-9 * max(1.0, seconds):
        raise ValueError(f"{what}={seconds} is not a whole number of steps of dt={dt}")
    return steps


def parse_action(raw: object) -> ActionModel:
    """Validate an action given as a mapping (e.g. `{"type": "scale", "node": "x", "replicas": 3}`)."""
    return _ACTION.validate_python(raw)


def what_if(
    base: Simulator | Snapshot,
    actions: Sequence[Action],
    seconds: float,
    dt: float = 1.0,
    record_every: float | None = None,
) -> list[Snapshot]:
    """Predicted snapshots (one per `record_every`, default per `dt`) after applying `actions` now,
    on a fork of `base`. Pass `record_every=seconds` to get only the final state (much cheaper on
    large graphs: a 1,000-node snapshot costs milliseconds, a step well under one).

    `base` is never touched: a Simulator is forked, a Snapshot is loaded with
    `Simulator.from_snapshot` (constant load at its rates, queues as observed).
    """
    sim = base.fork() if isinstance(base, Simulator) else Simulator.from_snapshot(base)
    for action in actions:
        sim.apply(action)
    return sim.run(seconds, dt, record_every)


class SimulatorSource:
    """`twin.sources.TwinSource` backed by a simulator: each call advances `tick_seconds` and observes.

    `simulator` is public so an actuator can apply actions to the same simulated estate.
    """

    def __init__(self, simulator: Simulator, tick_seconds: float = 15.0) -> None:
        if not tick_seconds > 0:
            raise ValueError(f"tick_seconds must be > 0, got {tick_seconds}")
        self.simulator = simulator
        self.tick_seconds = tick_seconds

    async def latest(self) -> Snapshot:
        """Advance the simulator by one tick (in steps of at most 1 s) and return its snapshot."""
        steps = max(1, math.ceil(self.tick_seconds - 1e-9))
        dt = self.tick_seconds / steps
        for _ in range(steps):
            self.simulator.step(dt)
        return self.simulator.snapshot()
