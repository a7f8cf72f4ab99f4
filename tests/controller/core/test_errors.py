"""One exception tree: every error twinops defines derives from `TwinopsError`, as `controller.core.errors` draws it."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

import controller.core.errors
import twinops
from twinops import TwinopsError

PACKAGES = ("twinops", "twin", "agents", "workflows", "controller")

# Outside the tree on purpose, each for the reason `controller.core.errors` gives too.
OUTSIDE = {
    "controller.adapters.policy.engine_process.EngineError": "the engine child process imports only stdlib and regorus",
    "controller.adapters.policy.engine_pool._AbandonedError": "a private signal that never reaches a caller",
    "controller.api.problems.Problem": "an HTTP answer (RFC 9457 problem details), raised by handlers",
    "controller.api.web.render.SignInRequired": "a page's signal to redirect to /login",
    "controller.api.signin_oidc._SignInError": "a private signal the OIDC sign-in turns into an error page",
}

_NODE = re.compile(r"^(?P<indent>[ │├└─]*)(?P<name>[A-Za-z_]\w*)(?:\s+(?P<what>.*?))?(?:\s+\[(?P<module>[\w.]+)\])?$")


def _import_everything() -> None:
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, name + "."):
            if ".migrations" not in module.name:  # Alembic scripts run against a database on import
                importlib.import_module(module.name)


def _subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def ours() -> dict[str, type[BaseException]]:
    """Every exception class defined in our packages, by qualified name (a function's own classes once it ran).

    Temporal's workflow sandbox re-imports our modules, so a class may exist twice; the copies
    agree on names, and every check here goes by name.
    """
    _import_everything()
    return {
        f"{cls.__module__}.{cls.__qualname__}": cls
        for cls in _subclasses(BaseException)
        if cls.__module__.split(".")[0] in PACKAGES
    }


def is_root(cls: type) -> bool:
    """The root, or a sandbox's copy of it."""
    return (cls.__module__, cls.__qualname__) == (TwinopsError.__module__, TwinopsError.__qualname__)


def in_tree(cls: type) -> bool:
    """Derives from the root (a sandbox's copy of a class derives from the sandbox's copy of the root)."""
    return any(is_root(c) for c in cls.__mro__)


@dataclass(frozen=True)
class Drawn:
    """One class as the docstring draws it."""

    parent: str | None
    also: frozenset[str]
    module: str
    last: bool


def drawn_tree(doc: str) -> dict[str, Drawn]:
    """Parse the tree in `doc`: each name's parent (by indentation), "also a X" bases, [module], └── or ├──."""
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(TwinopsError.__name__))
    nodes: dict[str, Drawn] = {}
    stack: list[str] = []
    children: dict[str | None, list[tuple[str, bool]]] = {}
    for line in lines[start:]:
        if not line.strip():
            break
        match = _NODE.match(line)
        assert match, f"not a tree line: {line!r}"
        indent, name = match["indent"], match["name"]
        depth = len(indent) // 5
        assert len(indent) == depth * 5, f"{name}: indentation is not a multiple of 5: {line!r}"
        del stack[depth:]
        parent = stack[-1] if stack else None
        assert len(stack) == depth, f"{name}: drawn deeper than its parent"
        assert name not in nodes, f"{name} drawn twice"
        last = indent.endswith("└── ")
        nodes[name] = Drawn(
            parent=parent,
            also=frozenset(re.findall(r"\balso an? (\w+)", match["what"] or "")),
            module=match["module"] or controller.core.errors.__name__,
            last=last,
        )
        children.setdefault(parent, []).append((name, last))
        stack.append(name)
    for parent, kids in children.items():
        if parent is not None:
            assert [last for _, last in kids] == [False] * (len(kids) - 1) + [True], f"{parent}: └── marks the last"
    return nodes


def test_every_error_we_define_derives_from_the_one_root() -> None:
    classes = ours()
    outside = sorted(name for name, cls in classes.items() if not in_tree(cls))
    assert outside == sorted(OUTSIDE), "derive it from TwinopsError, or list it (with its reason) in both places"


def test_what_stays_outside_is_named_in_the_docstring() -> None:
    doc = controller.core.errors.__doc__ or ""
    for name in OUTSIDE:
        assert f"`{name}`" in doc


def test_the_drawn_tree_is_the_real_one() -> None:
    tree = [cls for cls in ours().values() if in_tree(cls)]
    names = [cls.__name__ for cls in tree]
    assert len(names) == len(set(names)), "class names in the tree are unique"
    real = {
        cls.__name__: (
            None if is_root(cls) else cls.__bases__[0].__name__,
            frozenset(base.__name__ for base in cls.__bases__[1:]),
            cls.__module__,
        )
        for cls in tree
    }
    drawn = {
        name: (node.parent, node.also, node.module)
        for name, node in drawn_tree(controller.core.errors.__doc__ or "").items()
    }
    assert drawn == real


def test_the_root_is_one_class_wherever_it_is_imported_from() -> None:
    assert controller.core.errors.TwinopsError is twinops.TwinopsError is TwinopsError


def test_the_root_imports_nothing_of_ours_or_anyone_else() -> None:
    probe = "import sys, twinops\nprint(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert [m for m in loaded if m.split(".")[0] in {*PACKAGES[1:], "pydantic", "temporalio"}] == []


def test_the_parser_reads_parents_bases_modules_and_last_children() -> None:
    tree = drawn_tree("TwinopsError  root\n ├── A  a\n │    └── AA  aa\n └── B  b (also a ValueError)  [x.y]\n")
    assert {name: node.parent for name, node in tree.items()} == {
        "TwinopsError": None,
        "A": "TwinopsError",
        "AA": "A",
        "B": "TwinopsError",
    }
    assert tree["B"] == Drawn(parent="TwinopsError", also=frozenset({"ValueError"}), module="x.y", last=True)
    assert tree["A"].module == "controller.core.errors" and not tree["A"].last and tree["AA"].last


def test_the_parser_rejects_a_misdrawn_last_child() -> None:
    with pytest.raises(AssertionError, match="└── marks the last"):
        drawn_tree("TwinopsError  root\n └── A  a\n ├── B  b\n")
