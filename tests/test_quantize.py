"""Quantized phone models (`rnn-apps export --quantize`, `--member`) and `rnn-apps report-export`:
every mode builtin-only and measured on the test split, the model card naming the file to ship
(never one beyond the app's quality bound), a mode the converter cannot give reported, not
crashed on, and the report's table of sizes, latencies and quality."""

import json

import pytest

from export import QUANTIZE_MODES, quantize, tflite
from foundation.errors import ExportError
from rnn_apps.run import Run
from tests.test_cli import invoke


@pytest.fixture(scope="module")
def ensemble_run(tiny_ensemble):
    """A tiny sentiment ensemble of two members: what `--member` picks from."""
    return tiny_ensemble("sentiment")


@pytest.fixture(scope="module")
def phone_export(tmp_path_factory, ensemble_run):
    root = tmp_path_factory.mktemp("phone") / "exports"
    result = invoke("export", ensemble_run.dir, "--out", root, "--name", "phone", "--member", "best",
                    "--quantize", "all")
    assert result.exit_code == 0, result.output
    return root, result.output


def test_every_mode_is_written_builtin_only_and_measured(phone_export, ensemble_run):
    root, output = phone_export
    manifest = json.loads((root / "manifest.json").read_text())
    entry = manifest["exports"][-1]
    scores = [m["best"] for m in ensemble_run.metrics()["members"]]
    pick = min if ensemble_run.config["monitor"].endswith("loss") else max
    assert entry["ensemble_member"] == pick(range(2), key=scores.__getitem__)
    section = entry["quantization"]["sentiment.tflite"]
    assert section["metric"] == "accuracy" and section["bound"] == 0.01 and section["test_examples"] == 96
    rows = {row["mode"]: row for row in section["modes"]}
    assert set(rows) == set(QUANTIZE_MODES)
    assert rows["none"]["difference"] == 0.0 and 0.0 <= rows["none"]["accuracy"] <= 1.0
    folder = root / "tflite" / "phone" / "1"
    card = json.loads((folder / "model_card.json").read_text())
    assert card["ensemble_member"] == {"index": entry["ensemble_member"], "of": 2}
    for mode, row in rows.items():
        if not row["available"]:  # a mode the converter cannot give says why, and no file is left
            assert row["why"] and not (folder / row["file"]).exists()
            continue
        path = folder / row["file"]
        assert path.stat().st_size == row["bytes"]
        assert tflite.forbidden_ops(tflite.op_names(path)) == []
        assert abs(row["accuracy"] - rows["none"]["accuracy"] - row["difference"]) < 1e-9
        assert row["within_bound"] == (row["difference"] >= -0.01)
        assert card["signature_specs"][row["file"]]["serving_default"]["inputs"]["token_ids"]["dtype"] == "int32"
        assert f"  {mode}: " in output or mode == "none"
    assert rows["dynamic"]["available"] and rows["float16"]["available"]
    assert card["default_file"] == quantize.default_file(section["modes"])
    assert set(card["files"]) >= {"vocab.txt", "labels.txt", "model_card.json", card["default_file"]}
    # one default per .tflite model (a regex-tokenised run's MediaPipe file has its own)
    defaults = [a for a in entry["artefacts"] if a["kind"] == "tflite" and a["default"]]
    assert [a["path"] for a in defaults if a["card"] == "model_card.json"] == [f"tflite/phone/1/{card['default_file']}"]
    # query answers through the default file
    result = invoke("query", root, "--name", "phone", "a gorgeous , witty movie .", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["tflite"]["label"] in ("negative", "positive")


def test_the_default_file_is_the_smallest_within_the_bound():
    rows = [{"file": "m.tflite", "bytes": 100, "available": True, "within_bound": True},
            {"file": "m.dynamic.tflite", "bytes": 30, "available": True, "within_bound": True},
            {"file": "m.int8.tflite", "bytes": 25, "available": True, "within_bound": False},
            {"file": "m.float16.tflite", "available": False}]
    assert quantize.default_file(rows) == "m.dynamic.tflite"
    assert quantize.default_file([rows[0], rows[2]]) == "m.tflite"  # flagged: never the default


def test_a_mode_the_converter_refuses_is_reported_not_raised(ensemble_run, tmp_path, monkeypatch):
    member = ensemble_run.member(1)
    model = member.app.tflite_models(member)[0]
    (tmp_path / model.filename).write_bytes(tflite.convert(model.endpoints))
    convert = tflite.convert

    def refuse_int8(endpoints, mode="none", calibration=None):
        if mode == "int8":
            raise ExportError("TFLite conversion failed:\nerror: 'tfl.select_v2' op violates the same scale constraint")
        return convert(endpoints, mode, calibration)

    monkeypatch.setattr(tflite, "convert", refuse_int8)
    lines = []
    measured = quantize.measure(member.app, member, model, tmp_path, ("none", "int8"), member.parity_examples(),
                                echo=lines.append)
    assert measured["modes"][1] == {"mode": "int8", "file": "sentiment.int8.tflite", "available": False,
                                    "why": "error: 'tfl.select_v2' op violates the same scale constraint"}
    assert not (tmp_path / "sentiment.int8.tflite").exists() and measured["default_file"] == "sentiment.tflite"
    assert any("int8: not available for sentiment" in line for line in lines)


def test_report_export_tables_size_latency_and_quality(phone_export):
    root, _ = phone_export
    result = invoke("report-export", root, "--repeats", "3")
    assert result.exit_code == 0, result.output
    page = (root / "export_report.html").read_text()
    report = json.loads((root / "export_report.json").read_text())
    model = report["models"][0]
    assert model["model_name"] == "phone" and model["bound"]["metric"] == "accuracy"
    for row in model["rows"]:
        assert set(row["latency_ms"]) == {"1 thread, XNNPACK", "2 threads, XNNPACK", "1 thread, no XNNPACK",
                                          "2 threads, no XNNPACK"}
        assert all(0 < ms["serving_default"] < 1000 for ms in row["latency_ms"].values())
        assert row["file"] in page and "quality" in row
    assert page.count("<svg") == 3  # size, latency and quality charts
    assert ("class=flagged" in page) == any(not r["within_bound"] for r in model["rows"]) or model["unavailable"]


def test_member_and_quantize_errors_are_one_line(ensemble_run, tiny_run, tmp_path):
    for args, message in (
            (["--member", "x"], "--member 'x': expected a member's index (0, 1, ...) or 'best'"),
            (["--member", "2"], "--member 2: this ensemble has members 0..1 (or 'best')")):
        result = invoke("export", ensemble_run.dir, "--out", tmp_path, *args)
        assert result.exit_code == 2 and result.output.strip().splitlines()[-1] == f"Error: {message}"
    result = invoke("export", tiny_run("digits").dir, "--out", tmp_path, "--member", "0")
    assert result.exit_code == 2 and "is one model, not an ensemble" in result.output
    result = invoke("export", ensemble_run.dir, "--out", tmp_path, "--quantize", "int4")
    assert result.exit_code == 2 and "'int4' is not one of" in result.output
    result = invoke("report-export", tmp_path / "nowhere")
    assert result.exit_code == 2 and "manifest.json is missing" in result.output
    assert not list(tmp_path.glob("*/"))  # nothing was exported


def test_a_member_is_the_members_own_model(ensemble_run):
    member = ensemble_run.member(0)
    assert member.config["members"] == 1 and member.member_index == 0
    assert len(member.model.get_weights()) * 2 == len(ensemble_run.model.get_weights())
    assert isinstance(Run(ensemble_run.dir).member("best").member_index, int)
