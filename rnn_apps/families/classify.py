"""The classifier family (one-to-one, many-to-one): an input in, one of `label_names` out, as
softmax probabilities. `digits` and `sentiment` are its apps.

The family writes once: compile (AdamW, smoothed cross-entropy, accuracy), evaluate (accuracy, loss,
confusion matrix), the named outputs of every classifier signature (SavedModel: label, label_id,
probability, probabilities; TFLite: probabilities, label_id), parity's expected outputs, the rows
of predict and query, and phone quality; for a text classifier whose words are split as MediaPipe's
RegexTokenizer splits them, the `.tflite` MediaPipe Tasks' TextClassifier runs alone
(`mediapipe_text_model`). An app writes its data, preprocessing, model, serving and TFLite
endpoints, parity cases and `exported_inputs` (its phone client: raw input -> .tflite inputs).

`TextClassifierApp` is a classifier of raw text: it writes those too (tokenisation in the
SavedModel's graph, token ids into the .tflite, vocab.txt beside it), so a text classifier
(`sentiment`) writes only its data, preprocessing and model.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from foundation.lazy import tensorflow as tf
from pipelines import text
from rnn_apps import config as config_lib
from rnn_apps.app import CARD_FILE, App, Endpoint, ParityCase, TFLiteModel, read_as_shipped, read_card
from rnn_apps.layers import SparseCrossentropy

MEDIAPIPE_VOCABULARY = "regex_vocab.txt"  # MediaPipe's "token id" lines (text.mediapipe_vocabulary)


class ClassifierApp(App):
    """Apps that map an input to one of `label_names`: softmax probabilities, accuracy."""

    monitors = ("val_loss", "val_accuracy")

    def query_rows(self, names, served, on_phone, tflite_dir):
        label_names = (Path(tflite_dir) / "labels.txt").read_text(encoding="utf-8").split("\n")[:-1]
        rows = []
        for i, name in enumerate(names):
            phone = on_phone["probabilities"][i]
            rows.append({
                "input": name,
                "saved_model": {"label": served["label"][i].decode(), "probability": float(served["probability"][i])},
                "tflite": {"label": label_names[int(np.argmax(phone))], "probability": float(phone.max())},
            })
        return rows

    def format_prediction(self, row):
        cut = "\t[cut: only the first max_length tokens were read]" if row.get("truncated") else ""
        return f"{row['label']}\t{row['probability']:.4f}\t{row['input']}{cut}"

    def format_query(self, row):
        served, phone = row["saved_model"], row["tflite"]
        return (f"SavedModel v{row['version']}: {served['label']} {served['probability']:.4f}  "
                f"TFLite: {phone['label']} {phone['probability']:.4f}  {row['input']}")

    def phone_quality(self, run, test, interpreter):
        """Accuracy of the TFLite model's most probable label, over the app's first parity case."""
        from export import parity

        probabilities = parity.phone_outputs(self.parity_cases(run, test)[0], interpreter)["probabilities"]
        return float(np.mean(probabilities.argmax(-1) == np.asarray(test["label"])))

    # --- a text classifier in MediaPipe Tasks' TextClassifier ---------------------------------
    def mediapipe_text_files(self) -> tuple:
        return f"{self.name}_text.tflite", f"{self.name}_text_card.json"

    def mediapipe_text_model(self, run, unrolled, ids_spec, card: dict, vocabulary: list) -> TFLiteModel:
        """The file MediaPipe's TextClassifier runs alone: the same unrolled model with one output,
        the class scores labelled by labels.txt, and the tokenizer (pattern, vocabulary) in its input's
        metadata; `card` is the app's own .tflite card, of a run with the "regex" tokenisation."""
        file, card_file = self.mediapipe_text_files()

        def classify_text_ids(token_ids):
            return {"probabilities": unrolled(token_ids, training=False)}

        text_card = {
            **card, "default_file": file,
            "about": "for MediaPipe Tasks' TextClassifier (and Android Studio's binding): give it the .tflite alone; "
                     "the tokenizer, its vocabulary and the labels are in its metadata",
            "input": {**card["input"], "regex_tokenizer": {"delimiter": text.REGEX_DELIMITER,
                                                           "vocabulary": MEDIAPIPE_VOCABULARY}},
            "outputs": {"probabilities": card["outputs"]["probabilities"]},
            "vocabulary": f"{MEDIAPIPE_VOCABULARY}, MediaPipe's format: a 'token id' line per spelling",
        }
        return TFLiteModel(file, [Endpoint("serving_default", classify_text_ids, [ids_spec], track=[unrolled])],
                           assets={MEDIAPIPE_VOCABULARY: text.mediapipe_vocabulary(vocabulary),
                                   "labels.txt": "\n".join(run.label_names) + "\n",
                                   card_file: json.dumps(text_card, indent=2) + "\n"},
                           card_file=card_file, quality=self.mediapipe_text_quality)

    def mediapipe_text_ids(self, run, texts: list) -> np.ndarray:
        """The ids MediaPipe's tokenizer makes of raw texts (text.regex_ids, plain Python)."""
        vocabulary = text.mediapipe_vocabulary(text.load_vocabulary(run.dir))
        return text.regex_ids(texts, vocabulary, run.config["max_length"])

    def mediapipe_text_quality(self, run, test, interpreter) -> float:
        """Accuracy of the MediaPipe file on the test texts, tokenised as MediaPipe tokenises them."""
        runner = interpreter.get_signature_runner("serving_default")
        predicted = [int(np.argmax(runner(token_ids=row[None])["probabilities"]))
                     for row in self.mediapipe_text_ids(run, list(test["text"]))]
        return float(np.mean(np.array(predicted) == np.asarray(test["label"])))

    def mediapipe_text_parity(self, run, texts: list, expected: dict, served: tuple) -> ParityCase:
        """Keras's probabilities again through the MediaPipe file, fed the ids MediaPipe's tokenizer makes."""
        return ParityCase("test sentences, MediaPipe's tokenizer", expected, served, self.mediapipe_text_files()[0],
                          ["probabilities", "label_id"],
                          tflite_inputs={"token_ids": self.mediapipe_text_ids(run, texts)},
                          tflite_compare=["probabilities"])  # the file's one output: MediaPipe's class scores

    def compile(self, model, config):
        model.compile(
            optimizer=keras.optimizers.AdamW(config_lib.learning_rate(config), weight_decay=config["weight_decay"]),
            loss=SparseCrossentropy(config["label_smoothing"]),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            jit_compile=config["jit_compile"],
        )

    def split_probabilities(self, run, columns: dict) -> tuple:
        """(probabilities [n, classes], labels [n]) of a split, in the split's order (so that
        per-example parts pair with a baseline's on the same examples): through `dataset` by
        default, whose batches keep the order; an app whose batches reorder (by length) overrides it."""
        probabilities, labels = [], []
        for inputs, targets in self.dataset(columns, run.preprocessing, run.config):
            probabilities.append(run.model(inputs, training=False).numpy())
            labels.append(targets.numpy())
        return np.concatenate(probabilities), np.concatenate(labels)

    def evaluate(self, run, splits) -> dict:
        probabilities, labels = self.split_probabilities(run, splits.test)
        predicted = probabilities.argmax(-1)
        n = len(run.label_names)
        confusion = np.zeros((n, n), dtype=int)
        np.add.at(confusion, (labels, predicted), 1)
        eps = 1e-7
        loss = float(-np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], eps, 1.0))))
        return {
            "examples": int(len(labels)),
            "accuracy": float((predicted == labels).mean()),
            "loss": loss,
            "labels": list(run.label_names),
            "confusion_matrix": confusion.tolist(),  # rows: true label, columns: predicted
            "per_example": {"accuracy": {"correct": (predicted == labels).astype(int).tolist(),
                                         "count": [1] * len(labels)}},
        }


