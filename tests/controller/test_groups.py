"""The controller's groups: lazy re-exports match `__all__`, and importing a group's package stays cheap.

The layers between the groups (cli -> app -> adapters -> core, testing beside cli) are an
import-linter contract in pyproject.toml, checked by `lint-imports`.
"""

from __future__ import annotations

import importlib

import pytest

from tests.controller.cli.test_startup import heavy, imported_after

LAZY = ["controller.app", "controller.adapters", "controller.core"]


@pytest.mark.parametrize("package", LAZY)
def test_every_lazy_name_is_public_and_every_public_name_is_lazy(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module._HOME) == sorted(module.__all__)


@pytest.mark.parametrize("package", LAZY)
def test_an_unknown_name_is_an_attribute_error(package: str) -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = importlib.import_module(package).no_such_name


def test_importing_the_groups_imports_nothing_heavy() -> None:
    assert heavy(imported_after("import controller.app, controller.adapters, controller.core")) == []
