"""The `rnn-apps` command line through click's CliRunner: exit codes, messages, files written."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from pipelines import tfds_source
from rnn_apps import registry
from rnn_apps.cli import main


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_list_shows_every_app_with_topology_and_default_data():
    result = invoke("list")
    assert result.exit_code == 0
    assert "sentiment    many-to-one " in result.output and "sst2 | imdb_reviews" in result.output
    assert "digits       one-to-one " in result.output
    header, *rows = result.output.splitlines()
    starts = {header.find("task")} | {row.find(registry.describe(row.split()[0])["task"]) for row in rows}
    assert len(starts) == 1 and min(starts) > 0  # the task column lines up past the longest topology


def test_unknown_app(tmp_path):
    assert_one_line_error(invoke("train", "nope", "--out", tmp_path / "r"), "unknown app 'nope'", "sentiment")


def test_unknown_config_key_and_bad_value(tmp_path, data_root):
    assert_one_line_error(invoke("train", "digits", "--out", tmp_path / "r", "--set", "unitz=3"),
                          "unknown config key 'unitz'")
    assert_one_line_error(invoke("train", "digits", "--out", tmp_path / "r", "--set", "units=many"),
                          "config units: expected int")
    assert_one_line_error(invoke("train", "digits", "--out", tmp_path / "r", "--set", "members=0"),
                          "config members: expected an integer >= 1, got 0")
    bad_vectors = ("--set", "word_vectors=/no/such/vectors.txt", "--data", "sst2", "--data-root", data_root)
    assert_one_line_error(invoke("train", "sentiment", "--out", tmp_path / "s", *bad_vectors),
                          "is neither 'glove.6B.50d' nor a GloVe-format text file")
    assert not (tmp_path / "r").exists() and not (tmp_path / "s" / "run.json").exists()  # a retry is not refused


def test_missing_run_dir(tmp_path):
    for command in ("evaluate", "predict", "export"):
        extra = ["--out", tmp_path / "e"] if command == "export" else []
        assert_one_line_error(invoke(command, tmp_path / "missing", *extra), "does not exist")
        (tmp_path / "a_file").write_text("x")
        assert_one_line_error(invoke(command, tmp_path / "a_file", *extra), "a_file is a file, not a run folder")


def test_missing_data_and_offline_tfds(tmp_path, data_root, monkeypatch):
    assert_one_line_error(invoke("train", "sentiment", "--data", "no_such_set", "--data-root", data_root,
                                 "--out", tmp_path / "r"), "no dataset 'no_such_set'")
    monkeypatch.setattr(tfds_source, "_reachable", lambda url: False)
    result = invoke("train", "sentiment", "--data", "imdb_reviews", "--tfds-data-dir", tmp_path / "tfds",
                    "--out", tmp_path / "r2")
    assert_one_line_error(result, "imdb_reviews", "cannot be reached", "--data-root")


def test_local_data_is_found_without_a_data_root_option(tmp_path, data_root, monkeypatch):
    """No --data-root and no RNN_APPS_DATA_ROOT: ../shared/data beside the working directory (or the
    checkout) is the data root, so the README's commands run as written."""
    from pipelines import splits

    monkeypatch.delenv("RNN_APPS_DATA_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert splits.default_data_root() == data_root.resolve()  # beside the checkout
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert splits.default_data_root() == (tmp_path / "shared" / "data").resolve()  # beside the working directory
    monkeypatch.setenv("RNN_APPS_DATA_ROOT", str(data_root))
    assert splits.default_data_root() == data_root
    assert_one_line_error(invoke("train", "frames", "--data", "no_such_frames", "--out", tmp_path / "r"),
                          f"no frame dataset 'no_such_frames': not a folder of UR Fall-style CSV files, not under "
                          f"the data root {data_root}, and not a TFDS name")
    monkeypatch.setattr(splits, "default_data_root", lambda: None)
    monkeypatch.delenv("RNN_APPS_DATA_ROOT")
    assert_one_line_error(invoke("train", "frames", "--data", "no_such_frames", "--out", tmp_path / "r"),
                          "not a TFDS name, and no data root is set (--data-root or RNN_APPS_DATA_ROOT)")


def test_a_step_budget_stops_every_machine_at_the_same_step(train_tiny, tmp_path):
    import keras

    run = train_tiny("digits", tmp_path / "run", epochs=3, max_train_steps=3)  # 4 steps an epoch
    assert len(run.metrics()["history"]) == 1  # stopped inside the first epoch, then validated and saved
    last = keras.models.load_model(run.dir / "checkpoints" / "last.keras")
    assert int(last.optimizer.iterations) == 3


def test_train_refuses_to_overwrite_a_run(tiny_run):
    run = tiny_run("digits")
    assert_one_line_error(invoke("train", "digits", "--out", run.dir), "already holds a run", "--resume")


def test_corrupt_checkpoint_is_a_one_line_error(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run("sentiment").dir, copy)
    (copy / "checkpoints" / "best.keras").write_bytes(b"not a zip file")
    assert_one_line_error(invoke("predict", copy, "fine"), "best.keras is unreadable")
    (copy / "config.json").write_text("{broken")
    assert_one_line_error(invoke("evaluate", copy), "config.json is not valid JSON")


def test_train_resume_continues_from_the_last_checkpoint(tmp_path, data_root):
    from rnn_apps.run import load_model

    out = tmp_path / "run"
    first = invoke("train", "sentiment", "--data", "sst2", "--data-root", data_root, "--out", out,
                   "--preset", "tiny", "--set", "patience=5")
    assert first.exit_code == 0, first.output
    assert "train.tsv" in first.output and "96 examples" in first.output  # data resolution is shown
    steps_after_one = int(load_model(out / "checkpoints" / "last.keras").optimizer.iterations.numpy())
    again = invoke("train", "sentiment", "--out", out, "--resume", "--epochs", "3")
    assert again.exit_code == 0, again.output
    assert "resuming" in again.output and "after epoch 1" in again.output
    state = json.loads((out / "state.json").read_text())
    assert state["epochs_done"] == 3 and [h["epoch"] for h in state["history"]] == [1, 2, 3]
    steps = int(load_model(out / "checkpoints" / "last.keras").optimizer.iterations.numpy())
    assert steps == 3 * steps_after_one  # optimizer state carried on, not restarted
    assert (out / "logs").is_dir() and (out / "vocab.txt").exists() and (out / "config.json").exists()


def test_resume_of_an_ensemble_trains_only_the_unfinished_members(tmp_path, tiny_ensemble):
    out = tmp_path / "run"
    shutil.copytree(tiny_ensemble("sentiment").dir, out)
    finished = out / "members" / "0" / "checkpoints" / "last.keras"
    stamp = finished.stat().st_mtime_ns
    shutil.rmtree(out / "members" / "1")  # as if training stopped before the second member
    (out / "checkpoints" / "best.keras").unlink()
    result = invoke("train", "sentiment", "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert "members/0 after epoch 1" in result.output and "ensemble of 2: val_accuracy" in result.output
    assert finished.stat().st_mtime_ns == stamp  # the finished member was not trained again
    assert json.loads((out / "members" / "1" / "state.json").read_text())["epochs_done"] == 1
    assert (out / "checkpoints" / "best.keras").exists()


def test_evaluate_prints_and_stores_test_metrics(tiny_run):
    run = tiny_run("sentiment")
    result = invoke("evaluate", run.dir, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["examples"] == 96 and 0.0 <= metrics["accuracy"] <= 1.0
    assert sum(map(sum, metrics["confusion_matrix"])) == 96
    assert json.loads((run.dir / "metrics.json").read_text())["test"] == metrics
    # for a person: a line a scalar metric, the tables named
    table = invoke("evaluate", run.dir).stdout.strip().splitlines()
    assert any(line.split() == ["accuracy", f"{metrics['accuracy']:.4f}"] for line in table)
    assert any(line.split() == ["examples", "96"] for line in table)
    assert table[-1].startswith("(with --json also: ") and "confusion_matrix" in table[-1]


def test_report_page_of_any_app_holds_the_loss_chart_metrics_and_config(tiny_run, tmp_path):
    run = tiny_run("sentiment")
    out = tmp_path / "pages" / "sentiment.html"
    result = invoke("report", run.dir, "--out", out)
    assert result.exit_code == 0 and result.output == f"report written to {out}\n"
    page = out.read_text(encoding="utf-8")
    assert page.count("<polyline") == 2 and page.count("<h2>") >= 3  # the losses; metrics; config
    assert '"units"' not in page and "<th>units</th>" in page
    assert "Not evaluated yet" in page or "Test metrics (from" in page
    assert "<img" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained


ODD_TEXTS = ["", "   ", "😀😀😀", "mixed Ελληνικά русский 中文 عربى text", "good " * 200_000, "a fine film ."]


def test_predict_sentiment_odd_texts_give_a_label_and_probability(tiny_run):
    run = tiny_run("sentiment")
    result = invoke("predict", run.dir, *ODD_TEXTS, "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(rows) == len(ODD_TEXTS)
    for row, text in zip(rows, ODD_TEXTS, strict=True):
        assert row["input"] == text
        assert row["label"] in ("negative", "positive") and 0.5 <= row["probability"] <= 1.0


def test_predict_reads_stdin_lines_including_invalid_utf8(tiny_run):
    run = tiny_run("sentiment")
    result = invoke("predict", run.dir, input=b"a fine film .\n\xff\xfe broken bytes\n\n")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip("\n").split("\n")
    assert len(lines) == 3
    label, probability, _ = lines[0].split("\t")
    assert label in ("negative", "positive") and 0.5 <= float(probability) <= 1.0


def test_export_never_overwrites_a_version(tiny_run, tiny_export, tmp_path):
    run = tiny_run("digits")
    shutil.copytree(tiny_export("digits")[0], tmp_path, dirs_exist_ok=True)  # version 1, exported once a session
    model_file = tmp_path / "digits" / "1" / "saved_model.pb"
    before = model_file.read_bytes()
    second = invoke("export", run.dir, "--out", tmp_path)
    assert second.exit_code == 0 and "version 2" in second.output
    assert model_file.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "digits").iterdir()) == ["1", "2"]
    assert sorted(p.name for p in (tmp_path / "tflite" / "digits").iterdir()) == ["1", "2"]
    assert not list(tmp_path.glob(".staging*"))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [e["version"] for e in manifest["exports"]] == [1, 2]


@pytest.fixture
def digit_files(tmp_path):
    from PIL import Image

    files = {}
    seven = Image.new("L", (40, 40), 255)
    for x in range(8, 32):
        seven.putpixel((x, 8), 0)
        seven.putpixel((31 - x // 2, x), 0)
    files["gray_png"] = tmp_path / "seven.png"
    seven.save(files["gray_png"])
    files["rgb_jpeg"] = tmp_path / "seven.jpg"
    seven.convert("RGB").save(files["rgb_jpeg"])
    files["rgba_png"] = tmp_path / "seven_alpha.png"
    seven.convert("RGBA").save(files["rgba_png"])
    files["tiny_png"] = tmp_path / "tiny.png"
    Image.new("RGB", (1, 1), (0, 0, 0)).save(files["tiny_png"])
    files["rows_csv"] = tmp_path / "rows.csv"
    files["rows_csv"].write_text(",".join(f"p{i}" for i in range(64)) + "\n" + ",".join(["8"] * 64) + "\n"
                                 + ",".join(["0"] * 64) + "\n")
    return files


def test_predict_digits_from_images_and_csv_rows(tiny_run, digit_files):
    run = tiny_run("digits")
    result = invoke("predict", run.dir, *digit_files.values(), "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(rows) == 6  # four images + two CSV rows
    assert rows[-1]["input"].endswith("rows.csv:2")
    for row in rows:
        assert row["label"] in [str(d) for d in range(10)] and 0.1 <= row["probability"] <= 1.0


def test_predict_digits_bad_files(tiny_run, tmp_path, monkeypatch):
    from PIL import Image

    from pipelines import images

    run = tiny_run("digits")
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    assert_one_line_error(invoke("predict", run.dir, not_image), "not a readable image")
    short = tmp_path / "short.csv"
    short.write_text("1,2,3\n")
    assert_one_line_error(invoke("predict", run.dir, short), "row 1: 3 values; expected 64")
    assert_one_line_error(invoke("predict", run.dir, tmp_path / "absent.png"), "no such file")
    huge = tmp_path / "huge.png"
    Image.new("L", (200, 200), 255).save(huge)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 10_000)
    assert_one_line_error(invoke("predict", run.dir, huge), "larger than 10,000 pixels")


def test_query_runs_texts_through_the_exported_models_only(tiny_export, tmp_path):
    root, _ = tiny_export("sentiment")
    result = invoke("query", root, "--name", "sentiment", "a fine film .", "", "😀 it isn't bad", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["input"] for r in rows] == ["a fine film .", "", "😀 it isn't bad"]
    for row in rows:
        assert row["version"] == 1
        assert row["saved_model"]["label"] == row["tflite"]["label"]
        assert abs(row["saved_model"]["probability"] - row["tflite"]["probability"]) <= 1e-4
    assert_one_line_error(invoke("query", tmp_path, "--name", "sentiment", "x"), "manifest.json is missing")
    assert_one_line_error(invoke("query", root, "--name", "other", "x"), "no export named 'other'")
    # without --name: the one model the root holds; a root of several asks which
    unnamed = invoke("query", root, "a fine film .", "", "😀 it isn't bad", "--json")
    assert unnamed.exit_code == 0 and unnamed.stdout == result.stdout
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["exports"].append({**manifest["exports"][0], "model_name": "sentiment_phone"})
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(invoke("query", tmp_path / "two", "x"),
                          "holds 2 models (sentiment, sentiment_phone): choose one with --name")


def test_query_on_a_damaged_export_says_which_file_in_one_line(tiny_export, tmp_path):
    import shutil

    root, _ = tiny_export("sentiment")
    damages = {"empty saved_model.pb": lambda r: (r / "sentiment" / "1" / "saved_model.pb").write_bytes(b""),
               "truncated variables": lambda r: [f.write_bytes(f.read_bytes()[:100])
                                                 for f in (r / "sentiment" / "1" / "variables").glob("*.data*")],
               "truncated tflite": lambda r: [f.write_bytes(f.read_bytes()[:1000])
                                              for f in (r / "tflite" / "sentiment" / "1").glob("*.tflite")]}
    for i, (what, damage) in enumerate(damages.items()):
        copy = tmp_path / str(i)
        shutil.copytree(root, copy)
        damage(copy)
        result = invoke("query", copy, "a fine film .")
        assert_one_line_error(result, "is damaged", "export the run again")
        assert ("tflite" in result.output) == (what == "truncated tflite"), (what, result.output)


def test_query_digits_from_an_image(tiny_export, digit_files):
    root, _ = tiny_export("digits")
    result = invoke("query", root, "--name", "digits", digit_files["gray_png"], digit_files["rows_csv"], "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert row["saved_model"]["label"] == row["tflite"]["label"]


def test_a_scan_gets_the_same_answer_from_predict_and_the_classify_images_signature(tiny_export, tiny_run,
                                                                                     digit_files):
    """One preprocessing for an image, in the graph (images.to_pixels): a dark-on-light scan is
    inverted by the SavedModel's classify_images as by `rnn-apps predict` (the signature expected
    light ink on dark and gave another digit for the same PNG)."""
    import tensorflow as tf
    from PIL import Image

    root, _ = tiny_export("digits")
    signature = tf.saved_model.load(str(root / "digits" / "1")).signatures["classify_images"]
    for name in ("gray_png", "rgb_jpeg"):
        predicted = json.loads(invoke("predict", tiny_run("digits").dir, digit_files[name], "--json").stdout)
        pixels = np.asarray(Image.open(digit_files[name]).convert("L"))[None, :, :, None]
        served = signature(images=tf.constant(pixels, tf.uint8))
        assert served["label"].numpy()[0].decode() == predicted["label"], name
        assert float(served["probability"].numpy()[0]) == pytest.approx(predicted["probability"], abs=1e-5)
        inverted = signature(images=tf.constant(255 - pixels, tf.uint8))  # light ink on dark: as it is
        np.testing.assert_allclose(inverted["probabilities"].numpy(), served["probabilities"].numpy(), atol=0.02)


def test_settings_that_pass_their_ranges_but_not_their_relations_are_refused(tmp_path):
    assert_one_line_error(invoke("train", "translate", "--out", tmp_path / "t", "--set", "length_ratio=0",
                                 "--set", "length_extra=0"),
                          "config: length_ratio and length_extra are both 0, so every translation would be empty")
    assert_one_line_error(invoke("train", "frames", "--out", tmp_path / "f", "--set", "lookahead=100",
                                 "--set", "max_frames=32"), "config: lookahead (100) must be below max_frames (32)")
    assert not (tmp_path / "t").exists() and not (tmp_path / "f").exists()


def test_monitor_must_be_a_metric_the_app_reports(tmp_path):
    assert_one_line_error(invoke("train", "digits", "--out", tmp_path / "r", "--set", "monitor=val_acc"),
                          "config monitor: expected one of val_loss, val_accuracy, got 'val_acc'")
    assert not (tmp_path / "r").exists()


def test_predict_reads_stdin_in_chunks_and_traces_once(tiny_run, monkeypatch):
    """Memory stays flat however many lines stdin brings: predict takes PREDICT_CHUNK lines at a time
    and prints them before reading on, and each chunk reuses the run's traced function (charlm's
    predict over 10,000 lines peaked at 2.2 GB on a tiny run when all were read first; 1.0 GB now,
    as for 1,000: docs/reliability.md)."""
    from rnn_apps import cli
    from rnn_apps.run import Run

    run = tiny_run("tagger")
    chunks, predict = [], run.app.predict
    monkeypatch.setattr(type(run.app), "predict",
                        lambda self, r, inputs: chunks.append(len(inputs)) or predict(r, inputs))
    traces = []
    traced = Run.traced
    monkeypatch.setattr(Run, "traced", lambda self, key, make: traced(self, key, lambda: traces.append(key) or make()))
    lines = "".join(f"line {i}\n" for i in range(2 * cli.PREDICT_CHUNK + 3))
    result = invoke("predict", run.dir, input=lines.encode())
    assert result.exit_code == 0, result.output
    assert chunks == [cli.PREDICT_CHUNK, cli.PREDICT_CHUNK, 3] and traces == [("label", True)]
    printed = result.stdout.strip("\n").split("\n")
    assert len(printed) == 2 * cli.PREDICT_CHUNK + 3 and printed[-1].startswith("line/") and " 514/" in printed[-1]


def test_sentiment_says_when_it_read_only_the_first_max_length_tokens(tiny_export, tiny_run):
    """A review longer than max_length tokens is classified on its first max_length (issue 30: say
    so): the SavedModel returns `truncated`, predict adds a note; the short one is not flagged."""
    import tensorflow as tf

    run = tiny_run("sentiment")
    length = run.config["max_length"]
    long, short = " ".join(["good"] * (length + 3)), " ".join(["good"] * length)
    root, _ = tiny_export("sentiment")
    served = tf.saved_model.load(str(root / "sentiment" / "1")).signatures["serving_default"](
        text=tf.constant([long, short, "", "x" * 100_000]))
    assert served["truncated"].numpy().tolist() == [True, False, False, True]
    rows = [json.loads(line) for line in invoke("predict", run.dir, long, short, "--json").stdout.splitlines()]
    assert [r["truncated"] for r in rows] == [True, False]
    said = invoke("predict", run.dir, long, short).stdout.strip("\n").split("\n")
    assert said[0].endswith("[cut: only the first max_length tokens were read]") and "[cut" not in said[1]


def test_demo_writes_the_page_or_says_in_one_line_why_not(tiny_export, tmp_path, monkeypatch):
    from export import demo

    assert_one_line_error(invoke("demo", tmp_path / "nothing", "--out", tmp_path / "page"), "manifest.json is missing")
    frames_root, _ = tiny_export("frames")  # an export the page has no client for
    assert_one_line_error(invoke("demo", frames_root, "--out", tmp_path / "page"), "no export of sentiment")
    root, entry = tiny_export("sentiment")
    result = invoke("demo", frames_root, root, "--out", tmp_path / "page")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "page" / "apps.json").read_text()) == [
        {"app": "sentiment", "version": entry["version"], "folder": "models/sentiment", "file": "sentiment.tflite"}]
    assert sorted(p.name for p in (tmp_path / "page" / "models" / "sentiment").iterdir()) == \
        ["labels.txt", "model_card.json", "sentiment.tflite", "vocab.txt"]
    assert (tmp_path / "page" / "litertjs" / "core" / "wasm").is_dir() and (tmp_path / "page" / "index.html").exists()
    # without the runtime and without npm: a clear line, not a traceback
    monkeypatch.setattr(demo, "RUNTIME", tmp_path / "no_runtime")
    monkeypatch.setattr(demo.shutil, "which", lambda name: None)
    assert_one_line_error(invoke("demo", root, "--out", tmp_path / "page2"), "npm is not installed")
