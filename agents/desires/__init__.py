"""Desires: validated goals (targets, SLOs, budgets, costs, priorities). `example.yaml` documents every key."""

from agents.desires.model import (
    DEFAULT_PRIORITIES,
    DEFAULT_REPLICA_HOUR_COST,
    Budget,
    Desires,
    DesiresError,
    GoalKind,
    ReadinessDelay,
    UtilizationTarget,
    load_desires,
    parse_desires,
)

__all__ = [
    "DEFAULT_PRIORITIES",
    "DEFAULT_REPLICA_HOUR_COST",
    "Budget",
    "Desires",
    "DesiresError",
    "GoalKind",
    "ReadinessDelay",
    "UtilizationTarget",
    "load_desires",
    "parse_desires",
]
