"""The contract every registered app fulfils: build, forward, one training step, save/load,
export with builtin-only TFLite and Keras = SavedModel = TFLite parity. A new app module gets all
of these without touching this file; so does the app defined in one file under tests/
(tests/app_running_parity.py), which shows that an app needs no other file."""

import json
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnn_apps import registry
from rnn_apps.families.classify import ClassifierApp

ONE_FILE_APP = "tests.app_running_parity"
APPS = registry.names() + [ONE_FILE_APP]
CLASSIFIERS = [name for name in APPS if isinstance(registry.get(name), ClassifierApp)]


def test_registry_finds_the_apps():
    assert {"sentiment", "digits"} <= set(APPS)
    for name in APPS:
        app = registry.get(name)
        assert app.name == name
        assert app.topology and app.task and app.default_data
        assert "tiny" in app.presets
        assert registry.get(name).__class__.__module__ == registry.module_path(name)  # found by module name
        assert registry.describe(name) == {key: getattr(app, key) for key in registry.DESCRIPTION}


def test_list_help_and_argument_errors_answer_without_importing_tensorflow():
    calls = [(["list"], 0), (["--help"], 0), (["export", "--help"], 0), (["report-export", "--help"], 0),
             (["export", "r", "--out", "e", "--quantize", "int4"], 2),
             (["export", "r", "--out", "e", "--member", "x"], 2),
             (["train", "nosuchapp", "--out", "r"], 2)]
    code = ("import sys; from click.testing import CliRunner; from rnn_apps.cli import main;"
            f"outs = [CliRunner().invoke(main, args) for args, _ in {calls!r}];"
            f"assert [o.exit_code for o in outs] == {[code for _, code in calls]!r}, [o.output for o in outs];"
            "print(len(outs[0].output.splitlines()), 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(len(registry.names()) + 1), "False", "False"]


@pytest.mark.parametrize("name", APPS)
def test_forward_and_one_training_step_changes_weights(name, tiny_run):
    run = tiny_run(name)
    app, config = run.app, run.config
    splits = run.load_data()
    model = app.build_model(config, run.preprocessing)
    app.compile(model, config)
    # A batch is (inputs, targets) or, where the loss weighs steps (frames' lookahead), with sample weights.
    inputs, targets, *weights = next(iter(app.dataset(splits.train, run.preprocessing, config, shuffle_seed=0)))
    outputs = keras.ops.convert_to_numpy(model(inputs))
    assert outputs.shape[0] == len(targets) and np.isfinite(outputs).all()
    if isinstance(app, ClassifierApp):
        assert outputs.shape == (len(targets), len(run.label_names))
        np.testing.assert_allclose(outputs.sum(-1), 1.0, rtol=1e-5)
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(inputs, targets, *weights)
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True)]
    assert all(changed), f"weights that did not move: {[i for i, c in enumerate(changed) if not c]}"


@pytest.mark.parametrize("name", APPS)
def test_every_app_trains_with_the_label_smoothing_its_config_names(name, tiny_run):
    """`label_smoothing` is a key of every app's config: the compiled loss must use it (four apps
    once compiled Keras's own loss and ignored it). Same model, same batch, two smoothings."""
    run = tiny_run(name)
    app = run.app
    inputs, targets, *weights = next(iter(app.dataset(run.load_data().train, run.preprocessing, run.config,
                                                      shuffle_seed=0)))
    model = app.build_model(run.config, run.preprocessing)
    model.set_weights(run.model.get_weights())  # trained: peaked outputs, which smoothing costs something
    losses = []
    for smoothing in (0.0, 0.3):
        app.compile(model, {**run.config, "label_smoothing": smoothing})
        losses.append(model.test_on_batch(inputs, targets, *weights, return_dict=True)["loss"])
    # ignored, the two would be equal: the same weights, batch and (test-mode) computation
    assert np.isfinite(losses).all() and abs(losses[1] - losses[0]) > 1e-5, losses


@pytest.mark.parametrize("name", APPS)
def test_best_checkpoint_reproduces_its_recorded_validation_metric(name, tiny_run):
    """best.keras, loaded from disk and evaluated anew, scores what training recorded for its epoch."""
    from rnn_apps.run import load_model

    run = tiny_run(name)
    state = json.loads((run.dir / "state.json").read_text())
    model = load_model(run.checkpoints / "best.keras")
    validation = run.app.dataset(run.load_data().validation, run.preprocessing, run.config)
    scores = model.evaluate(validation, verbose=0, return_dict=True)
    np.testing.assert_allclose(scores[state["monitor"].removeprefix("val_")], state["best"], rtol=1e-4)
    assert (run.checkpoints / "last.keras").exists()
    metrics = json.loads((run.dir / "metrics.json").read_text())
    assert metrics["best_epoch"] >= 1 and len(metrics["history"]) == run.config["epochs"]


