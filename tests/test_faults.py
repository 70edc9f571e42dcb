"""Fault injection: what hostile but realistic use did to the foundation, kept fixed.

Each test names the item of the reliability issue it guards. They kill processes, damage run and
export folders, race two exports, and send input a careless client would send.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.test_cli import assert_one_line_error, invoke

RNN_APPS = [sys.executable, "-m", "rnn_apps.cli"]


def run_cli(*args, timeout=300):
    """`rnn-apps ARGS` in its own process: what a user's shell sees (stdout, stderr, exit code)."""
    return subprocess.run([*RNN_APPS, *map(os.fsencode, args)], capture_output=True, timeout=timeout)


def copy_run(run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run.dir, copy)
    return copy


# 1. Memory of a SavedModel request is bounded whatever the batch --------------------------------

MEASURE_PEAK = """
import sys
import tensorflow as tf
classify = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
def status(key):  # kB
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))
classify(text=tf.constant(["warm up , a fine film ."] * 300))
texts = tf.constant([f"a fine film number {i} , with words that go on ." for i in range(int(sys.argv[2]))])
open("/proc/self/clear_refs", "w").write("5")  # resets the peak (VmHWM) to the current RSS
before = status("VmRSS")
out = classify(text=texts)
print(out["label"].shape[0], (status("VmHWM") - before) // 1024)
"""


def test_saved_model_peak_memory_does_not_grow_with_the_batch(tiny_export):
    root, _ = tiny_export("sentiment")
    done = subprocess.run([sys.executable, "-c", MEASURE_PEAK, str(root / "sentiment" / "1"), "100000"],
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    rows, growth_mb = map(int, done.stdout.split())
    # Unchunked, this tiny model's graph took 448 MB more for 100,000 strings; in chunks, ~16 MB.
    assert rows == 100_000 and growth_mb < 100


@pytest.mark.parametrize("name", ["sentiment", "digits"])
def test_chunked_signatures_equal_row_by_row_results(name, tiny_export):
    import tensorflow as tf

    from export.exporter import SERVING_CHUNK

    root, _ = tiny_export(name)
    signature = tf.saved_model.load(str(root / name / "1")).signatures["serving_default"]
    n = 2 * SERVING_CHUNK + 3
    if name == "sentiment":
        words = ["good", "bad", "film", "dull", "fine", "."]
        inputs = {"text": tf.constant([" ".join(words[(i + j) % 6] for j in range(i % 7)) for i in range(n)])}
    else:
        inputs = {"pixels": tf.constant(np.random.default_rng(0).uniform(0, 16, (n, 64)), tf.float32)}
    whole = signature(**inputs)["probabilities"].numpy()
    assert whole.shape[0] == n
    for i in (0, SERVING_CHUNK - 1, SERVING_CHUNK, n - 1):
        one = signature(**{k: v[i: i + 1] for k, v in inputs.items()})["probabilities"].numpy()
        np.testing.assert_allclose(whole[i], one[0], atol=1e-6)


def test_chunks_of_different_widths_are_padded_before_they_are_joined():
    """A decoder's ids are as wide as each chunk's longest output; chunks must still join."""
    import tensorflow as tf

    from export.savedmodel import in_chunks

    def decode(widths):
        ids = tf.sequence_mask(widths, tf.reduce_max(widths), dtype=tf.int32) * 7
        return {"ids": ids, "text": tf.strings.as_string(ids), "lengths": widths}

    chunked = tf.function(in_chunks(decode, [tf.TensorSpec([None], tf.int32)], chunk=2))
    out = chunked(tf.constant([1, 3, 2, 5, 1]))  # chunk widths 3, 5, 1
    assert out["ids"].numpy().tolist() == [[7, 0, 0, 0, 0], [7, 7, 7, 0, 0], [7, 7, 0, 0, 0], [7, 7, 7, 7, 7],
                                           [7, 0, 0, 0, 0]]
    assert out["text"].numpy()[4].tolist() == [b"7", b"", b"", b"", b""]
    assert chunked(tf.constant([], tf.int32))["ids"].shape == (0, 0)


def test_translate_answers_a_request_of_more_than_one_chunk(tiny_export):
    import tensorflow as tf

    from export.exporter import SERVING_CHUNK

    root, _ = tiny_export("translate")
    translate = tf.saved_model.load(str(root / "translate" / "1")).signatures["serving_default"]
    texts = [("hola " * (i % 9)).strip() for i in range(SERVING_CHUNK + 40)]
    whole = translate(text=tf.constant(texts))
    assert whole["translation"].shape == (len(texts),)
    last = translate(text=tf.constant(texts[-1:]))
    assert whole["translation"].numpy()[-1] == last["translation"].numpy()[0]


# 2. Config values out of range fail before anything is built ------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--set", "embedding_dim=0"], "config embedding_dim: expected an integer >= 1, got 0"),
    (["--units", "0"], "config units: expected an integer >= 1, got 0"),
    (["--set", "units=1.5"], "config units: expected int, got 1.5"),
    (["--set", "pooling=bogus"], "config pooling: expected one of max, mean, max_mean, last, got 'bogus'"),
    (["--set", "max_length=0"], "config max_length: expected an integer >= 1"),
    (["--batch-size", "0"], "config batch_size: expected an integer >= 1"),
    (["--dropout", "1.5"], "config dropout: expected a number >= 0 and < 1, got 1.5"),
    (["--set", "depth=0"], "config depth: expected an integer >= 1"),
    (["--learning-rate", "nan"], "config learning_rate: expected a finite number > 0, got nan"),
    (["--max-examples", "-5"], "config max_examples: expected an integer >= 0, got -5"),
    (["--set", "patience=-1"], "config patience: expected an integer >= 0"),
    (["--epochs", "0"], "config epochs: expected an integer >= 1"),
    (["--set", "word_dropout=1"], "config word_dropout: expected a number >= 0 and < 1"),
])
def test_config_values_out_of_range_are_one_line_errors(tmp_path, args, message):
    out = tmp_path / "run"
    assert_one_line_error(invoke("train", "sentiment", "--out", out, "--preset", "tiny", *args), message)
    assert not out.exists()


