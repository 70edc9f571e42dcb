"""The per-step labelling family, over frames: a sequence of frames (a vector of float features,
or an image) in, one label per frame out. `frames` is one; `label_steps` is the same topology over
pieces of text. What differs is the phone: a frame labeller streams (a causal run's `step` takes one
frame and the states, as a camera or a sensor delivers them) or reads a whole clip (bidirectional).

An app of this kind writes what is its own:
  - its data: `load_data` -> Splits with columns frames [n, time, *frame_shape] (padded), length
    [n], labels [n, time] (label ids);
  - its `preprocessor` (App's contract: fit, load, files), whose objects have label_names,
    frame_shape, kind ("features" or "video") and card() (pipelines/frames.py's FrameStatistics);
  - its Keras model: `build_model(config, preprocessing, unroll_length)`, {"frames", "mask"} ->
    probabilities [batch, time, labels], with its per-frame encoder in a `PerFrame` layer named
    "per_frame", then SimpleRNN layers (optionally a StepDifference beside the encoder) and a last
    layer named "probabilities": the step signature is built from these parts;
  - `feature_limit`: the standard deviations its normalised features are clipped to (the card says it);
  - optionally `more_scores`: evaluate's figures of its own (frames: falls detected and how late).

Its config holds the family's keys: bidirectional, lookahead, max_frames, window,
windows_per_sequence, class_weights, clipnorm (and COMMON's).

The family writes the rest once: its batches (pipelines/frames.py `batches`: a lookahead, random
windows, class weights),
compile, one labelling function (predict, evaluate and the SavedModel), the step function, evaluate
(frame accuracy, per-class recall and precision, the per-frame random forest baseline), the TFLite
file and its card, parity, phone quality and query. The phone client is `phone_probabilities`: the
causal file's step loop (export/step_loop.py `label_stream`) or the bidirectional file's whole clip.
"""

from __future__ import annotations

import json

import keras
import numpy as np

from export import step_loop
from foundation.errors import UserError
from foundation.lazy import tensorflow as tf
from pipelines import frames as frame_data
from rnn_apps import config as config_lib
from rnn_apps import metrics
from rnn_apps.app import App, Endpoint, ParityCase, TFLiteModel, float32_twin, read_card
from rnn_apps.layers import SparseCrossentropy, StepDifference, rnn_layers

MAX_FRAMES = 108_000  # frames labelled per sequence by the SavedModel: an hour at 30 frames/s


