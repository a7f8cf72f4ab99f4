"""Choosing the actuator from settings (`TWINOPS_ACTUATOR`): the simulator, or a webhook."""

from __future__ import annotations

from controller.adapters.actuators.simulator import SimulatorActuator
from controller.adapters.actuators.webhook import WebhookActuator
from controller.core.errors import ConfigurationError
from controller.core.settings import Settings
from twin.simulator import Simulator
from workflows.ports import Actuator

__all__ = ["make_actuator"]


def make_actuator(settings: Settings, simulator: Simulator | None) -> Actuator:
    """The actuator `settings.actuator` names.

    `simulator` is the one the twin source advances (`SimulatorSource.simulator`); it is required
    for `actuator=simulator`, ignored otherwise.
    """
    if settings.actuator == "simulator":
        if simulator is None:
            raise ConfigurationError("actuator 'simulator' needs the simulated twin (TWINOPS_TWIN_SOURCE=simulator)")
        return SimulatorActuator(simulator)
    if not settings.actuator_url:
        raise ConfigurationError("actuator 'webhook' needs TWINOPS_ACTUATOR_URL")
    if settings.actuator_secret is None or not settings.actuator_secret.get_secret_value():
        raise ConfigurationError("actuator 'webhook' needs TWINOPS_ACTUATOR_SECRET")
    return WebhookActuator(settings.actuator_url, settings.actuator_secret, settings.actuator_timeout_seconds)
