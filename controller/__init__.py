"""The controller: the running system around the workflows, in four groups (imports point down only).

cli/        the `twinops` command line
app/        wiring: the worker, the agent loop's starter, the approval service, the demo
adapters/   I/O behind the workflows' ports: actuators, notifiers, inbox, identities, twin
            sources, Temporal, telemetry, the audit ledger (audit/), the policy gate (policy/)
core/       settings, the exception tree, database engines and migrations
testing     in-memory fakes for every port (`controller.testing`), beside cli: never used by it
migrations/ Alembic's scripts (found by `controller.core.db.MIGRATIONS_DIR`)

The layers contract in pyproject.toml enforces the order. Import names from a group's package
or its modules; this package re-exports nothing.
"""

__all__: list[str] = []