class LabelFrames(App):
    monitors = ("val_loss", "val_accuracy")
    feature_limit: float
    config_relations = (
        (lambda c: c["bidirectional"] or c["lookahead"] < c["max_frames"],
         "lookahead ({lookahead}) must be below max_frames ({max_frames}): a causal model labels each frame "
         "`lookahead` frames late"),
    )
    config_checks = {
        "max_frames": config_lib.POSITIVE, "clipnorm": config_lib.POSITIVE_NUMBER,
        "window": config_lib.NON_NEGATIVE, "lookahead": config_lib.NON_NEGATIVE,
        "windows_per_sequence": config_lib.POSITIVE, "members": config_lib.one_of(1),
    }

    # --- training -----------------------------------------------------------------------
    def dataset(self, columns, preprocessing, config, shuffle_seed=None):
        weights = class_weights(config, preprocessing) if config["class_weights"] else None
        return frame_data.batches(columns, config["batch_size"], lookahead_of(config), config["window"],
                                  config["windows_per_sequence"], weights, shuffle_seed)

    def compile(self, model, config):
        model.compile(optimizer=keras.optimizers.AdamW(config_lib.learning_rate(config),
                                                       weight_decay=config["weight_decay"],
                                                       clipnorm=config["clipnorm"]),
                      loss=SparseCrossentropy(config["label_smoothing"]),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                      jit_compile=config["jit_compile"])

    def for_inference(self, model, run):
        # Dropout inside the SimpleRNN cells draws its masks from seed state even when not training;
        # the twin without it is what the step signature and the unrolled TFLite model are built from.
        return float32_twin(self, model, run) if run.config["dropout"] else model

    def check_model(self, model, run):
        shape = tuple(model.input["frames"].shape[2:])
        if shape != tuple(run.preprocessing.frame_shape):
            raise UserError(f"{run.dir / frame_data.STATISTICS} describes frames of shape "
                            f"{run.preprocessing.frame_shape} but the model takes {list(shape)}: the statistics do not "
                            "belong to this model")

    # --- labelling ----------------------------------------------------------------------
    def labeller(self, run):
        """(frames [batch, time, ...], lengths [batch]) -> labels, label_ids, probability,
        probabilities, lengths, input_lengths: one function for predict, evaluate and the SavedModel.
        Lengths are clipped to [0, time], time to MAX_FRAMES; any float value gives a defined output."""
        model, names = run.model, tf.constant(run.preprocessing.label_names)
        frame_rank = len(run.preprocessing.frame_shape)
        shape, lookahead = list(run.preprocessing.frame_shape), lookahead_of(run.config)

        def label(frames, lengths):
            # A loaded signature does not check shapes: a wrong feature count would fail deep inside
            # with a reshape error; this says what was expected, in the reply TF Serving sends.
            tf.debugging.assert_equal(tf.shape(frames)[2:], shape, message=f"frames: expected [batch, time, "
                                      f"{', '.join(map(str, shape))}]; got shape")
            given = tf.clip_by_value(tf.cast(lengths, tf.int32), 0, tf.shape(frames)[1])
            frames = tf.cast(frames, tf.float32)[:, :MAX_FRAMES]
            time = tf.shape(frames)[1]
            lengths = tf.minimum(given, time)
            mask = tf.sequence_mask(lengths, time)
            # With a lookahead of d frames, d frames of NaN follow each sequence (as in training) and
            # frame t's label is read at step t + d. A zero-length batch runs one masked step.
            steps = tf.maximum(time + lookahead, 1)
            padded = tf.pad(frames, [[0, 0], [0, steps - time]] + [[0, 0]] * frame_rank)
            position = tf.range(steps)[None, :]
            tail = (position >= lengths[:, None]) & (position < lengths[:, None] + lookahead)
            padded = tf.where(tf.reshape(tail, [-1, steps] + [1] * frame_rank), float("nan"), padded)
            probabilities = model({"frames": padded, "mask": position < lengths[:, None] + lookahead},
                                  training=False)[:, lookahead: lookahead + time]
            label_ids = tf.where(mask, tf.argmax(probabilities, -1, output_type=tf.int32), -1)
            return {"labels": tf.where(mask, tf.gather(names, tf.maximum(label_ids, 0)), ""),
                    "label_ids": label_ids,
                    "probability": tf.where(mask, tf.reduce_max(probabilities, -1), 0.0),
                    "probabilities": tf.where(mask[..., None], probabilities, 0.0),
                    "lengths": lengths,
                    # frames of the input (its length, clipped to the frames sent): more than `lengths`
                    # where a sequence went past MAX_FRAMES and its tail was not labelled
                    "input_lengths": given}

        return label, [model]

    def label_sequences(self, run, frames: np.ndarray, lengths: np.ndarray, batch_size: int = 16) -> dict:
        """Padded sequences -> the labeller's outputs as numpy arrays, in batches."""
        fn = run.traced("label", lambda: self.labeller(run)[0])
        parts = [fn(tf.constant(frames[i: i + batch_size], tf.float32), tf.constant(lengths[i: i + batch_size]))
                 for i in range(0, len(lengths), batch_size)]
        return {k: np.concatenate([p[k].numpy() for p in parts]) for k in parts[0]}

    def step(self, model) -> tuple:
        """-> (step, state widths): step(frame [rows, ...], cache) -> (probabilities [rows, classes],
        cache), the trained encoder, cells and head on one frame of a causal run; the cache holds
        each SimpleRNN's state_i and, with frame differences, the previous encoded frame (zeros
        before the first, as in StepDifference)."""
        encoder, head = model.get_layer("per_frame").layer, model.get_layer("probabilities")
        cells = [layer.cell for layer in rnn_layers(model)]
        differences = any(isinstance(layer, StepDifference) for layer in model.layers)
        widths = {f"state_{i}": cell.units for i, cell in enumerate(cells)}
        if differences:
            widths["previous_frame"] = encoder.output_shape[-1]

        def step(frame, cache):
            x, new = encoder(frame), {}
            if differences:
                x, new["previous_frame"] = tf.concat([x, x - cache["previous_frame"]], -1), x
            for i, cell in enumerate(cells):
                x, state = cell(x, [cache[f"state_{i}"]])
                new[f"state_{i}"] = state[0]
            return head(x), new

        return step, widths

    # --- use ----------------------------------------------------------------------------
    def evaluate(self, run, splits) -> dict:
        """Frame accuracy, per-class recall and precision; and, for features, a per-frame random
        forest scored on the same frames (what temporal context adds: each frame alone)."""
        test, names = splits.test, run.preprocessing.label_names
        out = self.label_sequences(run, test["frames"], test["length"])
        truth = [test["labels"][i, :n] for i, n in enumerate(test["length"])]
        predicted = [out["label_ids"][i, :n] for i, n in enumerate(test["length"])]
        result = {"sequences": len(truth), "bidirectional": run.config["bidirectional"],
                  **frame_scores(names, truth, predicted)}
        if run.preprocessing.kind == "features":
            unpadded = frame_data.unpadded
            guessed = metrics.per_frame_baseline(unpadded(splits.train, "frames"), unpadded(splits.train, "labels"),
                                                 unpadded(test, "frames"))
            baseline = frame_scores(names, truth, np.split(guessed, np.cumsum([len(t) for t in truth])[:-1]))
            result["per_example"].update({f"per_frame_baseline.{path}": parts
                                          for path, parts in baseline.pop("per_example").items()})
            result["per_frame_baseline"] = {"accuracy": baseline["accuracy"], "per_class": baseline["per_class"]}
        return {**result, **self.more_scores(run, test, truth, predicted)}

    def more_scores(self, run, test: dict, truth: list, predicted: list) -> dict:
        """Scores of the app's own, from each test sequence's true and predicted label ids."""
        return {}

    def predict(self, run, inputs):
        names, sequences = frame_data.read_sequence_files(inputs, run.preprocessing.frame_shape, MAX_FRAMES)
        if not sequences:
            return []
        frames, lengths = frame_data.pad(sequences, run.preprocessing.frame_shape)
        out = self.label_sequences(run, frames, lengths)
        rows = []
        for i, name in enumerate(names):
            n = int(lengths[i])
            labels = [t.decode() for t in out["labels"][i, :n]]
            rows.append({"input": name, "frames": n, "labels": labels,
                         "probabilities": [round(float(q), 4) for q in out["probability"][i, :n]],
                         "runs": metrics.runs(labels)})
        return rows

    def format_prediction(self, row):
        return f"{row['input']}: {row['frames']} frames: {metrics.runs_text(row['runs'])}"

    def serving(self, run):
        label, track = self.labeller(run)
        kind = run.preprocessing.kind
        spec = [tf.TensorSpec([None, None, *run.preprocessing.frame_shape], tf.uint8 if kind == "video" else tf.float32,
                              name="frames"), tf.TensorSpec([None], tf.int32, name="lengths")]
        return [Endpoint("serving_default", label, spec, track=track)]

    def tflite_models(self, run):
        preprocessing, config = run.preprocessing, run.config
        shape, classes = list(preprocessing.frame_shape), len(preprocessing.label_names)
        card = {"app": self.name, "topology": self.topology, "task": self.task, "labels": preprocessing.label_names,
                "frame": f"float32 {shape}: " + ("the features of statistics.feature_names, raw (the model "
                                                 "normalises them; NaN reads as the training mean, values past "
                                                 f"+-{self.feature_limit:g} standard deviations are clipped)"
                                                 if preprocessing.kind == "features" else "RGB pixels 0..255"),
                "statistics": preprocessing.card()}
        if config["bidirectional"]:
            length = config["max_frames"]
            unrolled = self.unrolled_twin(run, length)

            def whole_clip(frames, length_):
                mask = tf.sequence_mask(tf.clip_by_value(length_, 0, length), length)
                return {"probabilities": unrolled({"frames": frames, "mask": mask}, training=False)}

            endpoints = [Endpoint("serving_default", whole_clip, [
                tf.TensorSpec([None, length, *shape], tf.float32, name="frames"),
                tf.TensorSpec([None], tf.int32, name="length")], track=[unrolled])]
            card["signatures"] = {"serving_default": {
                "inputs": {"frames": f"float32 [1, {length}, {', '.join(map(str, shape))}], zeros past the clip",
                           "length": f"int32 [1]: the clip's frames (at most {length}; longer clips: the first "
                                     f"{length} frames)"},
                "outputs": {"probabilities": f"float32 [1, {length}, {classes}], labels in the order of `labels`; "
                                             "rows past the length mean nothing"}}}
            card.update(streaming=False, max_frames=length)
        else:
            step, widths = self.step(run.model)

            def step_signature(frame, *states):
                probabilities, cache = step(frame, dict(zip(widths, states, strict=True)))
                return {"probabilities": probabilities, "label_id": tf.argmax(probabilities, -1, output_type=tf.int32),
                        **cache}

            endpoints = [Endpoint("step", step_signature, [tf.TensorSpec([None, *shape], tf.float32, name="frame")]
                                  + [tf.TensorSpec([None, w], tf.float32, name=n) for n, w in widths.items()],
                                  track=[run.model])]
            states = {n: f"float32 [1, {w}]" for n, w in widths.items()}
            card["signatures"] = {"step": {
                "inputs": {"frame": f"float32 [1, {', '.join(map(str, shape))}]", **states},
                "outputs": {"probabilities": f"float32 [1, {classes}]", "label_id": "int32 [1]", **states}}}
            card.update(streaming=True, lookahead_frames=lookahead_of(config))
            card["loop"] = [f"state = zeros for every one of {', '.join(widths)}  # at a recording's start",
                            "for each frame as it arrives:",
                            "    result = step(frame=[frame], **state)",
                            "    label = labels[result.label_id[0]]; state = the result's outputs of those names",
                            "with lookahead_frames d > 0, the label returned at frame t is frame t - d's; at "
                            "a recording's end, feed d frames of NaN to read its last d labels"]
        return [TFLiteModel(f"{self.name}.tflite", endpoints,
                            assets={"model_card.json": json.dumps(card, indent=2) + "\n"})]

    def parity_cases(self, run, examples):
        """Whole test sequences (and, for features, one with NaN, inf and huge values): the
        SavedModel's per-frame outputs equal Keras's; the TFLite model's probabilities (the causal
        reference loop, frame by frame; or the bidirectional whole clip) within 1e-4."""
        frames, lengths = examples["frames"], examples["length"]
        if run.config["bidirectional"]:  # the phone's model takes the first max_frames frames of a clip
            frames, lengths = frames[:, :run.config["max_frames"]], np.minimum(lengths, run.config["max_frames"])
        cases = [("whole test sequences", frames, lengths)]
        if run.preprocessing.kind == "features":
            odd = frames[:1].copy()
            odd[0, 0:4, 0], odd[0, 1, 1], odd[0, 2, 2], odd[0, 3, 3] = np.nan, np.inf, -np.inf, 1e30
            cases.append(("non-finite and out-of-range features", odd, lengths[:1]))
        out = []
        for name, case_frames, case_lengths in cases:
            expected = self.label_sequences(run, case_frames, case_lengths)
            dtype = np.uint8 if run.preprocessing.kind == "video" else np.float32
            inputs = {"frames": case_frames.astype(dtype), "lengths": case_lengths.astype(np.int32)}
            keras_phone = {"phone_probabilities": expected["probabilities"]}

            def on_phone(interpreter, case_frames=case_frames, case_lengths=case_lengths):
                return {"phone_probabilities": self.phone_probabilities(
                    interpreter, case_frames, case_lengths, lookahead_of(run.config), run.config["max_frames"])}

            out.append(ParityCase(name, {**expected, **keras_phone}, ("serving_default", inputs), f"{self.name}.tflite",
                                  ["labels", "label_ids", "probability", "probabilities", "lengths", "input_lengths"],
                                  tflite_loop=on_phone, tflite_compare=["phone_probabilities"]))
        return out

    def phone_quality(self, run, test, interpreter):
        """Frame accuracy of the TFLite model over whole test sequences, as evaluate counts it
        (a bidirectional file sees each clip's first max_frames frames)."""
        frames, lengths = test["frames"], test["length"]
        if run.config["bidirectional"]:
            frames, lengths = frames[:, :run.config["max_frames"]], np.minimum(lengths, run.config["max_frames"])
        probabilities = self.phone_probabilities(interpreter, frames, lengths, lookahead_of(run.config),
                                                 run.config["max_frames"])
        right = [probabilities[i, :n].argmax(-1) == test["labels"][i, :n] for i, n in enumerate(lengths)]
        return float(np.concatenate(right).mean())

    @staticmethod
    def phone_probabilities(interpreter, frames, lengths, lookahead: int, max_frames) -> np.ndarray:
        """What a phone computes for padded sequences, as [batch, time, classes], zeros past each length:
        a causal file's `step` loop (labels `lookahead` frames late), or a bidirectional file's whole
        clip of `max_frames`."""
        frames = np.asarray(frames, np.float32)
        signatures = interpreter.get_signature_list()
        outputs = []
        for sequence, n in zip(frames, lengths, strict=True):
            n = int(n)
            if "step" in signatures:  # d frames of NaN read the last d labels of a lookahead model
                tail = np.full((lookahead, *sequence.shape[1:]), np.nan, np.float32)
                probabilities = step_loop.label_stream(interpreter, np.concatenate([sequence[:n], tail]))[lookahead:]
            else:
                clip = np.zeros((1, max_frames, *sequence.shape[1:]), np.float32)
                clip[0, :min(n, len(clip[0]))] = sequence[:min(n, len(clip[0]))]
                result = interpreter.get_signature_runner("serving_default")(
                    frames=clip, length=np.array([n], np.int32))
                probabilities = result["probabilities"][0, :n]
            row = np.zeros((frames.shape[1], probabilities.shape[-1] if probabilities.size else 0), np.float32)
            row[:len(probabilities)] = probabilities
            outputs.append(row)
        return np.array(outputs, np.float32)

    def exported_inputs(self, inputs, tflite_dir):
        card = read_card(tflite_dir)
        shape = tuple(card["statistics"]["frame_shape"])
        names, sequences = frame_data.read_sequence_files(inputs, shape, MAX_FRAMES)
        frames, lengths = frame_data.pad(sequences, shape)
        served = {"frames": frames.astype(np.uint8 if card["statistics"]["kind"] == "video" else np.float32),
                  "lengths": lengths}
        return names, served, {"frames": frames, "lengths": lengths}

    def run_tflite(self, interpreter, tflite_inputs, tflite_dir):
        card = read_card(tflite_dir)
        probabilities = self.phone_probabilities(interpreter, tflite_inputs["frames"], tflite_inputs["lengths"],
                                                 card.get("lookahead_frames", 0), card.get("max_frames"))
        return {"probabilities": probabilities}

    def query_rows(self, names, served, on_phone, tflite_dir):
        labels = read_card(tflite_dir)["labels"]
        rows = []
        for i, name in enumerate(names):
            n = int(served["lengths"][i])
            saved = [t.decode() for t in served["labels"][i, :n]]
            phone = [labels[j] for j in on_phone["probabilities"][i, :n].argmax(-1)] if n else []
            rows.append({"input": name, "frames": n, "saved_model": metrics.runs(saved), "tflite": metrics.runs(phone),
                         "frames_agreeing": sum(a == b for a, b in zip(saved, phone, strict=True))})
        return rows

    def format_query(self, row):
        shown = metrics.runs_text
        return (f"SavedModel v{row['version']}: {shown(row['saved_model'])}  TFLite: {shown(row['tflite'])}  "
                f"({row['frames_agreeing']}/{row['frames']} frames agree)  {row['input']}")


