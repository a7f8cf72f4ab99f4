"""A trivial workflow and activity, in a module of their own so the workflow sandbox imports only this."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def greet(name: str) -> str:
    """A trivial activity."""
    return f"hello {name}"


@workflow.defn
class GreetingWorkflow:
    """A trivial workflow with one activity."""

    @workflow.run
    async def run(self, name: str) -> str:
        """Greet through the activity."""
        return await workflow.execute_activity(greet, name, start_to_close_timeout=timedelta(seconds=10))
