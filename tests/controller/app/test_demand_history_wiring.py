"""The demand history's settings, and the worker wiring its SQL store into the deliberate activity."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

from controller.adapters.demand_history import SqlDemandHistory
from controller.app.worker import Services, activities_of
from controller.core.settings import Settings
from controller.testing import FakePorts
from workflows.activities import AgentActivities


def test_defaults_are_five_minute_buckets_for_two_weeks() -> None:
    settings = Settings()
    assert settings.demand_bucket_seconds == 300
    assert settings.demand_retention_days == 14
    assert settings.demand_retention_seconds == 14 * 86400


def test_settings_come_from_twinops_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINOPS_DEMAND_BUCKET_SECONDS", "600")
    monkeypatch.setenv("TWINOPS_DEMAND_RETENTION_DAYS", "7.5")
    settings = Settings()
    assert (settings.demand_bucket_seconds, settings.demand_retention_seconds) == (600, 7.5 * 86400)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"demand_bucket_seconds": 0}, "demand_bucket_seconds", "greater than 0"),
        ({"demand_bucket_seconds": -300}, "demand_bucket_seconds", "greater than 0"),
        ({"demand_bucket_seconds": 7}, "demand_bucket_seconds", "must divide a day (86400 s) evenly"),
        ({"demand_bucket_seconds": 2.5}, "demand_bucket_seconds", "valid integer"),
        ({"demand_retention_days": 0}, "demand_retention_days", "greater than 0"),
        ({"demand_retention_days": -1}, "demand_retention_days", "greater than 0"),
    ],
)
def test_widths_must_be_positive(changes: dict[str, object], field: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**changes)  # type: ignore[arg-type]
    (error,) = caught.value.errors()
    assert error["loc"] == (field,) and message in error["msg"]


def test_the_worker_wires_the_sql_store_into_deliberate(tmp_path: Path) -> None:
    services = Services.from_settings(Settings(home=tmp_path, demand_bucket_seconds=600, demand_retention_days=2))
    store = services.demand_history
    assert isinstance(store, SqlDemandHistory)
    assert (store.bucket_seconds, store.retention_seconds) == (600, 2 * 86400.0)
    (deliberate,) = [a for a in activities_of(services) if getattr(a, "__name__", "") == "deliberate"]
    agent = deliberate.__self__
    assert isinstance(agent, AgentActivities) and agent.demand_history is store


def test_services_without_a_store_deliberate_without_history() -> None:
    services = dataclasses.replace(FakePorts().services(), demand_history=None)
    (deliberate,) = [a for a in activities_of(services) if getattr(a, "__name__", "") == "deliberate"]
    assert deliberate.__self__.demand_history is None


def test_the_fake_ports_wire_the_fake_store() -> None:
    ports = FakePorts()
    (deliberate,) = [a for a in activities_of(ports.services()) if getattr(a, "__name__", "") == "deliberate"]
    assert deliberate.__self__.demand_history is ports.demand_history
