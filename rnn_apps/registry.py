"""Finds apps by module name: `rnn_apps/apps/<name>.py` defines `APP`. No decorators, no lists.

A new topology is one new module in `rnn_apps/apps/`; the CLI, the contract tests and export
pick it up from here.
"""

import importlib
import pkgutil

from rnn_apps import apps
from rnn_apps.errors import UserError


def names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(apps.__path__) if not m.name.startswith("_"))


def get(name: str):
    if name not in names():
        raise UserError(f"unknown app {name!r}; choose one of: {', '.join(names())} (see `rnn-apps list`)")
    return importlib.import_module(f"rnn_apps.apps.{name}").APP
