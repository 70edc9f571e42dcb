"""Finds apps by module name: `rnn_apps/apps/<name>.py` defines `APP`. No decorators, no lists.

A new topology is one new module in `rnn_apps/apps/`; the CLI, the contract tests and export
pick it up from here. An app kept elsewhere is named by its module's dotted path (`rnn-apps train
tests.app_running_parity ...`, with the module importable from the working directory); its `name`
is that path, so its runs and exports find it again.
"""

import ast
import importlib
import importlib.util
import pkgutil
from pathlib import Path

from foundation.errors import UserError
from rnn_apps import apps


def names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(apps.__path__) if not m.name.startswith("_"))


def get(name: str):
    app = getattr(importlib.import_module(module_path(name)), "APP", None)
    if app is None:
        raise UserError(f"{module_path(name)} defines no APP: not an app module")
    return app


def module_path(name: str) -> str:
    """The module that defines app `name`: rnn_apps.apps.<name>, or `name` itself where it is a dotted path."""
    if "." in name:
        try:
            found = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            found = None
        if found is None:
            raise UserError(f"unknown app {name!r}: no module of that name can be imported from here")
        return name
    if name not in names():
        raise UserError(f"unknown app {name!r}; choose one of: {', '.join(names())} (see `rnn-apps list`)")
    return f"rnn_apps.apps.{name}"


DESCRIPTION = ("name", "topology", "task", "default_data")


def describe(name: str) -> dict:
    """An app's name, topology, task and default data, read from its module's source without
    importing it: importing an app imports TensorFlow (seconds), and `rnn-apps list` should answer
    at once. They are plain literals in the app class's body (the contract test checks that these
    equal the imported app's)."""
    source = Path(importlib.util.find_spec(module_path(name)).origin)
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            found = {target.id: ast.literal_eval(statement.value) for statement in node.body
                     if isinstance(statement, ast.Assign) for target in statement.targets
                     if isinstance(target, ast.Name) and target.id in DESCRIPTION}
            if found.get("name") == name:
                return {key: found.get(key) for key in DESCRIPTION}
    raise UserError(f"{source} has no app class whose body names it {name!r} with a literal")
