"""Finds apps by module name: `rnn_apps/apps/<name>.py` defines `APP`. No decorators, no lists.

A new topology is one new module in `rnn_apps/apps/`; the CLI, the contract tests and export
pick it up from here.
"""

import ast
import importlib
import pkgutil
from pathlib import Path

from foundation.errors import UserError
from rnn_apps import apps


def names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(apps.__path__) if not m.name.startswith("_"))


def get(name: str):
    if name not in names():
        raise UserError(f"unknown app {name!r}; choose one of: {', '.join(names())} (see `rnn-apps list`)")
    return importlib.import_module(f"rnn_apps.apps.{name}").APP


DESCRIPTION = ("name", "topology", "task", "default_data")


def describe(name: str) -> dict:
    """An app's name, topology, task and default data, read from its module's source without
    importing it: importing an app imports TensorFlow (seconds), and `rnn-apps list` should answer
    at once. They are plain literals in the app class's body (the contract test checks that these
    equal the imported app's)."""
    if name not in names():
        raise UserError(f"unknown app {name!r}; choose one of: {', '.join(names())} (see `rnn-apps list`)")
    tree = ast.parse(Path(apps.__path__[0], f"{name}.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            found = {target.id: ast.literal_eval(statement.value) for statement in node.body
                     if isinstance(statement, ast.Assign) for target in statement.targets
                     if isinstance(target, ast.Name) and target.id in DESCRIPTION}
            if found.get("name") == name:
                return {key: found.get(key) for key in DESCRIPTION}
    raise UserError(f"rnn_apps/apps/{name}.py has no app class whose body names it {name!r} with a literal")
