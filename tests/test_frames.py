"""frames: UR Fall sequences split by recording, TFDS ucf101 video through the same path under
mock_data, the masked per-frame loss, event-level figures, the causal step on TFLite against
Keras, the bidirectional variant's export, and odd input through the CLI and the SavedModel."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from export import step_loop, tflite
from foundation.errors import UserError
from pipelines import frames as frame_data
from rnn_apps import metrics, registry
from rnn_apps.apps import frames
from rnn_apps.families import label_frames
from rnn_apps.train import train
from tests.test_cli import assert_one_line_error, invoke
from tests.test_faults import copy_run


def test_ur_fall_splits_by_recording_stratified_and_seeded(data_root):
    splits = frame_data.load("ur_fall_features", data_root, 0, 16, 32)
    names = {s: set(splits[s]["sequence"]) for s in ("train", "validation", "test")}
    assert sum(len(n) for n in names.values()) == 70
    assert not (names["train"] & names["test"]) and not (names["validation"] & names["test"])
    assert not (names["train"] & names["validation"])
    assert splits.test["is_fall"].sum() == 6 and len(names["test"]) == 14  # 30 of 70 are falls: 20%, stratified
    lengths = {s: n for split in ("train", "validation", "test") for s, n in zip(splits[split]["sequence"],
                                                                              splits[split]["length"], strict=True)}
    assert lengths["fall-01"] == 160 and lengths["adl-30"] == 369  # SOURCE.md's counts
    assert sum(lengths.values()) == 11_544
    assert splits.train["frames"].shape[2:] == (8,) and splits.label_names == ["not_lying", "falling", "lying"]
    i = list(splits.train["sequence"]).index("fall-01") if "fall-01" in names["train"] else None
    if i is not None:  # fall-01 runs -1 -> 0 -> 1: class ids 0 -> 1 -> 2, zero-padded past its length
        labels = splits.train["labels"][i]
        assert labels[0] == 0 and labels[159] == 2 and (np.diff(labels[:160]) >= 0).all() and not labels[160:].any()
    other = frame_data.load("ur_fall_features", data_root, 1, 16, 32)
    assert set(other.test["sequence"]) != names["test"]


def test_ur_fall_style_csv_errors_name_the_line(tmp_path):
    (tmp_path / "a.csv").write_text("s1,1,-1,1.0,2.0\ns1,2,7,1.0,2.0\n")
    with pytest.raises(UserError, match=r"a.csv line 2: expected 'sequence, frame, label"):
        frame_data.load(str(tmp_path), None, 0, 16, 32)
    with pytest.raises(UserError, match="no frame dataset 'nowhere'"):
        frame_data.load("nowhere", tmp_path, 0, 16, 32)


def mock_ucf101(monkeypatch):
    from pipelines import tfds_source

    monkeypatch.setattr(tfds_source, "_reachable", lambda url: True)  # mock_data stands in for the download
    return tfds.testing.mock_data(num_examples=4)


def test_tfds_ucf101_clips_become_labelled_frame_sequences(monkeypatch):
    with mock_ucf101(monkeypatch):
        splits = frame_data.load("ucf101", None, 0, 5, 8)
    assert len(splits.label_names) == 101 and splits.origin["test"].startswith("tfds ucf101 'test'")
    frames_, labels, length = splits.test["frames"], splits.test["labels"], splits.test["length"]
    assert frames_.dtype == np.uint8 and frames_.shape[1:] == (5, 8, 8, 3) and (length == 5).all()
    assert (labels == labels[:, :1]).all()  # the clip's label at every frame
    assert frame_data.clip_to_frames(np.zeros((0, 16, 16, 3), np.uint8), 5, 8).shape == (0, 8, 8, 3)
    picked = frame_data.clip_to_frames(np.arange(9)[:, None, None, None] * np.ones((1, 4, 4, 3)), 3, 2)
    assert picked[:, 0, 0, 0].tolist() == [0, 4, 8]  # first, middle and last frame


@pytest.mark.slow
def test_video_frames_train_export_and_stream_on_tflite(monkeypatch, tmp_path):
    """A per-frame CNN over real-typed video (uint8 RGB clips), through training, export and parity."""
    from export import exporter

    app = registry.get("frames")
    with mock_ucf101(monkeypatch):
        run = train(app, app.resolve_config("tiny", {"epochs": 1}), "ucf101", None, tmp_path / "run", {},
                    echo=lambda *_: None)
    assert run.preprocessing.kind == "video" and tuple(run.preprocessing.frame_shape) == (8, 8, 3)
    entry = exporter.export_run(run, tmp_path / "export", echo=lambda *_: None)
    assert entry["parity"]["ok"], entry["parity"]
    specs = next(a for a in entry["artefacts"] if a["kind"] == "tflite")["signatures"]
    assert specs["step"]["inputs"]["frame"]["shape"] == [1, 8, 8, 3]  # batch 1, static: as the card says
    served = next(a for a in entry["artefacts"] if a["kind"] == "saved_model")["signatures"]["serving_default"]
    assert served["inputs"]["frames"]["dtype"] == "uint8"


def test_the_training_loss_counts_real_frames_only(tiny_run):
    run = tiny_run("frames")
    config = {**run.config, "lookahead": 0}  # the mask alone, no shifted targets and weights
    inputs, targets = next(iter(run.app.dataset(run.load_data().validation, run.preprocessing, config)))
    mask = inputs["mask"].numpy()
    assert not mask.all() and mask[:, -1].any()  # padded, and cut to the batch's longest sequence
    probabilities = run.model(inputs).numpy()
    picked = np.take_along_axis(probabilities, targets.numpy()[..., None], -1)[..., 0]
    keras_loss = run.model.test_on_batch(inputs, targets, return_dict=True)["loss"]
    np.testing.assert_allclose(keras_loss, -np.log(picked)[mask].mean(), rtol=1e-4)
    assert abs(keras_loss - (-np.log(picked).mean())) > 1e-4


def test_training_windows_are_random_crops_of_whole_sequences(tiny_run):
    run = tiny_run("frames")
    config = {**run.config, "window": 20, "windows_per_sequence": 3, "batch_size": 100, "lookahead": 0}
    train_split = run.load_data().train
    inputs, targets = next(iter(run.app.dataset(train_split, run.preprocessing, config, shuffle_seed=0)))
    assert inputs["frames"].shape[:2] == (3 * len(train_split["length"]), 20)
    assert inputs["mask"].numpy().all()  # every UR Fall recording is longer than 20 frames
    window = inputs["frames"].numpy()[0]
    found = [(i, s) for i, f in enumerate(train_split["frames"]) for s in range(len(f) - 19)
             if np.array_equal(f[s: s + 20], window)]
    sequence, start = found[0]
    assert np.array_equal(targets.numpy()[0], train_split["labels"][sequence][start: start + 20])


def test_fall_events_detection_delay_and_false_alarms():
    falling = 1
    truth = [np.array([0] * 30 + [1] * 10 + [2] * 20), np.array([0] * 40), np.array([0] * 20 + [1] * 5 + [2] * 5)]
    predicted = [np.array([0] * 33 + [1] * 10 + [2] * 17), np.array([0] * 10 + [1] * 2 + [0] * 28),
                 np.array([0] * 30)]
    events = metrics.fall_events(truth, predicted, falling, ["fall-01", "adl-01", "fall-02"], [True, False, True],
                                  frames.EVENT_TOLERANCE)
    falls = events["falls"]
    assert falls["events"] == 2 and falls["detected"] == 1 and falls["recall"] == 0.5
    assert falls["each"][0] == {"sequence": "fall-01", "first_frame": 30, "frames": 10, "detected": True,
                                "delay_frames": 3}
    assert falls["each"][1]["detected"] is False and falls["each"][1]["delay_frames"] is None
    assert events["false_alarms"] == {"fall_recordings": 0, "activity_recordings": 1}
    assert events["activity_transitions"]["events"] == 0
    # fall-01's 10 falling frames, 2 a fifth, labelled falling from its 4th on; fall-02's 5, none.
    assert events["falling_recall_by_fifth_of_event"] == [0.0, 0.3333, 0.6667, 0.6667, 0.6667]
    assert metrics.runs(["a", "a", "b", "a"]) == [("a", 0, 1), ("b", 2, 2), ("a", 3, 3)]


def test_evaluate_reports_frames_classes_and_falls(tiny_run):
    run = tiny_run("frames")
    result = invoke("evaluate", run.dir, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    test = run.load_data().test
    assert metrics["sequences"] == len(test["length"]) and metrics["frames"] == int(test["length"].sum())
    assert sum(c["frames"] for c in metrics["per_class"].values()) == metrics["frames"]
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["frames"]
    falls = metrics["events"]["falls"]
    assert falls["events"] == len(falls["each"]) == sum(test["is_fall"])  # one fall per fall recording
    assert metrics["bidirectional"] is False
    # per recording, what bench's bootstrap draws: the same totals as the printed ratios
    counted = run.per_example("test")["metrics"]
    assert "per_example" not in metrics and sum(counted["accuracy"]["count"]) == metrics["frames"]
    assert sum(counted["accuracy"]["correct"]) / metrics["frames"] == pytest.approx(metrics["accuracy"])
    for name, scores in metrics["per_class"].items():
        parts = counted[f"per_class.{name}.recall"]
        assert sum(parts["count"]) == scores["frames"]
        if scores["recall"] is not None:
            assert sum(parts["correct"]) / sum(parts["count"]) == pytest.approx(scores["recall"], abs=1e-4)
    # the per-frame baseline (each frame alone, fit on the training frames), on the same frames
    from rnn_apps.metrics import per_frame_baseline

    train = run.load_data().train
    unpadded = frame_data.unpadded
    guessed = per_frame_baseline(unpadded(train, "frames"), unpadded(train, "labels"), unpadded(test, "frames"))
    right = int((guessed == unpadded(test, "labels")).sum())
    assert metrics["per_frame_baseline"]["accuracy"] == pytest.approx(right / metrics["frames"])
    assert sum(counted["per_frame_baseline.accuracy"]["correct"]) == right


def test_streaming_step_on_tflite_equals_the_keras_causal_model(tiny_run, tiny_export):
    run = tiny_run("frames")
    root, entry = tiny_export("frames")
    interpreter = tflite.interpreter(root / "tflite" / "frames" / "1" / "frames.tflite")
    assert set(interpreter.get_signature_list()) == {"step"}
    examples = run.parity_examples()
    n = int(examples["length"][0])
    keras_out = run.model({"frames": examples["frames"][:1, :n], "mask": np.ones((1, n), bool)}).numpy()[0]
    phone = step_loop.label_stream(interpreter, examples["frames"][0, :n])
    assert phone.shape == keras_out.shape and np.abs(phone - keras_out).max() <= 1e-4
    assert [c["name"] for c in entry["parity"]["cases"]] == ["whole test sequences",
                                                             "non-finite and out-of-range features"]
    card = json.loads((root / "tflite" / "frames" / "1" / "model_card.json").read_text())
    assert card["streaming"] is True and card["statistics"]["feature_names"][0] == "HeightWidthRatio"


def test_saved_model_gives_defined_outputs_for_odd_sequences(tiny_export):
    root, _ = tiny_export("frames")
    label = tf.saved_model.load(str(root / "frames" / "1")).signatures["serving_default"]
    frames_ = np.random.default_rng(0).normal(size=(4, 50, 8)).astype(np.float32) * 100
    frames_[1, :10] = np.nan
    frames_[2, :10] = np.inf
    out = {k: v.numpy() for k, v in label(frames=tf.constant(frames_), lengths=tf.constant([50, 20, -3, 999])).items()}
    assert out["lengths"].tolist() == [50, 20, 0, 50] and out["input_lengths"].tolist() == [50, 20, 0, 50]
    assert np.isfinite(out["probabilities"]).all()
    np.testing.assert_allclose(out["probabilities"][[0, 1, 3]].sum(-1)[:, :20], 1.0, rtol=1e-5)
    assert (out["label_ids"][1, 20:] == -1).all() and (out["labels"][2] == b"").all()
    assert (out["probabilities"][1, 20:] == 0).all()
    empty = label(frames=tf.zeros([2, 0, 8]), lengths=tf.constant([0, 5]))
    assert empty["probabilities"].shape == (2, 0, 3) and empty["lengths"].numpy().tolist() == [0, 0]
    long = label(frames=tf.zeros([1, 20_000, 8]), lengths=tf.constant([20_000]))
    assert long["label_ids"].shape == (1, 20_000)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"frames: expected \[batch, time, 8\]"):
        label(frames=tf.zeros([1, 5, 7]), lengths=tf.constant([5]))  # the wrong feature count is refused


def test_predict_reads_csv_and_npy_sequences(tiny_run, tmp_path, data_root):
    run = tiny_run("frames")
    rows = (data_root / "ur_fall_features" / "urfall-cam0-falls.csv").read_text().splitlines()
    (tmp_path / "urfall.csv").write_text("\n".join(rows[:300]) + "\n")  # fall-01, fall-02, 30 of fall-03
    (tmp_path / "plain.csv").write_text("\n".join(",".join(r.split(",")[3:]) for r in rows[:40]) + "\n")
    np.save(tmp_path / "seq.npy", np.ones((7, 8), np.float32))
    result = invoke("predict", run.dir, tmp_path / "urfall.csv", tmp_path / "plain.csv", tmp_path / "seq.npy", "--json")
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["frames"] for r in out] == [160, 110, 30, 40, 7]
    assert out[0]["input"].endswith("urfall.csv:fall-01") and len(out[0]["labels"]) == 160
    # The same frames from a zero state: the same labels, up to the last `lookahead` (the model waits
    # for frames after them, which differ).
    seen = 40 - run.config["lookahead"]
    assert out[3]["labels"][:seen] == out[0]["labels"][:seen]
    assert set(out[0]["labels"]) <= set(run.preprocessing.label_names)
    text = invoke("predict", run.dir, tmp_path / "seq.npy")
    assert text.exit_code == 0 and text.stdout.startswith(f"{tmp_path / 'seq.npy'}: 7 frames: ")


@pytest.mark.parametrize("content, fragments", [
    ("1,2,3\n", ["line 1: expected 8 features per row", "got 3"]),
    ("1,2,3,4,5,6,7,x\n", ["line 1: not a number"]),
    ("1,2,3,4,5,6,7,nan\n", ["NaN or infinite"]),
    ("", ["holds no frames"]),
])
def test_predict_refuses_malformed_sequences_with_one_line(tiny_run, tmp_path, content, fragments):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert_one_line_error(invoke("predict", tiny_run("frames").dir, path), "bad.csv", *fragments)


def test_predict_refuses_missing_files_and_wrong_arrays(tiny_run, tmp_path):
    run = tiny_run("frames")
    assert_one_line_error(invoke("predict", run.dir, tmp_path / "none.csv"), "none.csv: no such file")
    (tmp_path / "recordings").mkdir()
    assert_one_line_error(invoke("predict", run.dir, tmp_path / "recordings"), "recordings: a folder; give CSV files")
    np.save(tmp_path / "wide.npy", np.ones((3, 9), np.float32))
    assert_one_line_error(invoke("predict", run.dir, tmp_path / "wide.npy"), "expected an array of shape [frames, 8]")


def test_query_labels_a_sequence_on_both_exports(tiny_export, tmp_path):
    root, _ = tiny_export("frames")
    np.save(tmp_path / "seq.npy", np.random.default_rng(1).normal(size=(30, 8)).astype(np.float32))
    result = invoke("query", root, "--name", "frames", tmp_path / "seq.npy", "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["frames"] == 30 and row["frames_agreeing"] == 30 and row["saved_model"] == row["tflite"]


def test_bidirectional_run_exports_a_whole_clip_tflite_with_parity(train_tiny, tmp_path):
    from export import exporter

    run = train_tiny("frames", tmp_path / "run", bidirectional=True, epochs=1)
    entry = exporter.export_run(run, tmp_path / "export", echo=lambda *_: None)
    assert entry["parity"]["ok"], entry["parity"]
    specs = next(a for a in entry["artefacts"] if a["kind"] == "tflite")["signatures"]
    assert specs["serving_default"]["inputs"]["frames"]["shape"] == [1, 32, 8]
    card = json.loads((tmp_path / "export" / "tflite" / "frames" / "1" / "model_card.json").read_text())
    assert card["streaming"] is False and card["max_frames"] == 32
    assert run.parity_examples()["length"].min() > 32  # so parity compared clips cut to the phone's length


def test_lookahead_labels_each_frame_a_fixed_delay_later_on_every_path(train_tiny, tmp_path):
    """lookahead=d: frame t's label comes out at step t + d, after d NaN frames at the end; the
    SavedModel, evaluate and the TFLite stream all read it that way (parity), and the shifted
    training targets line up with the frames."""
    from export import exporter

    run = train_tiny("frames", tmp_path / "run", lookahead=3, epochs=1)
    validation = run.load_data().validation
    inputs, targets, weights = next(iter(run.app.dataset(validation, run.preprocessing, run.config)))
    n = int(validation["length"][0])
    assert int(inputs["mask"].numpy()[0].sum()) == n + 3 and np.isnan(inputs["frames"].numpy()[0, n: n + 3]).all()
    np.testing.assert_array_equal(targets.numpy()[0, 3: n + 3], validation["labels"][0, :n])
    assert weights.numpy()[0, :3].sum() == 0 and weights.numpy()[0, 3: n + 3].all()
    entry = exporter.export_run(run, tmp_path / "export", echo=lambda *_: None)
    assert entry["parity"]["ok"], entry["parity"]
    card = json.loads((tmp_path / "export" / "tflite" / "frames" / "1" / "model_card.json").read_text())
    assert card["lookahead_frames"] == 3
    model_out = run.model({"frames": inputs["frames"][:1], "mask": inputs["mask"][:1]}).numpy()[0]
    labelled = run.app.label_sequences(run, validation["frames"][:1], validation["length"][:1])
    np.testing.assert_allclose(labelled["probabilities"][0, :n], model_out[3: n + 3], atol=1e-5)
    assert label_frames.lookahead_of({**run.config, "bidirectional": True}) == 0  # it sees the whole clip


def test_predict_refuses_sequences_longer_than_the_signature_labels(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(label_frames, "MAX_FRAMES", 50)
    np.save(tmp_path / "long.npy", np.zeros((51, 8), np.float32))
    assert_one_line_error(invoke("predict", tiny_run("frames").dir, tmp_path / "long.npy"), "51 frames; at most 50")


def test_the_labeller_says_how_much_of_a_long_sequence_it_labelled(tiny_run, monkeypatch):
    """Past MAX_FRAMES a sequence's tail is not labelled: `lengths` counts the frames labelled,
    `input_lengths` the frames sent, so a client sees the cut (the SavedModel labelled 108,000 of
    200,000 frames without a word)."""
    monkeypatch.setattr(label_frames, "MAX_FRAMES", 20)
    run = tiny_run("frames")
    out = run.app.label_sequences(run, np.zeros((2, 30, 8), np.float32), np.array([30, 12]))
    assert out["lengths"].tolist() == [20, 12] and out["input_lengths"].tolist() == [30, 12]
    assert out["label_ids"].shape == (2, 20)


@pytest.mark.parametrize("edit, fragment", [
    (lambda s: {**s, "mean": s["mean"][:-1]}, "mean and std are not 8 finite numbers"),
    (lambda s: {**s, "std": [0.0] * 8}, "mean and std are not 8 finite numbers"),
    (lambda s: {**s, "frame_shape": [0]}, "frame_shape is not a list of positive integers"),
    (lambda s: {**s, "label_names": ["falling"]}, "label_names is not a list of two or more names"),
])
def test_damaged_frame_statistics_are_blamed_not_the_input(tiny_run, tmp_path, edit, fragment):
    run = tiny_run("frames")
    copy = copy_run(run, tmp_path / "run")
    path = copy / frame_data.STATISTICS
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    np.save(tmp_path / "seq.npy", np.ones((7, 8), np.float32))
    assert_one_line_error(invoke("predict", copy, tmp_path / "seq.npy"), frame_data.STATISTICS, fragment,
                          "the run folder is damaged")


def test_the_per_frame_baseline_reads_each_frame_alone():
    from rnn_apps.metrics import per_frame_baseline

    train = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, np.nan]] * 5)
    labels = np.array([0, 0, 1, 1] * 5)
    # NaN reads as the training mean of its feature; the order of frames does not matter
    guessed = per_frame_baseline(train, labels, np.array([[0.95, 0.05], [0.05, 0.95], [np.nan, 1.0]]))
    assert guessed.tolist() == [1, 0, 0]
