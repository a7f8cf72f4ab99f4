"""Replay histories kept per release, and the manifest that freezes them.

`histories/<version>/<name>.json` holds what a release's workflows wrote to Temporal.
`histories/MANIFEST.json` names every file with its SHA-256 and, per release, the git
commit that is that release (the upgrade test runs that commit's worker). Histories of
the version in `pyproject.toml` may be captured again while it is unreleased; those of
every earlier version are frozen: the manifest test fails if one changes or goes.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]  # no resolve(): the workflow sandbox re-imports test modules and forbids it
HISTORIES = Path(__file__).with_name("histories")
MANIFEST = HISTORIES / "MANIFEST.json"


def version_key(version: str) -> tuple[int, ...]:
    """Order release versions numerically (0.10.0 after 0.9.0)."""
    return tuple(int(part) for part in version.split("."))


def current_version() -> str:
    """The package version being built: pyproject.toml's, the one a workflow change bumps."""
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest() -> dict[str, Any]:
    """The manifest: {"releases": {version: {"commit": sha|None, "histories": {file: sha256}}}}."""
    if not MANIFEST.exists():
        return {"releases": {}}
    data: dict[str, Any] = json.loads(MANIFEST.read_text())
    return data


def save_manifest(manifest: dict[str, Any]) -> None:
    """Write the manifest, releases in version order, files sorted (stable diffs)."""
    releases = manifest["releases"]
    ordered = {
        v: {"commit": releases[v].get("commit"), "histories": dict(sorted(releases[v]["histories"].items()))}
        for v in sorted(releases, key=version_key)
    }
    MANIFEST.write_text(json.dumps({"releases": ordered}, indent=2) + "\n")


def history_files(version: str) -> list[Path]:
    """Every history kept for one version."""
    return sorted((HISTORIES / version).glob("*.json"))


def all_history_files() -> list[Path]:
    """Every kept history of every release."""
    return sorted(HISTORIES.glob("*/*.json"))


def write_history(name: str, history_json: str) -> Path:
    """Keep one history for the current version; refuses a version that is already superseded."""
    version = current_version()
    manifest = load_manifest()
    newer = [v for v in manifest["releases"] if version_key(v) > version_key(version)]
    if newer:
        raise RuntimeError(
            f"version {version} is older than {', '.join(newer)} in the manifest: its histories are frozen"
        )
    folder = HISTORIES / version
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(history_json)
    entry = manifest["releases"].setdefault(version, {"commit": None, "histories": {}})
    entry["histories"][path.name] = sha256(path)
    save_manifest(manifest)
    return path
