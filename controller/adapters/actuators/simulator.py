"""The simulator actuator: actions change the built-in simulator (embedded default, demo, tests)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from twin.actions import Action, RestartAction, describe
from twin.simulator import Simulator
from workflows.ports import ActuatorError, StepOutcome

__all__ = ["SimulatorActuator"]


@dataclass(frozen=True)
class _Applied:
    action: Action
    outcome: StepOutcome


# Keyed by the simulator, not the actuator: two actuators over the same simulated estate share
# one record, and the record dies with the estate it describes.
_RECORDS: weakref.WeakKeyDictionary[Simulator, dict[str, _Applied]] = weakref.WeakKeyDictionary()


class SimulatorActuator:
    """`Actuator` over a `Simulator`: actions change the same simulator a `SimulatorSource` advances.

    Idempotent by key: the key -> outcome record is kept per simulator and lives exactly as long
    as the simulator does (the simulator *is* the estate, so "applied before" means "applied to
    this estate"). A repeated key returns the first outcome with `applied=False`; the same key for
    a different action is refused as permanent. Unknown nodes or edges and replica counts outside
    `[min_replicas, max_replicas]` are permanent errors naming the node. `restart` cannot be
    undone, so its outcome has `undo=None`.
    """

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self._records = _RECORDS.setdefault(simulator, {})

    async def apply(self, idempotency_key: str, action: Action) -> StepOutcome:
        """Apply `action` once per key; return what undoes it."""
        # No await between the lookup and the record: on one event loop this is atomic.
        previous = self._records.get(idempotency_key)
        if previous is not None:
            if previous.action != action:
                raise ActuatorError(
                    f"idempotency key {idempotency_key!r} was used for '{describe(previous.action)}', "
                    f"not '{describe(action)}'",
                    permanent=True,
                )
            return previous.outcome.model_copy(
                update={"applied": False, "detail": f"already applied: {previous.outcome.detail}"}
            )
        try:
            undo = self.simulator.apply(action, idempotency_key=idempotency_key)
        except (ValueError, TypeError) as exc:
            raise ActuatorError(f"simulator refused '{describe(action)}': {exc}", permanent=True) from exc
        outcome = StepOutcome(
            idempotency_key=idempotency_key,
            applied=True,
            # The simulator's restart "undo" is a no-op marker; to the workflow it is not compensable.
            undo=None if isinstance(action, RestartAction) else undo,
            detail=describe(action),
        )
        self._records[idempotency_key] = _Applied(action=action, outcome=outcome)
        return outcome
