"""Actuators: the adapters behind `workflows.ports.Actuator` that change the estate.

SimulatorActuator   the built-in simulator (embedded default, demo, tests)      [simulator]
WebhookActuator     an HTTP endpoint that applies actions to a real estate    [webhook, with its wire protocol]
make_actuator       picks one from settings (`TWINOPS_ACTUATOR`)               [factory]
"""

from __future__ import annotations

from controller.adapters.actuators.factory import make_actuator
from controller.adapters.actuators.simulator import SimulatorActuator
from controller.adapters.actuators.webhook import (
    DEFAULT_SIGNATURE_MAX_AGE_SECONDS,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_VERSION,
    TIMESTAMP_HEADER,
    WebhookActuator,
    sign_request,
    verify_signature,
)

__all__ = [
    "DEFAULT_SIGNATURE_MAX_AGE_SECONDS",
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_VERSION",
    "TIMESTAMP_HEADER",
    "SimulatorActuator",
    "WebhookActuator",
    "make_actuator",
    "sign_request",
    "verify_signature",
]
