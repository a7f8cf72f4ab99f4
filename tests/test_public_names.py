"""Every package's `__all__` names exist, and every public module-level class or function it re-exports is listed."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "twin",
    "agents",
    "workflows",
    "controller",
    "controller.cli",
    "controller.app",
    "controller.adapters",
    "controller.adapters.actuators",
    "controller.adapters.audit",
    "controller.adapters.notifiers",
    "controller.adapters.policy",
    "controller.core",
    "controller.testing",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_resolve(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
    assert sorted(module.__all__) == sorted(set(module.__all__)), "no duplicates"


@pytest.mark.parametrize("package", PACKAGES)
def test_everything_imported_into_the_package_is_public(package: str) -> None:
    module = importlib.import_module(package)
    imported = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith(package + ".") and callable(value)
    }
    assert imported <= set(module.__all__), f"re-exported but not in __all__: {sorted(imported - set(module.__all__))}"
