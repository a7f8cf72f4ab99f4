"""Fixtures for the policy gate tests: the repo bundle and tiny throwaway bundles."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.core.settings import REPO_ROOT

POLICIES = REPO_ROOT / "policies"
CASES = REPO_ROOT / "tests" / "policy_cases"

MakeBundle = Callable[..., Path]


REPO_DATA: dict[str, Any] = json.loads((POLICIES / "data.json").read_text())


@pytest.fixture
def make_bundle(tmp_path: Path) -> MakeBundle:
    """Write a bundle with the given modules (path -> source) and data (the repo's unless given;
    None writes no data.json); return its folder."""

    def make(modules: dict[str, str], data: dict[str, Any] | None = REPO_DATA, revision: str = "test-1") -> Path:
        root = tmp_path / "bundle"
        root.mkdir(exist_ok=True)
        (root / ".manifest").write_text(json.dumps({"revision": revision, "roots": ["twinops"]}))
        if data is not None:
            (root / "data.json").write_text(json.dumps(data))
        for rel, source in modules.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
        return root

    return make
