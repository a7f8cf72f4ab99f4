"""Lazy re-exports for package `__init__` files: a name's module is imported on first use.

The group packages re-export their public names this way so that importing one (as the CLI
does, for the errors) does not load SQLAlchemy, Temporal or the simulator.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, namespace: dict[str, Any], home: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `home[name]`, caches the value in `namespace` and returns it."""

    def load(name: str) -> Any:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home[name]), name)
        namespace[name] = value
        return value

    return load