@pytest.mark.parametrize("name", ["translate", "caption", "charlm"])
def test_every_generating_app_refuses_an_ensemble_and_a_clipnorm_of_zero(tmp_path, name):
    # the generating family's own checks (one model writes; gradients are clipped), not each app's
    for setting, message in (("members=2", "config members: expected one of 1, got 2"),
                             ("clipnorm=0", "config clipnorm: expected a finite number > 0, got 0.0")):
        out = tmp_path / setting
        assert_one_line_error(invoke("train", name, "--out", out, "--preset", "tiny", "--set", setting), message)
        assert not out.exists()


# 3. A run folder never gets stuck -----------------------------------------------------------------

KILLED_AT_FIRST_EPOCH = """
import os, signal, sys
import keras
from rnn_apps.cli import main
keras.Model.fit = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # dies as training starts
main(sys.argv[1:])
"""


def test_a_run_killed_before_its_first_epoch_resumes(tmp_path, data_root):
    out = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", KILLED_AT_FIRST_EPOCH, "train", "sentiment", "--preset", "tiny",
                             "--data", "sst2", "--data-root", str(data_root), "--out", str(out)],
                            capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (out / "run.json").exists() and not (out / "state.json").exists()
    assert_one_line_error(invoke("train", "sentiment", "--out", out), "already holds a run", "--resume",
                          "killed before its first epoch")
    resumed = invoke("train", "sentiment", "--out", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "no finished epoch yet: starting its training from the stored config" in resumed.output
    assert json.loads((out / "state.json").read_text())["epochs_done"] == 1
    assert (out / "checkpoints" / "best.keras").exists()


@pytest.mark.parametrize("out_exists", [False, True])
def test_a_failure_before_training_leaves_no_half_run(tmp_path, data_root, monkeypatch, out_exists):
    from rnn_apps.apps import sentiment

    out = tmp_path / "run"
    if out_exists:
        out.mkdir()
        (out / "notes.txt").write_text("mine")

    def broken_build(*args, **kwargs):
        raise RuntimeError("model construction failed")

    monkeypatch.setattr(sentiment.APP, "build_model", broken_build)
    result = invoke("train", "sentiment", "--preset", "tiny", "--data", "sst2", "--data-root", data_root, "--out", out)
    assert isinstance(result.exception, RuntimeError)
    if out_exists:
        assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # what was there before stays
    else:
        assert not out.exists()
    monkeypatch.undo()
    retry = invoke("train", "sentiment", "--preset", "tiny", "--data", "sst2", "--data-root", data_root, "--out", out)
    assert retry.exit_code == 0, retry.output


# 4. and 5. Export: a damaged manifest stops it before publishing; races; killed exports -----------

@pytest.mark.parametrize("content", ["{}", '{"exports": [{"model_name": "x"', "[]", '{"exports": [3]}'])
def test_export_with_a_damaged_manifest_publishes_nothing(tiny_run, tmp_path, content):
    root = tmp_path / "exports"
    root.mkdir()
    (root / "manifest.json").write_text(content)
    result = invoke("export", tiny_run("digits").dir, "--out", root)
    assert_one_line_error(result, "manifest.json", f"export root {root}")
    assert sorted(p.name for p in root.iterdir()) == [".lock", "manifest.json"]  # no version, no staging
    assert (root / "manifest.json").read_text() == content
    assert_one_line_error(invoke("query", root, "--name", "digits", "x.csv"), "manifest.json is damaged")


def test_two_exports_at_once_get_distinct_versions(tiny_run, tmp_path):
    run_dir, root = tiny_run("digits").dir, tmp_path / "exports"
    exports = [subprocess.Popen([*RNN_APPS, "export", str(run_dir), "--out", str(root)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in exports]
    assert [r[0] for r in results] == [0, 0], [r[2][-2000:] for r in results]
    assert sorted(p.name for p in (root / "digits").iterdir()) == ["1", "2"]
    assert sorted(p.name for p in (root / "tflite" / "digits").iterdir()) == ["1", "2"]
    manifest = json.loads((root / "manifest.json").read_text())
    assert sorted(e["version"] for e in manifest["exports"]) == [1, 2]
    assert not list(root.glob(".staging*"))


def test_a_killed_export_leaves_nothing_a_later_export_keeps(tiny_run, tmp_path):
    from export import exporter

    run, root = tiny_run("digits"), tmp_path / "exports"
    export = subprocess.Popen([*RNN_APPS, "export", str(run.dir), "--out", str(root)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list(root.glob(".staging-*/saved_model")) and time.time() < deadline:
        time.sleep(0.05)
    export.send_signal(signal.SIGKILL)
    export.wait()
    assert list(root.glob(".staging-*")), "the export was not caught mid-way"
    assert not (root / "digits").exists() and not (root / "manifest.json").exists()
    entry = exporter.export_run(run, root, echo=lambda *_: None)
    assert entry["version"] == 1
    assert not list(root.glob(".staging-*"))


KILL_AT_RENAME = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* SIGKILL this process at its Nth rename into $KILL_RENAME_UNDER (staging folders not counted),
   before that rename happens: a crash at each step of publishing, from outside the process. */
int rename(const char *from, const char *to) {
    static int (*real)(const char *, const char *);
    static int count;
    const char *under = getenv("KILL_RENAME_UNDER"), *at = getenv("KILL_AT_RENAME");
    if (!real) real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    if (under && at && strstr(to, under) && !strstr(to, ".staging-") && ++count == atoi(at))
        kill(getpid(), SIGKILL);
    return real(from, to);
}
"""


# Killed before the first rename (the pending manifest) is the killed export above; no kill, every
# other export test. These are the four renames of publishing itself.
@pytest.mark.parametrize("kill_at, outcome", [(2, "removed"), (3, "removed"), (4, "finished"), (5, "listed")])
def test_an_export_killed_at_each_publishing_rename_leaves_no_orphan(tiny_run, tmp_path, kill_at, outcome):
    """Publishing renames, in order: the manifest with the version pending, the TFLite folder, the
    SavedModel folder, the manifest without `pending`, models.config. Killed before each one, no
    version folder is on disk that the manifest does not list; `rnn-apps repair` (or the next export)
    finishes a version whose folders are both in place and removes one that is not."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the rename hook")
    (tmp_path / "hook.c").write_text(KILL_AT_RENAME)
    subprocess.run([compiler, "-shared", "-fPIC", "-o", tmp_path / "hook.so", tmp_path / "hook.c", "-ldl"], check=True)
    root = tmp_path / "exports"
    env = {**os.environ, "LD_PRELOAD": str(tmp_path / "hook.so"), "KILL_RENAME_UNDER": str(root),
           "KILL_AT_RENAME": str(kill_at)}
    done = subprocess.run([*RNN_APPS, "export", str(tiny_run("digits").dir), "--out", str(root)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    entries = json.loads((root / "manifest.json").read_text())["exports"]
    assert [e.get("pending", False) for e in entries] == [outcome in ("removed", "finished")]
    served = {int(p.name) for p in (root / "digits").iterdir()} if (root / "digits").exists() else set()
    assert served <= {e["version"] for e in entries}  # what TF Serving could load is always listed
    repaired = invoke("repair", root)
    assert repaired.exit_code == 0, repaired.output
    said = {"removed": "removed digits version 1", "finished": "finished digits version 1"}.get(outcome,
                                                                                             "nothing to repair")
    assert said in repaired.output, repaired.output
    entries = json.loads((root / "manifest.json").read_text())["exports"]
    kept = outcome != "removed"
    assert [(e["version"], e.get("pending", False)) for e in entries] == ([(1, False)] if kept else [])
    assert [(root / "digits" / "1").is_dir(), (root / "tflite" / "digits" / "1").is_dir()] == [kept, kept]
    assert (root / "models.config").exists()


def test_temporary_files_of_an_export_stay_in_its_staging_folder(tiny_run, tmp_path, monkeypatch):
    """The converter's and parity's scratch files go under the export's staging folder (removed by
    the next export if this one is killed), not into /tmp, where nothing would remove them."""
    import tempfile

    from export import exporter, tflite

    system_tmp, root = tmp_path / "system_tmp", tmp_path / "exports"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    seen, convert = [], tflite.convert
    monkeypatch.setattr(tflite, "convert", lambda *a, **k: seen.append(tempfile.gettempdir()) or convert(*a, **k))
    exporter.export_run(tiny_run("digits"), root, echo=lambda *_: None)
    assert seen and all(Path(d).parent.parent == root and Path(d).parent.name.startswith(".staging-") for d in seen)
    assert list(system_tmp.iterdir()) == [] and tempfile.gettempdir() == str(system_tmp)


def test_repair_moves_a_version_the_manifest_does_not_list_out_of_sight(tiny_export, tmp_path):
    root = tmp_path / "exports"
    shutil.copytree(tiny_export("digits")[0], root)
    (root / "digits" / "7").mkdir()  # an orphan, as exports before the pending protocol could leave
    result = invoke("repair", root)
    assert result.exit_code == 0, result.output
    assert "moved digits/7, which the manifest does not list, to .orphans/digits/7" in result.output
    assert sorted(p.name for p in (root / "digits").iterdir()) == ["1"]
    assert (root / ".orphans" / "digits" / "7").is_dir()
    assert "nothing to repair" in invoke("repair", root).output
    assert_one_line_error(invoke("repair", tmp_path / "nowhere"), "manifest.json is missing")


# 6. and 9. Images: every pixel format reads the same; the size limit holds --------------------------

def test_a_digit_reads_the_same_in_8_bit_16_bit_rgba_and_palette_form(tiny_run, tmp_path):
    from PIL import Image

    from pipelines import images

    seven = np.full((40, 40), 255, np.uint8)
    seven[7:11, 8:32] = 0  # strokes 4 pixels wide, as a pen on a 40x40 scan
    for y in range(8, 36):
        seven[y, 29 - y // 2: 33 - y // 2] = 0
    files = {"8-bit": tmp_path / "gray8.png", "16-bit": tmp_path / "gray16.png", "rgba": tmp_path / "rgba.png",
             "palette": tmp_path / "palette.png"}
    Image.fromarray(seven).save(files["8-bit"])
    Image.fromarray(seven.astype(np.uint16) * 257).save(files["16-bit"])
    Image.fromarray(seven).convert("RGBA").save(files["rgba"])
    Image.fromarray(seven).convert("P").save(files["palette"])
    assert Image.open(files["16-bit"]).mode.startswith("I")
    expected = images.read_image_file(files["8-bit"])
    assert expected.max() > 8  # the stroke is there, ink high
    for name, path in files.items():
        np.testing.assert_allclose(images.read_image_file(path), expected, atol=1e-4, err_msg=name)
    result = invoke("predict", tiny_run("digits").dir, *files.values(), "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len({(r["label"], round(r["probability"], 5)) for r in rows}) == 1


def test_an_image_above_the_pixel_limit_is_refused_below_pils_own_limit(tiny_run, tmp_path, monkeypatch):
    from PIL import Image

    from pipelines import images

    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 10_000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    large = tmp_path / "large.png"
    Image.new("L", (110, 110), 255).save(large)  # 12,100 pixels: PIL alone only warns below 20,000
    assert_one_line_error(invoke("predict", tiny_run("digits").dir, large), "larger than 10,000 pixels")


# 7. and 8. Token ids outside the vocabulary; a vocabulary that does not fit -----------------------

def test_ids_outside_the_vocabulary_read_as_unknown_in_tflite_and_keras(tiny_export, tiny_run):
    from export import tflite

    root, entry = tiny_export("sentiment")
    artefact = next(a for a in entry["artefacts"] if a["kind"] == "tflite")
    card = json.loads((root / artefact["path"]).with_name("model_card.json").read_text())
    length = card["input"]["shape"][1]
    vocabulary = len((root / artefact["path"]).with_name("vocab.txt").read_text(encoding="utf-8").split("\n")) - 1
    assert f">= {vocabulary}" in card["input"]["id_range"]
    runner = tflite.interpreter(root / artefact["path"]).get_signature_runner("serving_default")
    model = tiny_run("sentiment").model

    def with_first_id(first):
        ids = np.array([[first, 5, 6] + [0] * (length - 3)], np.int32)
        return runner(token_ids=ids)["probabilities"], model(ids).numpy()

    unknown_tflite, unknown_keras = with_first_id(1)
    for odd in (-1, -5000, vocabulary, vocabulary + 7, 2**31 - 1):
        got_tflite, got_keras = with_first_id(odd)
        np.testing.assert_allclose(got_tflite, unknown_tflite, atol=1e-6, err_msg=str(odd))
        np.testing.assert_allclose(got_keras, unknown_keras, atol=1e-6, err_msg=str(odd))
    assert not np.allclose(with_first_id(2)[0], unknown_tflite, atol=1e-7)  # a real word still counts


def test_a_vocabulary_that_does_not_fit_the_model_is_refused(tiny_run, tmp_path):
    copy = copy_run(tiny_run("sentiment"), tmp_path)
    with open(copy / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("extra\nwords\n")
    for args in (["predict", copy, "fine"], ["evaluate", copy], ["export", copy, "--out", tmp_path / "e"]):
        assert_one_line_error(invoke(*args), "vocab.txt holds", "does not belong to this model")
    assert not (tmp_path / "e" / "sentiment").exists()


# 10. and 11. Command-line input: invalid UTF-8, folders where files are expected ------------------

def test_invalid_utf8_arguments_read_as_replacement_characters(tiny_run, tiny_export):
    result = invoke("predict", tiny_run("sentiment").dir, "bad \udcff arg", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["input"] == "bad \ufffd arg"
    root, _ = tiny_export("sentiment")
    result = invoke("query", root, "--name", "sentiment", "bad \udcff arg", "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["input"] == "bad \ufffd arg" and row["saved_model"]["label"] == row["tflite"]["label"]


def test_folders_given_as_files_are_one_line_errors(tiny_run, tmp_path):
    run = tiny_run("digits")
    for name in ("x.csv", "adir", "y.png"):
        (tmp_path / name).mkdir()
        assert_one_line_error(invoke("predict", run.dir, tmp_path / name), f"{name}: a folder, not a file")


# 12. and 13. Run files of the wrong shape; a garbage metrics.json ----------------------------------

@pytest.mark.parametrize("file, content, message", [
    ("config.json", "[]", "holds list, not a config object"),
    ("config.json", None, "missing keys max_length"),
    ("config.json", '{"units": "many"}', "missing keys"),
    ("run.json", "{}", "'app' (the app's name) is missing"),
    ("run.json", '{"app": "sentiment", "data": "sst2", "options": {}}', "'label_names'"),
    ("run.json", '"sentiment"', "holds str, not a run object"),
])
def test_run_files_of_the_wrong_shape_are_one_line_errors(tiny_run, tmp_path, file, content, message):
    copy = copy_run(tiny_run("sentiment"), tmp_path)
    if content is None:  # the real config without one key
        config = json.loads((copy / file).read_text())
        del config["max_length"]
        content = json.dumps(config)
    (copy / file).write_text(content)
    for command in (["predict", copy, "fine"], ["evaluate", copy]):
        assert_one_line_error(invoke(*command), file, message)


def test_a_preprocessing_file_missing_a_key_is_a_one_line_error(tiny_run, tmp_path):
    copy = copy_run(tiny_run("digits"), tmp_path)
    stats = json.loads((copy / "pixel_stats.json").read_text())
    assert len(stats["mean"]) == len(stats["variance"]) == 64
    del stats["variance"]
    (copy / "pixel_stats.json").write_text(json.dumps(stats))
    assert_one_line_error(invoke("evaluate", copy), "pixel_stats.json does not hold label_names, mean and variance")


def test_a_stored_config_value_out_of_range_is_refused(tiny_run, tmp_path):
    copy = copy_run(tiny_run("sentiment"), tmp_path)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "units": 0}))
    assert_one_line_error(invoke("predict", copy, "fine"), "config.json: config units: expected an integer >= 1")


def test_a_run_written_before_a_key_was_added_loads_with_the_old_behaviour(tiny_run, tmp_path):
    from rnn_apps import config as config_lib
    from rnn_apps import registry

    copy = copy_run(tiny_run("sentiment"), tmp_path)
    config = json.loads((copy / "config.json").read_text())
    del config["lr_half_life_steps"]  # written before the learning-rate schedule existed
    (copy / "config.json").write_text(json.dumps(config))
    assert invoke("predict", copy, "fine").exit_code == 0
    stored = config_lib.check_stored(config, registry.get("sentiment").config, registry.get("sentiment").checks(),
                                     copy / "config.json")
    assert stored["lr_half_life_steps"] == 0 and config_lib.learning_rate(stored) == stored["learning_rate"]
    schedule = config_lib.learning_rate({**stored, "lr_half_life_steps": 100})
    assert float(schedule(200)) == pytest.approx(stored["learning_rate"] / 4)


def test_evaluate_prints_and_rewrites_a_garbage_metrics_file(tiny_run, tmp_path):
    copy = copy_run(tiny_run("sentiment"), tmp_path)
    for garbage in ("garbage{", "[1, 2]"):
        (copy / "metrics.json").write_text(garbage)
        result = invoke("evaluate", copy, "--json")
        assert result.exit_code == 0, result.output
        printed = json.loads(result.stdout.strip().splitlines()[-1])
        assert printed["examples"] == 96
        assert json.loads((copy / "metrics.json").read_text())["test"] == printed


# 14. A one-line error is one line in a real process; --verbose shows the native logs ---------------

def test_a_real_process_prints_one_line_errors_and_no_native_logs(tiny_run, tmp_path):
    copy = copy_run(tiny_run("sentiment"), tmp_path)
    with open(copy / "vocab.txt", "a", encoding="utf-8") as f:
        f.write("extra\n")
    quiet = run_cli("predict", str(copy), "fine")  # fails after TensorFlow has loaded and logged
    assert quiet.returncode == 2
    lines = quiet.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "does not belong" in lines[0], lines
    verbose = run_cli("--verbose", "predict", str(copy), "fine")
    assert verbose.returncode == 2
    assert verbose.stderr.decode().strip().splitlines()[-1] == lines[0]
    good = run_cli("predict", str(tiny_run("sentiment").dir), b"bad \xff arg", "--json")
    assert good.returncode == 0 and good.stderr == b"", good.stderr[-2000:]
    assert json.loads(good.stdout)["input"] == "bad \ufffd arg"


# Issue 7's review: a failing conversion or parity check is not "bad input" -----------------------

def test_an_export_that_fails_inside_says_why_and_exits_1(tiny_run, tmp_path, monkeypatch):
    from export import parity

    def broken_check(cases, saved_model_dir, tflite_dir, warmup=False):
        return {"ok": False, "tolerance": parity.TOLERANCE, "cases": [{"name": "test pixels", "why": "injected"}]}, []

    monkeypatch.setattr(parity, "check", broken_check)
    result = invoke("export", tiny_run("digits").dir, "--out", tmp_path / "exports")
    assert result.exit_code == 1, result.output
    assert "parity check failed, nothing published" in result.stderr and "injected" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "exports" / "digits").exists()


def test_a_full_disk_is_one_line_and_leaves_no_half_checkpoint(tmp_path, data_root, monkeypatch, tiny_run):
    """ENOSPC while training writes a checkpoint, or while exporting: exit 2 with one line, and no
    tmp- checkpoint or staging folder left (a 3 MB tmpfs gave tracebacks and kept tmp-best.keras)."""
    import errno

    import keras

    from export import exporter

    trained = tiny_run("digits")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "checkpoints" / "tmp-x"))

    def half_written(model, path, *args, **kwargs):
        Path(path).write_bytes(b"the first blocks")  # what a full disk leaves of a checkpoint
        full()

    monkeypatch.setattr(keras.Model, "save", half_written)
    result = invoke("train", "digits", "--preset", "tiny", "--data-root", data_root, "--out", tmp_path / "run")
    assert_one_line_error(result, "no space left on the device", "free some space")
    assert not list(tmp_path.rglob("tmp-*"))
    # a resumed run keeps its folder: the checkpoint writer itself removes what it half wrote
    from rnn_apps.train import save_model

    with pytest.raises(OSError):
        save_model(trained.model, tmp_path / "kept" / "best.keras")
    assert list((tmp_path / "kept").iterdir()) == []
    monkeypatch.setattr(exporter, "export_run", lambda *a, **k: full())
    assert_one_line_error(invoke("export", trained.dir, "--out", tmp_path / "exports"), "no space left")
