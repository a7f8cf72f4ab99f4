"""The bundle loader: revision, data, and a SHA-256 that depends on content only."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import controller.adapters.policy as policy
from controller.adapters.policy import load_bundle, read_bundle
from controller.adapters.policy.bundle import bundle_digest
from controller.core.errors import PolicyError

from .conftest import POLICIES, MakeBundle


def test_repo_bundle_loads_with_revision_data_and_modules() -> None:
    bundle = load_bundle(POLICIES)
    assert bundle.revision
    assert bundle.roots == ("twinops",)
    assert "safety" in bundle.data["twinops"]["config"]
    paths = {m.path for m in bundle.policy_modules}
    assert paths == {
        "twinops/safety/safety.rego",
        "twinops/approval/approval.rego",
        "twinops/config_check/config_check.rego",
    }
    assert len(bundle.modules) == 6


def test_hash_is_stable_across_loads_and_locations(tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere"
    shutil.copytree(POLICIES, copy)
    assert load_bundle(POLICIES).sha256 == load_bundle(POLICIES).sha256 == load_bundle(copy).sha256


def test_hash_changes_with_any_file_and_ignores_hidden_files(tmp_path: Path) -> None:
    copy = tmp_path / "b"
    shutil.copytree(POLICIES, copy)
    before = load_bundle(copy).sha256
    (copy / ".swp").write_text("editor junk")
    (copy / ".git").mkdir()
    (copy / ".git" / "HEAD").write_text("ref")
    assert load_bundle(copy).sha256 == before
    data = copy / "data.json"
    data.write_text(data.read_text().replace('"max_replicas_per_node": 50', '"max_replicas_per_node": 51'))
    assert load_bundle(copy).sha256 != before


def test_hash_is_the_documented_recipe() -> None:
    files = [("a.rego", b"package a\n"), (".manifest", b"{}")]
    lines = "".join(f"{hashlib.sha256(c).hexdigest()}  {p}\n" for p, c in files)
    assert bundle_digest(files) == hashlib.sha256(lines.encode()).hexdigest()


def test_nested_data_json_is_mounted_at_its_folder(make_bundle: MakeBundle) -> None:
    root = make_bundle({"twinops/x/x.rego": "package twinops.x\n", "twinops/x/data.json": '{"k": 1}'}, data={"top": 1})
    assert read_bundle(root).data == {"top": 1, "twinops": {"x": {"k": 1}}}


def test_missing_manifest_is_an_error_naming_the_bundle(tmp_path: Path) -> None:
    (tmp_path / "a.rego").write_text("package a\n")
    with pytest.raises(PolicyError, match=r"\.manifest"):
        load_bundle(tmp_path)


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not a directory"):
        load_bundle(tmp_path / "nope")


def test_invalid_data_json_is_an_error_naming_the_file(make_bundle: MakeBundle) -> None:
    root = make_bundle({"a.rego": "package a\n"})
    (root / "data.json").write_text("{nope")
    with pytest.raises(PolicyError, match=r"data\.json"):
        load_bundle(root)


def test_public_names_are_exported() -> None:
    exported = set(policy.__all__)
    public = {n for n in vars(policy) if not n.startswith("_") and n not in {"annotations"}}
    modules = {
        "bundle",
        "config",
        "consistency",
        "engine",
        "engine_pool",
        "engine_process",
        "factory",
        "gate",
        "opa_gate",
        "regorus_gate",
        "rego_tests",
    }
    assert public - modules == exported
