"""The controller's core: settings, the exception tree (`controller.core.errors`), database engines and migrations.

Every other group of the controller may import these; they import none of it. Names are
re-exported lazily: importing the package (which `controller.cli` does, for the errors) does
not load SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from controller.core.lazy import lazy_getattr as _lazy_getattr

if TYPE_CHECKING:
    from controller.core.db import create_engine, migrate
    from controller.core.settings import REPO_ROOT, Settings, load_settings

__all__ = ["REPO_ROOT", "Settings", "create_engine", "load_settings", "migrate"]

_HOME = {
    "create_engine": "controller.core.db",
    "migrate": "controller.core.db",
    "REPO_ROOT": "controller.core.settings",
    "Settings": "controller.core.settings",
    "load_settings": "controller.core.settings",
}


__getattr__ = _lazy_getattr(__name__, globals(), _HOME)