class TextClassifierApp(ClassifierApp):
    """A classifier of raw text (many-to-one): the preprocessing holds a TextVectorization
    (`vectorizer`, its vocabulary kept in the run as vocab.txt, `text.vocabulary_text`) and the
    config `max_length` and `tokenisation`; the model reads token ids [batch, max_length]. Written
    once here: predict, the SavedModel (tokenisation in the graph), the .tflite with vocab.txt and
    labels.txt (and MediaPipe's file for `tokenisation=regex`), the phone client (`phone_ids`, from
    the shipped files alone) and parity."""

    def split_probabilities(self, run, columns):
        # in the split's order (the training batches are grouped by length)
        return run.model.predict(self.padded_ids(run, list(columns["text"])), batch_size=256, verbose=0), \
            np.asarray(columns["label"])

    def padded_ids(self, run, texts) -> np.ndarray:
        return text.padded_ids(run.preprocessing.vectorizer, texts, run.config["max_length"])

    def predict(self, run, inputs):
        probabilities = run.model.predict(self.padded_ids(run, inputs), verbose=0) if inputs else []
        rows = prediction_rows(inputs, probabilities, run.label_names)
        cut = text.truncated(run.preprocessing.vectorizer, list(inputs), run.config["max_length"]).numpy() \
            if inputs else []
        return [{**row, "truncated": bool(was_cut)} for row, was_cut in zip(rows, cut, strict=True)]

    def serving(self, run):
        vectorizer, model, length = run.preprocessing.vectorizer, run.model, run.config["max_length"]

        def classify_text(text_batch):
            ids = text.token_ids(vectorizer, text_batch, length).to_tensor(shape=[None, length])
            return {**classification_outputs(model(tf.cast(ids, tf.int32), training=False), run.label_names),
                    # more than max_length tokens: the tail was not read (said, not dropped silently)
                    "truncated": text.truncated(vectorizer, text_batch, length)}

        return [Endpoint("serving_default", classify_text, [tf.TensorSpec([None], tf.string, name="text")],
                         track=[vectorizer, model])]

    def phone_files(self, run) -> dict:
        """What ships beside the .tflite: vocab.txt, labels.txt and the model card (its input's
        length, padding, id range and the tokenisation rules a client follows)."""
        length, tokenisation = run.config["max_length"], run.config["tokenisation"]
        vectorizer = run.preprocessing.vectorizer  # the vocabulary the model was built for: vocab.txt's
        card = {
            "app": self.name, "topology": self.topology, "task": self.task,
            "input": {"name": "token_ids", "dtype": "int32", "shape": [1, length],
                      "padding": f"right-pad with 0 to exactly {length} ids; ids after {length} are dropped",
                      "id_range": f"0 = padding, 1 = unknown; an id < 0 or >= {vectorizer.vocabulary_size()} "
                                  "(the vocabulary size) is read as 1, unknown"},
            "outputs": {"probabilities": f"float32 [1, {len(run.label_names)}], order of labels.txt",
                        "label_id": "int32 [1], index into labels.txt"},
            "tokenizer": tokenisation,
            "tokenisation": text.rules(tokenisation),
            "vocabulary": "vocab.txt, UTF-8, line i holds the token with id i",
            "signature": "serving_default",
        }
        return {text.VOCAB_FILE: text.vocabulary_text(vectorizer), "labels.txt": "\n".join(run.label_names) + "\n",
                CARD_FILE: json.dumps(card, indent=2) + "\n"}

    def phone_ids(self, texts: list, folder) -> np.ndarray:
        """The phone client: raw texts -> the .tflite's token_ids [n, max_length], from the files
        shipped beside it (vocab.txt and the card) alone. Parity, query and phone quality run it."""
        card = read_card(folder)
        vectorizer = text.from_vocabulary(folder, card.get("tokenizer", "ptb"))
        return text.padded_ids(vectorizer, texts, card["input"]["shape"][1])

    def tflite_models(self, run):
        length = run.config["max_length"]
        unrolled = self.unrolled_twin(run, length)
        ids_spec = tf.TensorSpec([None, length], tf.int32, name="token_ids")

        def classify_ids(token_ids):
            return phone_outputs(unrolled(token_ids, training=False))

        files = self.phone_files(run)
        models = [TFLiteModel(f"{self.name}.tflite", [Endpoint("serving_default", classify_ids, [ids_spec],
                                                               track=[unrolled])], assets=files)]
        if run.config["tokenisation"] == "regex":  # split as MediaPipe splits: a file its TextClassifier runs
            models.append(self.mediapipe_text_model(run, unrolled, ids_spec, json.loads(files[CARD_FILE]),
                                                    run.preprocessing.vectorizer.get_vocabulary()))
        return models

    def exported_inputs(self, inputs, tflite_dir):
        return list(inputs), {"text": np.array([t.encode("utf-8") for t in inputs], dtype=object)}, \
            {"token_ids": self.phone_ids(list(inputs), tflite_dir)}

    def parity_cases(self, run, examples):
        """Test sentences: Keras on the run's own tokenisation; the SavedModel on the raw text; the
        .tflite on the phone client's ids, made from the shipped files written out as the export does."""
        texts = list(examples["text"])
        expected = expected_outputs(run.model.predict(self.padded_ids(run, texts), verbose=0))
        phone_ids = read_as_shipped(self.phone_files(run), lambda folder: self.phone_ids(texts, folder))
        served = ("serving_default", {"text": np.array([t.encode("utf-8") for t in texts], dtype=object)})
        cases = [ParityCase("test sentences", expected, served, f"{self.name}.tflite", ["probabilities", "label_id"],
                            tflite_inputs={"token_ids": phone_ids})]
        if run.config["tokenisation"] == "regex":
            cases.append(self.mediapipe_text_parity(run, texts, expected, served))
        return cases


def classification_outputs(probabilities: tf.Tensor, label_names: list) -> dict:
    """The named outputs of every classifier signature: label, label_id, probability, probabilities."""
    label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    return {
        "label": tf.gather(tf.constant(label_names), label_id),
        "label_id": label_id,
        "probability": tf.reduce_max(probabilities, axis=-1),
        "probabilities": probabilities,
    }


def phone_outputs(probabilities: tf.Tensor) -> dict:
    """The named outputs of every classifier's TFLite signature (numbers only: no string ops)."""
    return {"probabilities": probabilities, "label_id": tf.argmax(probabilities, axis=-1, output_type=tf.int32)}


def expected_outputs(probabilities: np.ndarray) -> dict:
    """What parity compares for classifiers: Keras's probabilities and the label ids they imply."""
    return {"probabilities": probabilities, "label_id": probabilities.argmax(-1).astype(np.int32)}


def prediction_rows(inputs: list, probabilities: np.ndarray, label_names: list) -> list:
    rows = []
    for item, probs in zip(inputs, probabilities, strict=True):
        i = int(np.argmax(probs))
        rows.append({"input": item, "label": label_names[i], "probability": float(probs[i])})
    return rows
