"""The layers run one way: `rnn_apps` may import `export`, `pipelines` and `foundation`; `export`
and `pipelines` import only `foundation` of the project; `foundation` imports none of it; nothing
imports `tests` (the one-file app there is found by its name, not listed anywhere). A module
that breaks this (e.g. a pipeline raising `rnn_apps.errors.UserError`) fails here, naming the line."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"rnn_apps", "export", "pipelines", "foundation", "tests"}
ALLOWED = {"foundation": set(), "pipelines": {"foundation"}, "export": {"foundation"},
           "rnn_apps": {"export", "pipelines", "foundation"}}


def imported_packages(path: Path) -> list:
    """(line, top-level package) for every import of the project's packages in `path`, lazy ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in PROJECT]
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below_it(package):
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {imported}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for line, imported in imported_packages(path)
             if imported != package and imported not in ALLOWED[package]]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_wrong_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom rnn_apps.run import Run\n\ndef f():\n    import export.tflite\n")
    assert imported_packages(module) == [(2, "rnn_apps"), (5, "export")]


def test_a_lazily_imported_module_loads_at_its_first_attribute():
    import sys

    from foundation.lazy import LazyModule

    sys.modules.pop("colorsys", None)
    lazy = LazyModule("colorsys")
    assert "colorsys" not in sys.modules  # nothing imported yet
    assert lazy.rgb_to_hsv(1.0, 0.0, 0.0) == (0.0, 1.0, 1.0) and "colorsys" in sys.modules
    with pytest.raises(ModuleNotFoundError):
        LazyModule("no_such_module_here").anything  # noqa: B018
