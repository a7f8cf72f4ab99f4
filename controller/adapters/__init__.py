"""The adapters: everything that does I/O for the controller, each behind a port of `workflows.ports`.

The estate (actuators), people (notifiers, approval inbox, identities), the twin
(`live_twin`) and its demand history, Temporal (the embedded dev server or a cluster),
telemetry, and the two subsystems with packages of their own: the tamper-evident audit
ledger (`audit/`) and the Rego policy gate (`policy/`). Adapters use `controller.core` only.
Names are re-exported lazily: importing the package loads none of their libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.core.lazy import lazy_getattr as _lazy_getattr

if TYPE_CHECKING:
    from controller.adapters.action_history import LedgerActionHistory
    from controller.adapters.actuators import make_actuator
    from controller.adapters.audit import SqlAuditLedger
    from controller.adapters.demand_history import SqlDemandHistory
    from controller.adapters.identity import Identities
    from controller.adapters.inbox import SqlApprovalInbox
    from controller.adapters.live_twin import WallClockSimulatorSource
    from controller.adapters.notifiers import make_notifier
    from controller.adapters.policy import make_policy_gate
    from controller.adapters.telemetry import configure, configure_logging
    from controller.adapters.temporal_server import TemporalRuntime, connect

__all__ = [
    "Identities",
    "LedgerActionHistory",
    "SqlApprovalInbox",
    "SqlAuditLedger",
    "SqlDemandHistory",
    "TemporalRuntime",
    "WallClockSimulatorSource",
    "configure",
    "configure_logging",
    "connect",
    "make_actuator",
    "make_notifier",
    "make_policy_gate",
]

_HOME = {
    "Identities": "controller.adapters.identity",
    "LedgerActionHistory": "controller.adapters.action_history",
    "SqlApprovalInbox": "controller.adapters.inbox",
    "SqlAuditLedger": "controller.adapters.audit",
    "SqlDemandHistory": "controller.adapters.demand_history",
    "TemporalRuntime": "controller.adapters.temporal_server",
    "WallClockSimulatorSource": "controller.adapters.live_twin",
    "configure": "controller.adapters.telemetry",
    "configure_logging": "controller.adapters.telemetry",
    "connect": "controller.adapters.temporal_server",
    "make_actuator": "controller.adapters.actuators",
    "make_notifier": "controller.adapters.notifiers",
    "make_policy_gate": "controller.adapters.policy",
}


__getattr__ = _lazy_getattr(__name__, globals(), _HOME)
