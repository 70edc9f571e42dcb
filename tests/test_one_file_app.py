"""An app defined in one file outside the package (tests/app_running_parity.py) works through the
CLI as a user runs it: train by module path, evaluate, predict, export with parity, query. The
contract tests (tests/test_contract.py) run it like the seven apps; this checks the commands."""

import json

import pytest

from tests.app_running_parity import APP
from tests.test_cli import assert_one_line_error, invoke

NAME = "tests.app_running_parity"


@pytest.mark.slow
def test_train_evaluate_predict_export_and_query_by_module_path(tmp_path):
    run_dir, export_root = tmp_path / "run", tmp_path / "exports"
    trained = invoke("train", NAME, "--preset", "tiny", "--out", run_dir)
    assert trained.exit_code == 0, trained.output
    assert "data: synthetic (labels: even, odd)" in trained.output
    assert json.loads((run_dir / "run.json").read_text())["app"] == NAME
    evaluated = invoke("evaluate", run_dir, "--json")
    metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert metrics["sentences"] == 100 and 0 <= metrics["accuracy"] <= 1
    assert set(metrics["per_tag"]) == {"even", "odd"}
    predicted = invoke("predict", run_dir, "1 0 1 1", "--json")
    row = json.loads(predicted.stdout.strip())
    assert row["tokens"] == ["1", "0", "1", "1"] and set(row["tags"]) <= {"even", "odd"} and len(row["tags"]) == 4
    exported = invoke("export", run_dir, "--out", export_root)
    assert exported.exit_code == 0, exported.output
    entry = json.loads((export_root / "manifest.json").read_text())["exports"][0]
    assert entry["model_name"] == NAME and entry["parity"]["ok"]
    assert (export_root / "tflite" / NAME / "1" / "symbols.txt").read_text() == "\n\n[UNK]\n0\n1\n"[1:]
    queried = invoke("query", export_root, "1 1 0", "0", "--json")
    rows = [json.loads(line) for line in queried.stdout.strip().splitlines()]
    assert [r["tokens"] for r in rows] == [["1", "1", "0"], ["0"]]
    assert all(r["saved_model"] == r["tflite"] for r in rows)


def test_an_unknown_module_path_is_one_line():
    assert_one_line_error(invoke("train", "tests.no_such_app", "--out", "x"), "unknown app 'tests.no_such_app'")
    assert_one_line_error(invoke("train", "tests.test_cli", "--out", "x"), "has no app class")


def test_the_data_is_what_the_docstring_says():
    splits = APP.load_data("synthetic", None, APP.resolve_config("tiny"), {})
    bits = [s.split("\t") for s in splits.test["tokens"]]
    tags = [t.split("\t") for t in splits.test["tags"]]
    for row, labels in zip(bits, tags, strict=True):
        ones = 0
        for bit, label in zip(row, labels, strict=True):
            ones += bit == "1"
            assert label == ("odd" if ones % 2 else "even")
