"""The Rego bundle on disk: its modules, data, manifest revision and a SHA-256 over its files.

The hash lets the audit trail say exactly which policy said yes. It is computed
over every file of the bundle folder (hidden files and folders skipped, except
`.manifest`), in byte order of their `/`-separated relative paths, as the SHA-256
of the lines `<sha256 of file>  <relative path>\\n`: the same digest as

    cd policies && find . -type f ! -path '*/.*' -printf '%P\\n' -o -name .manifest -printf '%P\\n' \\
        | LC_ALL=C sort | xargs sha256sum | sha256sum
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.adapters.policy.config import validate_config
from controller.core.errors import PolicyConfigError, PolicyError

MANIFEST = ".manifest"
DATA_FILE = "data.json"
TEST_SUFFIX = "_test.rego"


@dataclass(frozen=True, slots=True)
class RegoModule:
    """One `.rego` file: its path relative to the bundle root and its source."""

    path: str
    source: str

    @property
    def is_test(self) -> bool:
        """True for `*_test.rego` files, which production engines do not load."""
        return self.path.endswith(TEST_SUFFIX)


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    """An OPA-layout bundle loaded into memory, with its revision and content hash."""

    root: Path
    revision: str
    roots: tuple[str, ...]
    sha256: str
    modules: tuple[RegoModule, ...]
    data: dict[str, Any]
    data_files: tuple[str, ...] = ()  # the data.json files merged into `data`, by relative path

    @property
    def policy_modules(self) -> tuple[RegoModule, ...]:
        """The modules a decision needs (tests left out)."""
        return tuple(m for m in self.modules if not m.is_test)

    @property
    def data_json(self) -> str:
        """The merged data document as JSON text."""
        return json.dumps(self.data, sort_keys=True)


def _bundle_files(root: Path) -> list[tuple[str, Path]]:
    files: list[tuple[str, Path]] = []
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        parts = rel.split("/")
        # Editor swap files, .git and the like are not part of the bundle; .manifest is.
        if any(p.startswith(".") for p in parts[:-1]) or (parts[-1].startswith(".") and rel != MANIFEST):
            continue
        if path.is_file():
            files.append((rel, path))
    files.sort(key=lambda item: item[0].encode())
    return files


def bundle_digest(files: list[tuple[str, bytes]]) -> str:
    """SHA-256 of `<sha256(content)>  <path>` lines, in the order given (sorted by path)."""
    outer = hashlib.sha256()
    for rel, content in files:
        outer.update(f"{hashlib.sha256(content).hexdigest()}  {rel}\n".encode())
    return outer.hexdigest()


def _nest(rel_dir: str, value: Any) -> Any:
    # OPA mounts a data.json found in folder a/b under data.a.b.
    for part in reversed([p for p in rel_dir.split("/") if p]):
        value = {part: value}
    return value


def _merge(into: dict[str, Any], more: dict[str, Any], where: str) -> None:
    for key, value in more.items():
        if key in into and isinstance(into[key], dict) and isinstance(value, dict):
            _merge(into[key], value, f"{where}.{key}")
        elif key in into:
            raise PolicyError(f"bundle data: {where}.{key} is defined by two data.json files")
        else:
            into[key] = value


def load_bundle(root: Path) -> PolicyBundle:
    """Read a bundle folder and check its settings: the bundle decisions are made with.

    Raises PolicyError naming the file when the bundle cannot be read, and
    PolicyConfigError naming the setting when data.json lacks one the rules read
    or gives it the wrong type (a missing data.json lacks them all).
    """
    bundle = read_bundle(root)
    check_config(bundle)
    return bundle


def check_config(bundle: PolicyBundle) -> None:
    """Raise PolicyConfigError naming the setting when the bundle's data cannot drive the rules."""
    if not bundle.data_files:
        raise PolicyConfigError(
            ["twinops.config"],
            f"policy bundle {bundle.root}: no {DATA_FILE}; every setting under twinops.config is required",
        )
    validate_config(bundle.data, where=f"policy bundle {bundle.root}")


def read_bundle(root: Path) -> PolicyBundle:
    """Read a bundle folder: every `.rego` module, every `data.json`, the `.manifest`; settings unchecked.

    Raises PolicyError naming the file when the bundle cannot be used.
    """
    if not root.is_dir():
        raise PolicyError(f"policy bundle {root}: not a directory")
    files = _bundle_files(root)
    contents = [(rel, path.read_bytes()) for rel, path in files]
    manifest_bytes = dict(contents).get(MANIFEST)
    if manifest_bytes is None:
        raise PolicyError(f"policy bundle {root}: no {MANIFEST} (it must name the revision)")
    try:
        manifest = json.loads(manifest_bytes)
        revision = str(manifest["revision"])
        roots = tuple(str(r) for r in manifest.get("roots", [""]))
    except (ValueError, KeyError, TypeError) as exc:
        raise PolicyError(f"policy bundle {root / MANIFEST}: needs a JSON object with a 'revision' ({exc})") from exc

    modules: list[RegoModule] = []
    data: dict[str, Any] = {}
    data_files: list[str] = []
    for rel, content in contents:
        if rel.endswith(".rego"):
            try:
                modules.append(RegoModule(path=rel, source=content.decode("utf-8")))
            except UnicodeDecodeError as exc:
                raise PolicyError(f"policy bundle {root / rel}: not UTF-8") from exc
        elif rel == DATA_FILE or rel.endswith("/" + DATA_FILE):
            try:
                doc = json.loads(content)
            except ValueError as exc:
                raise PolicyError(f"policy bundle {root / rel}: invalid JSON ({exc})") from exc
            nested = _nest(rel.rpartition("/")[0], doc)
            if not isinstance(nested, dict):
                raise PolicyError(f"policy bundle {root / rel}: the root data.json must hold an object")
            _merge(data, nested, "data")
            data_files.append(rel)
    if not modules:
        raise PolicyError(f"policy bundle {root}: no .rego modules")
    return PolicyBundle(
        root=root,
        revision=revision,
        roots=roots,
        sha256=bundle_digest(contents),
        modules=tuple(modules),
        data=data,
        data_files=tuple(data_files),
    )
