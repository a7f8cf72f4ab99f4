"""agents/ shows its public names in `__all__`, and they all exist and are documented."""

from __future__ import annotations

import inspect

import agents


def test_all_is_complete_and_documented() -> None:
    exported = set(agents.__all__)
    public = {n for n, v in vars(agents).items() if not n.startswith("_") and not inspect.ismodule(v)}
    assert public == exported
    for name in exported:
        assert inspect.getdoc(getattr(agents, name)), name