def frame_scores(names: list, truth: list, predicted: list) -> dict:
    """Frame accuracy, per-class recall and precision and the confusion matrix of label ids per
    recording; and, per recording, the parts of accuracy and of each recall (bench's bootstrap)."""
    y, p = np.concatenate(truth), np.concatenate(predicted)
    confusion = np.zeros((len(names), len(names)), int)
    np.add.at(confusion, (y, p), 1)
    recordings = list(zip(truth, predicted, strict=True))
    return {"frames": int(len(y)), "accuracy": float((y == p).mean()),
            "per_class": {name: {"recall": metrics.ratio(confusion[i, i], confusion[i].sum()),
                                 "precision": metrics.ratio(confusion[i, i], confusion[:, i].sum()),
                                 "frames": int(confusion[i].sum())} for i, name in enumerate(names)},
            "confusion_matrix": confusion.tolist(),  # rows: true label, columns: predicted
            "per_example": {"accuracy": {"correct": [int((t == q).sum()) for t, q in recordings],
                                         "count": [len(t) for t in truth]},
                            **{f"per_class.{name}.recall": {
                                "correct": [int(((t == i) & (q == i)).sum()) for t, q in recordings],
                                "count": [int((t == i).sum()) for t in truth]} for i, name in enumerate(names)}}}


def class_weights(config, preprocessing) -> list:
    weights = config["class_weights"]
    if len(weights) != len(preprocessing.label_names) or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and 0 < w < 1e6 for w in weights):
        raise UserError(f"config class_weights: expected {len(preprocessing.label_names)} positive numbers, one per "
                        f"label ({', '.join(preprocessing.label_names)}), got {weights!r}")
    return [float(w) for w in weights]


def lookahead_of(config) -> int:
    """The frames a model waits before labelling one: the config's lookahead for a causal model, 0
    for a bidirectional one (it sees the whole clip)."""
    return 0 if config["bidirectional"] else config["lookahead"]
