"""The per-step labelling family (many-to-many, one output per step): a sequence of pieces (words,
symbols) in, one label per piece out. `tagger` is one; `tests/app_running_parity.py` is another,
defined in one file to show what an app of this family writes.

An app of the family supplies what is its own:
  - its data: `load_data` -> Splits whose columns are TOKENS and TAGS, one string per sequence with
    its pieces (and their labels, as many) joined by `pipelines.tagged.SEPARATOR`;
  - its `preprocessor` (App's contract: fit, load, files), whose objects have `tag_names`, with
    `phone_files`, the names among its files() that ship beside the .tflite (TAGS_FILE among
    them), and `from_card(folder, card)`, the same preprocessing read back from those files alone;
  - its in-graph transform: `features(preprocessing, pieces) -> {name: ragged int32}` over ragged
    piece strings ("" -> 0 in the first feature: padding), and `split(text)`, raw strings -> ragged pieces;
  - its Keras model: `build_model(config, preprocessing, unroll_length)`, {feature: [batch, time]}
    -> probabilities [batch, time, tags], its last layer named "probabilities";
  - `input_rules`: the model card's words on how a client builds the inputs.

The family writes the rest once: batching by length, compile, one labelling function (predict,
evaluate and both SavedModel signatures), evaluate, the TFLite model and its card, parity, phone
quality and query. The phone client is `phone_inputs` over the preprocessor's `from_card`: raw text
-> the .tflite's int32 inputs from the shipped files alone, which query runs on an export's folder,
and parity and phone quality on the same files written out as the export writes them.

Outputs of both SavedModel signatures (`serving_default(text)`, `tag_tokens(tokens)`): tokens,
tags ("" on padding), tag_ids (-1 on padding), probabilities (0 on padding), lengths (pieces
labelled) and input_lengths (pieces in the input: more than `lengths` where the input was longer
than `max_length` and its tail was not labelled).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import keras
import numpy as np

from foundation.errors import UserError
from foundation.lazy import tensorflow as tf
from pipelines import batching, tagged
from rnn_apps import config as config_lib
from rnn_apps import metrics
from rnn_apps.app import CARD_FILE, App, Endpoint, ParityCase, TFLiteModel, read_as_shipped, read_card
from rnn_apps.layers import SparseCrossentropy

TOKENS, TAGS = "tokens", "tags"  # the data's columns
TAGS_FILE = "tags.txt"
PADDING_TAG_ID = -1
MAX_TEXT_CHARACTERS = 65536  # a 1 MB string costs no more than its first 64 kB


class LabelSteps(App):
    monitors = ("val_loss", "val_accuracy")
    input_rules = ""

    # --- what an app writes -------------------------------------------------------------
    def features(self, preprocessing, pieces: tf.RaggedTensor) -> dict:
        raise NotImplementedError

    def split(self, text: tf.Tensor) -> tf.RaggedTensor:
        """Raw strings -> ragged pieces: whitespace by default."""
        return tf.strings.split(tf.strings.strip(clean_text(text)))

    def augment(self, features: dict, config: dict, seed: int) -> dict:
        """A training batch's features changed while reading (tagger: word dropout); none by default."""
        return features

    def more_scores(self, splits, per_sequence: list) -> dict:
        """Scores of the app's own beside accuracy, from [[(piece, true tag, predicted tag)] per test
        sequence]; under "per_example", the per-sequence parts ({"correct", "count"}) of those that
        are ratios (bench's bootstrap)."""
        return {}

    # --- training -----------------------------------------------------------------------
    def dataset(self, columns, preprocessing, config, shuffle_seed=None):
        length = config["max_length"]
        pieces = tagged.split_tokens(columns[TOKENS])[:, :length]
        tag_table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(preprocessing.tag_names), tf.range(len(preprocessing.tag_names))), -1)
        tags = tf.ragged.map_flat_values(tag_table.lookup, tagged.split_tokens(columns[TAGS])[:, :length])
        ds = tf.data.Dataset.from_tensor_slices((self.features(preprocessing, pieces), tf.maximum(tags, 0)))
        ds = ds.map(lambda x, y: ({k: v[:] for k, v in x.items()}, y[:])).cache()
        if shuffle_seed is not None:
            ds = ds.shuffle(batching.SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=True)
        bounds = batching.bucket_boundaries(length)
        # Padded to the bucket's bound: a handful of shapes, so XLA compiles each once (padded to
        # each batch's longest, epochs took 48 to 165 s as new shapes kept compiling).
        ds = ds.bucket_by_sequence_length(
            lambda x, y: tf.shape(y)[0], bounds, [config["batch_size"]] * (len(bounds) + 1),
            pad_to_bucket_boundary=True, drop_remainder=shuffle_seed is not None)
        if shuffle_seed is not None:
            ds = ds.map(lambda x, y: (self.augment(x, config, shuffle_seed), y))
        return ds.prefetch(tf.data.AUTOTUNE)

    def compile(self, model, config):
        # Padding steps carry no loss: the model's embeddings mask id 0 and Keras weighs by the mask.
        model.compile(optimizer=keras.optimizers.AdamW(config_lib.learning_rate(config),
                                                       weight_decay=config["weight_decay"]),
                      loss=SparseCrossentropy(config["label_smoothing"]),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                      jit_compile=config["jit_compile"])

    def stored_sizes(self, model, run):
        return [(TAGS_FILE, len(run.preprocessing.tag_names), model.get_layer("probabilities").units)]

    # --- labelling ----------------------------------------------------------------------
    def labeller(self, run, from_text: bool):
        """Raw strings (or padded piece strings, "" for padding) -> the signatures' outputs: one
        function for predict, evaluate and both SavedModel signatures."""
        model, preprocessing, length = run.model, run.preprocessing, run.config["max_length"]
        names = tf.constant(preprocessing.tag_names)

        def label(batch):
            given = self.split(batch) if from_text else tf.RaggedTensor.from_tensor(batch, padding="")
            pieces = given[:, :length]
            features = {k: v.to_tensor() for k, v in self.features(preprocessing, pieces).items()}
            # at least one step, so that a batch of empty inputs runs the model
            features = {k: tf.pad(v, [[0, 0], [0, tf.maximum(1 - tf.shape(v)[1], 0)]]) for k, v in features.items()}
            probabilities = model(features, training=False)
            mask = padding_mask(features)
            tag_ids = tf.where(mask, tf.argmax(probabilities, -1, output_type=tf.int32), PADDING_TAG_ID)
            dense = pieces.to_tensor("")
            dense = tf.pad(dense, [[0, 0], [0, tf.shape(tag_ids)[1] - tf.shape(dense)[1]]], constant_values="")
            return {"tokens": dense,
                    "tags": tf.where(mask, tf.gather(names, tf.maximum(tag_ids, 0)), ""),
                    "tag_ids": tag_ids,
                    "probabilities": tf.where(mask, tf.reduce_max(probabilities, -1), 0.0),
                    "lengths": tf.cast(pieces.row_lengths(), tf.int32),
                    "input_lengths": tf.cast(given.row_lengths(), tf.int32)}

        return label, [model, *self.lookups(preprocessing)]

    def lookups(self, preprocessing) -> list:
        """The lookup layers `features` uses: the SavedModel must track them."""
        return [v for v in vars(preprocessing).values() if isinstance(v, keras.layers.Layer)]

    def label(self, run, inputs: list, from_text: bool = True, batch_size: int = 256) -> list:
        """-> one dict per input: tokens, tags, probabilities (lists), and the pieces left unlabelled."""
        fn = run.traced(("label", from_text), lambda: self.labeller(run, from_text)[0])
        rows = []
        for i in range(0, len(inputs), batch_size):
            out = {k: v.numpy() for k, v in fn(tf.constant(inputs[i: i + batch_size])).items()}
            for j, n in enumerate(out["lengths"]):
                rows.append({"tokens": [t.decode("utf-8") for t in out["tokens"][j][:n]],
                             "tags": [t.decode("utf-8") for t in out["tags"][j][:n]],
                             "probabilities": [round(float(p), 4) for p in out["probabilities"][j][:n]],
                             "not_labelled": int(out["input_lengths"][j] - n)})
        return rows

    # --- use ----------------------------------------------------------------------------
    def evaluate(self, run, splits) -> dict:
        length = run.config["max_length"]
        sequences = [s.split(tagged.SEPARATOR)[:length] for s in splits.test[TOKENS]]
        truth = [t.split(tagged.SEPARATOR)[:length] for t in splits.test[TAGS]]
        width = max(len(s) for s in sequences)
        padded = np.array([s + [""] * (width - len(s)) for s in sequences], dtype=object)
        predicted = [row["tags"] for row in self.label(run, list(padded), from_text=False)]
        pairs = [(w, t, p) for pieces, tags, preds in zip(sequences, truth, predicted, strict=True)
                 for w, t, p in zip(pieces, tags, preds, strict=True)]
        per_tag = {}
        for name in run.preprocessing.tag_names:
            true_positive = sum(1 for _, t, p in pairs if t == name and p == name)
            predicted_n, actual_n = sum(1 for *_, p in pairs if p == name), sum(1 for _, t, _ in pairs if t == name)
            per_tag[name] = {"precision": round(true_positive / predicted_n, 4) if predicted_n else None,
                             "recall": round(true_positive / actual_n, 4) if actual_n else None, "count": actual_n}
        errors = Counter(f"{t} -> {p}" for _, t, p in pairs if t != p)
        per_sequence = [[(w, t, p) for w, t, p in zip(pieces, tags, preds, strict=True)]
                        for pieces, tags, preds in zip(sequences, truth, predicted, strict=True)]
        more = self.more_scores(splits, per_sequence)
        # the baseline a per-step model must beat: each piece's most frequent training label
        baseline = metrics.most_frequent_labels([s.split(tagged.SEPARATOR) for s in splits.train[TOKENS]],
                                                [t.split(tagged.SEPARATOR) for t in splits.train[TAGS]], sequences)
        baseline_right = [sum(t == b for t, b in zip(tags, guess, strict=True))
                          for tags, guess in zip(truth, baseline, strict=True)]
        per_example = {"accuracy": {"correct": [sum(t == p for _, t, p in s) for s in per_sequence],
                                    "count": [len(s) for s in per_sequence]},
                       "most_frequent_baseline.accuracy": {"correct": baseline_right,
                                                           "count": [len(s) for s in per_sequence]},
                       **more.pop("per_example", {})}
        return {"sentences": len(sequences), "tokens": len(pairs),
                "accuracy": float(np.mean([t == p for _, t, p in pairs])), **more,
                "most_frequent_baseline": {"accuracy": sum(baseline_right) / max(len(pairs), 1)},
                "per_tag": per_tag, "most_frequent_errors": dict(errors.most_common(10)), "per_example": per_example}

    def predict(self, run, inputs):
        rows = self.label(run, list(inputs)) if inputs else []
        return [{"input": text, **row} for text, row in zip(inputs, rows, strict=True)]

    def format_prediction(self, row):
        pairs = " ".join(f"{t}/{g}" for t, g in zip(row["tokens"], row["tags"], strict=True))
        return pairs + (f"  [{row['not_labelled']} more not labelled: over max_length]" if row["not_labelled"] else "")

    def serving(self, run):
        from_text, track = self.labeller(run, from_text=True)
        from_pieces, _ = self.labeller(run, from_text=False)
        return [Endpoint("serving_default", from_text, [tf.TensorSpec([None], tf.string, name="text")], track=track),
                Endpoint("tag_tokens", from_pieces, [tf.TensorSpec([None, None], tf.string, name="tokens")],
                         track=track)]

    def phone_files(self, run) -> dict:
        """What ships beside the .tflite: the preprocessor's phone_files and the model card."""
        length, preprocessing, names = run.config["max_length"], run.preprocessing, list(run.model.input)
        card = {
            "app": self.name, "topology": self.topology, "task": self.task, "max_length": length,
            "inputs": {n: f"int32 [1, {length}], right-padded with 0" for n in names},
            "outputs": {"probabilities": f"float32 [1, {length}, {len(preprocessing.tag_names)}], tags in the "
                                         f"order of {TAGS_FILE}; rows past the input's length mean nothing"},
            "tokenisation": self.input_rules,
            "files": {file: "line i = tag i" if file == TAGS_FILE else "line i = id i"
                      for file in preprocessing.phone_files},
        }
        files = preprocessing.files()
        return {**{file: files[file] for file in preprocessing.phone_files},
                CARD_FILE: json.dumps(card, indent=2) + "\n"}

    def shipped_preprocessing(self, run):
        """The phone client's preprocessing, read by `from_card` from the files the run's .tflite
        ships, written out as the export writes them: what parity and phone quality feed through."""
        return read_as_shipped(self.phone_files(run),
                               lambda folder: self.preprocessor.from_card(folder, read_card(folder)))

    def tflite_models(self, run):
        unrolled = self.unrolled_twin(run, run.config["max_length"])
        names = list(unrolled.input)

        def label_ids(*ids):
            return {"probabilities": unrolled(dict(zip(names, ids, strict=True)), training=False)}

        spec = [tf.TensorSpec([None, run.config["max_length"]], tf.int32, name=n) for n in names]
        return [TFLiteModel(f"{self.name}.tflite", [Endpoint("serving_default", label_ids, spec, track=[unrolled])],
                            assets=self.phone_files(run))]

    def phone_inputs(self, preprocessing, texts: list, length: int) -> dict:
        """The phone client: raw strings -> the .tflite's inputs [n, length], built as the card says."""
        pieces = self.split(tf.constant(texts, tf.string))[:, :length]
        return {k: v.to_tensor(shape=[None, length]).numpy() for k, v in self.features(preprocessing, pieces).items()}

    def parity_cases(self, run, examples):
        """Test sequences, as text: the SavedModel's tags and probabilities equal Keras's, and the
        TFLite model's per-piece probabilities (on real pieces) within 1e-4."""
        from export import tflite

        texts = [s.replace(tagged.SEPARATOR, " ") for s in examples[TOKENS]]
        expected = {k: v.numpy() for k, v in tf.function(self.labeller(run, True)[0])(tf.constant(texts)).items()}
        inputs = self.phone_inputs(self.shipped_preprocessing(run), texts, run.config["max_length"])
        mask = padding_mask(inputs)
        probabilities = run.model(inputs, training=False).numpy()
        keras_phone = {"phone_probabilities": np.where(mask[..., None], probabilities, 0.0)}

        def on_phone(interpreter):
            out = tflite.run_one_by_one(interpreter, "serving_default", inputs)
            return {"phone_probabilities": np.where(mask[..., None], out["probabilities"], 0.0)}

        pieces = [s.split(tagged.SEPARATOR) for s in examples[TOKENS]]
        width = max([len(w) for w in pieces] + [1])
        given = np.array([[t.encode() for t in w] + [b""] * (width - len(w)) for w in pieces], dtype=object)
        from_pieces = {k: v.numpy() for k, v in tf.function(self.labeller(run, False)[0])(tf.constant(given)).items()}
        outputs = ["tags", "tag_ids", "probabilities", "lengths", "input_lengths"]
        return [ParityCase("tags of test sequences", {**expected, **keras_phone},
                           ("serving_default", {"text": np.array([t.encode() for t in texts], dtype=object)}),
                           f"{self.name}.tflite", outputs, tflite_loop=on_phone,
                           tflite_compare=["phone_probabilities"]),
                ParityCase("tags of test sequences given as tokens", from_pieces, ("tag_tokens", {"tokens": given}),
                           None, ["tokens", *outputs])]

    phone_metric = ("accuracy", True, 0.01)

    def phone_quality(self, run, test, interpreter):
        """Accuracy of the TFLite model on the test sequences' own pieces (up to max_length)."""
        from export import tflite

        length = run.config["max_length"]
        pieces = [s.split(tagged.SEPARATOR)[:length] for s in test[TOKENS]]
        truth = [t.split(tagged.SEPARATOR)[:length] for t in test[TAGS]]
        features = self.features(self.shipped_preprocessing(run), tf.ragged.constant(pieces))
        inputs = {k: v.to_tensor(shape=[None, length]).numpy() for k, v in features.items()}
        predicted = tflite.run_one_by_one(interpreter, "serving_default", inputs)["probabilities"].argmax(-1)
        names = run.preprocessing.tag_names
        right = [names[p] == t for row, tags in zip(predicted, truth, strict=True)
                 for p, t in zip(row[:len(tags)], tags, strict=True)]
        return float(np.mean(right))

    def exported_inputs(self, inputs, tflite_dir):
        card = read_card(tflite_dir)
        length, preprocessing = card["max_length"], self.preprocessor.from_card(tflite_dir, card)
        return list(inputs), {"text": np.array([t.encode("utf-8") for t in inputs], dtype=object)}, \
            self.phone_inputs(preprocessing, list(inputs), length)

    def query_rows(self, names, served, on_phone, tflite_dir):
        tag_names = read_lines(Path(tflite_dir) / TAGS_FILE)
        rows = []
        for i, name in enumerate(names):
            n = int(served["lengths"][i])
            rows.append({"input": name, "tokens": [t.decode("utf-8") for t in served["tokens"][i][:n]],
                         "saved_model": [t.decode("utf-8") for t in served["tags"][i][:n]],
                         "tflite": [tag_names[j] for j in on_phone["probabilities"][i][:n].argmax(-1)],
                         "not_labelled": int(served["input_lengths"][i]) - n})
        return rows

    def format_query(self, row):
        pairs = " ".join(f"{t}/{g}" for t, g in zip(row["tokens"], row["saved_model"], strict=True))
        more = f"  [{row['not_labelled']} more not labelled: over max_length]" if row["not_labelled"] else ""
        return f"SavedModel v{row['version']}: {pairs}  TFLite: {' '.join(row['tflite'])}{more}"


def padding_mask(features: dict):
    """True on real pieces: id 0 of the first feature is padding (`features` maps "" to 0)."""
    return next(iter(features.values())) != 0


def clean_text(text: tf.Tensor) -> tf.Tensor:
    """Invalid UTF-8 becomes U+FFFD; only the first MAX_TEXT_CHARACTERS bytes are read."""
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    return tf.strings.substr(text, 0, MAX_TEXT_CHARACTERS)


def lookup(vocabulary: list) -> keras.layers.StringLookup:
    """A vocabulary file's lines ("" and "[UNK]" first) -> a built lookup: "" -> 0, unknown -> 1."""
    layer = keras.layers.StringLookup(vocabulary=vocabulary[2:], mask_token="", oov_token="[UNK]", num_oov_indices=1)
    layer(tf.constant([""]))  # builds it: ExportArchive only tracks built layers
    return layer


def lines_text(lines: list) -> str:
    return "\n".join(lines) + "\n"


def read_lines(path: Path) -> list:
    try:
        return Path(path).read_text(encoding="utf-8").split("\n")[:-1]
    except FileNotFoundError:
        raise UserError(f"{path} is missing; the run folder is damaged") from None
