"""The application: what wires the adapters into running parts.

The worker (`Services`, `running_worker`), the agent loop's starter, the approval service
and the key that signs its decisions, the scripted demo, and the twin table both the CLI
and the demo print, and the playbook files. App modules use adapters and core, never the CLI. Names are
re-exported lazily: importing the package loads none of Temporal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.core.lazy import lazy_getattr as _lazy_getattr

if TYPE_CHECKING:
    from controller.app.agent_loop import start_agent_loop, stop_agent_loop
    from controller.app.approval_service import ApprovalRefusedError, ApprovalService
    from controller.app.decision_signer import DecisionSigner
    from controller.app.demo import run_demo
    from controller.app.playbooks import LoadedPlaybooks, load_playbook_file, load_playbooks, playbook_files
    from controller.app.twin_table import state_table
    from controller.app.worker import Services, build_worker, running_worker, worker_options

__all__ = [
    "ApprovalRefusedError",
    "ApprovalService",
    "DecisionSigner",
    "LoadedPlaybooks",
    "Services",
    "build_worker",
    "load_playbook_file",
    "load_playbooks",
    "playbook_files",
    "run_demo",
    "running_worker",
    "start_agent_loop",
    "state_table",
    "stop_agent_loop",
    "worker_options",
]

_HOME = {
    "ApprovalRefusedError": "controller.app.approval_service",
    "ApprovalService": "controller.app.approval_service",
    "DecisionSigner": "controller.app.decision_signer",
    "LoadedPlaybooks": "controller.app.playbooks",
    "Services": "controller.app.worker",
    "build_worker": "controller.app.worker",
    "load_playbook_file": "controller.app.playbooks",
    "load_playbooks": "controller.app.playbooks",
    "playbook_files": "controller.app.playbooks",
    "run_demo": "controller.app.demo",
    "running_worker": "controller.app.worker",
    "start_agent_loop": "controller.app.agent_loop",
    "state_table": "controller.app.twin_table",
    "stop_agent_loop": "controller.app.agent_loop",
    "worker_options": "controller.app.worker",
}


__getattr__ = _lazy_getattr(__name__, globals(), _HOME)