@pytest.mark.parametrize("name", APPS)
def test_export_parity_and_builtin_only_tflite(name, tiny_export):
    from export import tflite

    root, entry = tiny_export(name)
    assert entry["parity"]["ok"] and entry["parity"]["cases"]
    assert any("tflite" in case for case in entry["parity"]["cases"])  # the phone's side is checked
    for case in entry["parity"]["cases"]:
        assert case["saved_model"]
        for kind in ("saved_model", "tflite"):
            for key, result in case.get(kind, {}).items():
                # each output compared is measured: floats by their largest difference, the rest by
                # mismatches (a shape mismatch has neither key, and fails here)
                if "max_abs_diff" in result:
                    assert result["max_abs_diff"] <= 1e-4, (case["name"], kind, key, result)
                else:
                    assert result["mismatches"] == 0, (case["name"], kind, key, result)
    saved_model = next(a for a in entry["artefacts"] if a["kind"] == "saved_model")
    assert saved_model["path"] == f"{name}/1"
    assert "serving_default" in saved_model["signatures"]
    for artefact in (a for a in entry["artefacts"] if a["kind"] == "tflite"):
        assert artefact["ops"] and not tflite.forbidden_ops(artefact["ops"])
        # static shapes, batch 1, as the cards say and a GPU delegate needs
        shapes = [spec["shape"] for signature in artefact["signatures"].values()
                  for spec in signature["inputs"].values()]
        assert shapes and all(shape and shape[0] == 1 and -1 not in shape for shape in shapes), shapes
        assert tflite.forbidden_ops(artefact["ops"] + ["FlexStringSplit", "VAR_HANDLE"]) == ["FlexStringSplit",
                                                                                              "VAR_HANDLE"]
        assert (root / artefact["path"]).stat().st_size > 0
        for asset in artefact["assets"]:
            assert (root / artefact["path"]).with_name(asset).exists()
        # TFLite metadata inside the file, read back as a client would: names, the tensors of its first
        # signature by their signature names, and the files beside it packed in
        from export import metadata

        meta, packed = metadata.read(root / artefact["path"])
        assert meta.name.decode() == f"rnn_apps {registry.get(name).name}" and meta.author == b"rnn_apps"
        graph = meta.subgraphMetadata[0]
        first = next(iter(artefact["signatures"].values()))
        assert sorted(t.name.decode() for t in graph.inputTensorMetadata) == sorted(first["inputs"])
        assert sorted(t.name.decode() for t in graph.outputTensorMetadata) == sorted(first["outputs"])
        assert sorted(packed) == sorted(a for a in artefact["assets"] if a != artefact["card"])
        for file, text in packed.items():
            assert text == (root / artefact["path"]).with_name(file).read_text(encoding="utf-8")
        # every model card states the file's specs and its measured quality (the app's own metric)
        card = json.loads((root / artefact["path"]).with_name(artefact["card"]).read_text())
        file = Path(artefact["path"]).name
        assert card["default_file"] == file and card["signature_specs"][file] == artefact["signatures"]
        quality = card["quantization"]
        metric, higher_is_better, _ = registry.get(name).phone_metric
        assert quality["metric"] == metric and quality["higher_is_better"] == higher_is_better
        assert quality["modes"][0]["file"] == file and np.isfinite(quality["modes"][0][metric])
        assert quality["examples_from"] == "the test examples stored with the run" and quality["test_examples"] >= 1
        # the runtime it needs and what keeps a phone's GPU delegate from taking it whole: ops of the file
        runtime = card["runtime"][file]
        assert re.fullmatch(r"\d+\.\d+\.\d+", runtime["min_runtime_version"])
        left = runtime["gpu_delegate"]["ops_left_to_cpu"]
        assert runtime["gpu_delegate"]["whole_file"] == (not left)
        assert {b["op"] for b in left} <= set(artefact["ops"]) and all(b["count"] >= 1 for b in left)
        assert {b["signature"] for b in left} <= set(artefact["signatures"])
        if name in ("caption", "charlm", "translate"):  # a decoder's step: GPU-ready but for LOG_SOFTMAX,
            # which the converter fuses back from any rewrite (the id clamp computes in float32, issue 29)
            assert {b["op"] for b in left if b["signature"] in ("decode_step", "step")} == {"LOG_SOFTMAX"}
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["exports"][-1]["version"] == 1


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_exports_compare_probabilities_and_labels(name, tiny_export):
    _, entry = tiny_export(name)
    for case in entry["parity"]["cases"]:
        assert set(case["saved_model"]) == {"probabilities", "label_id"}
        # a MediaPipe variant's file (digits' image input, sentiment's raw text) outputs the class scores only
        variant = "RGB" in case["name"] or "MediaPipe" in case["name"]
        assert set(case["tflite"]) == ({"probabilities"} if variant else {"probabilities", "label_id"})
    outputs = entry["artefacts"][0]["signatures"]["serving_default"]["outputs"]
    assert {"label", "label_id", "probability", "probabilities"} <= set(outputs)


