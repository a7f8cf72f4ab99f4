"""The digital twin: the twin.v1 contract, flow semantics, simulator and what-if, snapshot sources.

The HTTP source lives in `twin.http_source` and is not re-exported here, so importing the
contract never pulls in an HTTP client.
"""

from twin.actions import Action, RateLimitAction, RestartAction, ScaleAction, ShiftTrafficAction, describe
from twin.contract import (
    SCHEMA_VERSION,
    Edge,
    Metrics,
    Node,
    NodeKind,
    Snapshot,
    SnapshotError,
    json_schema,
    parse_snapshot,
)
from twin.graph import DEFAULT_TARGET_UTILIZATION, Flow, optimal_replicas, snapshot_flow, topological_order
from twin.history import HistoryError, parse_history, read_history, write_history
from twin.scenario import Scenario, ScenarioError, load_scenario
from twin.simulator import Simulator, SimulatorSource, what_if
from twin.sources import FileSource, StaleSnapshotError, TwinSource, TwinSourceError, check_fresh

__all__ = [
    "DEFAULT_TARGET_UTILIZATION",
    "SCHEMA_VERSION",
    "Action",
    "Edge",
    "FileSource",
    "Flow",
    "HistoryError",
    "Metrics",
    "Node",
    "NodeKind",
    "RateLimitAction",
    "RestartAction",
    "ScaleAction",
    "Scenario",
    "ScenarioError",
    "ShiftTrafficAction",
    "Simulator",
    "SimulatorSource",
    "Snapshot",
    "SnapshotError",
    "StaleSnapshotError",
    "TwinSource",
    "TwinSourceError",
    "check_fresh",
    "describe",
    "json_schema",
    "load_scenario",
    "optimal_replicas",
    "parse_history",
    "parse_snapshot",
    "read_history",
    "snapshot_flow",
    "topological_order",
    "what_if",
    "write_history",
]