@pytest.mark.parametrize("name", APPS)
def test_saved_model_loads_without_rnn_apps(name, tiny_export):
    """What TF Serving sees: plain TensorFlow, no project code (nor the C++ op that training steps run:
    rnn_apps/kernels), serving_default with named I/O."""
    root, _ = tiny_export(name)
    code = (
        "import tensorflow as tf, sys; m = tf.saved_model.load(sys.argv[1]);"
        "s = m.signatures['serving_default']; print(sorted(s.structured_outputs))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(root / name / "1")], capture_output=True, text=True,
                          cwd="/", env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    signature = entry_signature(root, name)
    assert done.stdout.strip() == str(sorted(signature["outputs"]))


def test_saved_model_cli_lists_the_string_signature(tiny_export):
    root, _ = tiny_export("sentiment")
    cli = tf.__file__.replace("__init__.py", "python/tools/saved_model_cli.py")
    done = subprocess.run([sys.executable, cli, "show", "--all", "--dir", str(root / "sentiment" / "1")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "signature_def['serving_default']" in done.stdout
    assert "inputs['text'] tensor_info:\n        dtype: DT_STRING" in done.stdout


def entry_signature(root, name, signature="serving_default") -> dict:
    manifest = json.loads((root / "manifest.json").read_text())
    saved_model = next(a for a in manifest["exports"][-1]["artefacts"] if a["kind"] == "saved_model")
    return saved_model["signatures"][signature]


def test_ensembles_of_different_seeds_share_no_member():
    from rnn_apps.config import member_seed

    seeds = [{member_seed({"seed": seed, "members": 5}, i) for i in range(5)} for seed in range(3)]
    assert seeds[0] == {0, 1, 2, 3, 4}  # seed 0's ensemble is the one it always was
    assert seeds[1] == {5, 6, 7, 8, 9} and seeds[2] == {10, 11, 12, 13, 14}


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_ensemble_averages_its_members_and_exports_with_parity(name, tmp_path, tiny_ensemble):
    from export import exporter
    from rnn_apps.run import load_model

    run = tiny_ensemble(name)
    app = run.app
    inputs, _ = next(iter(app.dataset(run.load_data().test, run.preprocessing, run.config)))
    members = [load_model(run.dir / "members" / str(i) / "checkpoints" / "best.keras")(inputs).numpy()
               for i in range(2)]
    assert not np.allclose(members[0], members[1], atol=1e-4)  # seeds seed * 2 and seed * 2 + 1
    np.testing.assert_allclose(run.model(inputs).numpy(), np.mean(members, axis=0), atol=1e-6)
    metrics = run.metrics()
    assert len(metrics["members"]) == 2 and 0 <= metrics["validation"]["accuracy"] <= 1
    assert all(1 <= m["best_epoch"] <= run.config["epochs"] for m in metrics["members"])
    entry = exporter.export_run(run, tmp_path / "export", echo=lambda *_: None)
    assert entry["parity"]["ok"], entry["parity"]


def test_tfidf_baseline_fits_on_training_texts_only():
    from rnn_apps.metrics import tfidf_baseline

    train = ["a great film", "great acting", "a dull film", "dull plot"]
    found = tfidf_baseline(train, [1, 1, 0, 0], ["great plot", "dull acting", "great"], [1, 0, 0])
    assert found["correct"] == [1, 1, 0] and found["accuracy"] == pytest.approx(2 / 3)


def test_sentiment_evaluate_scores_the_tfidf_baseline_on_the_same_texts(tiny_run):
    from rnn_apps.metrics import tfidf_baseline

    run = tiny_run("sentiment")
    metrics = run.evaluate("validation")
    splits = run.load_data()
    expected = tfidf_baseline(splits.train["text"], splits.train["label"], splits.validation["text"],
                              splits.validation["label"])
    assert metrics["tfidf_baseline"] == {"accuracy": expected["accuracy"]}
    parts = run.per_example("validation")["metrics"]["tfidf_baseline.accuracy"]
    assert parts["correct"] == expected["correct"] and len(parts["count"]) == len(splits.validation["label"])
