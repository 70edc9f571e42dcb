"""The contract every app module fulfils (`APP = SomeApp()` in `rnn_apps/apps/<name>.py`).

An app says what its data is, how it is preprocessed (and what of that is stored with a run), what
its Keras model is, how it predicts from CLI input, and which functions it exports: named
SavedModel signatures for TF Serving and fixed-shape builtin-op functions for TFLite. Nothing here
assumes one text input or one label output: the topology families (rnn_apps/families/) add what
the apps of one topology share.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import keras

from foundation.errors import UserError
from foundation.lazy import tensorflow as tf
from rnn_apps import config as config_lib

CARD_FILE = "model_card.json"  # beside every .tflite: what each tensor means, the files, the loop


def read_card(folder) -> dict:
    """The model card shipped in `folder` beside a .tflite: what a phone client reads first."""
    return json.loads((Path(folder) / CARD_FILE).read_text(encoding="utf-8"))


@dataclass
class Endpoint:
    """One exported function: its name, its named input specs, a function returning a dict of
    named outputs, and the Keras objects (models, lookup layers) whose state it uses."""

    name: str
    fn: object
    input_signature: list
    track: list = field(default_factory=list)


@dataclass
class TFLiteModel:
    """A `.tflite` file: its endpoints (one signature key each, converted together with builtin ops
    only: a classifier's `serving_default`, a decoder's `encode` and `decode_step`), plus files
    shipped beside it."""

    filename: str
    endpoints: list
    assets: dict = field(default_factory=dict)  # file name -> text content
    # An app's second file (a client's variant: digits' image input for MediaPipe) names its own
    # card and measures its quality itself: quality(run, test, interpreter) -> phone_metric.
    card_file: str = CARD_FILE
    quality: object = None  # None: App.phone_quality


@dataclass
class ParityCase:
    """The same inputs through Keras, the SavedModel and TFLite; `compare` names shared outputs.

    The TFLite side is either one signature run one example (batch 1) at a time on
    `tflite_inputs`, or `tflite_loop(interpreter) -> outputs`: a loop a phone would run over the
    file's signatures (a decoder's reference loop), whose outputs are compared the same way; or,
    with `tflite_file` None, nothing (a SavedModel signature no phone has)."""

    name: str
    keras_outputs: dict
    saved_model: tuple  # (signature name, {input name: array})
    tflite_file: str | None
    compare: list
    tflite_inputs: dict | None = None
    tflite_signature: str = "serving_default"
    tflite_loop: object = None
    tflite_compare: list | None = None  # what the TFLite side is compared on, if not `compare`


class App:
    name: str
    topology: str
    task: str
    default_data: tuple  # tried in order: local names under the data root, then a TFDS name
    config: dict  # defaults: config_lib.COMMON plus the app's own keys
    presets: dict  # named overrides; "tiny" is used by the tests and smoke runs
    config_checks: dict = {}  # key -> config_lib.Range for the app's own keys (COMMON's are in CHECKS)
    monitors = ("val_loss",)  # what config["monitor"] may name
    beam_search = False  # decodes with beam search: evaluate and predict take --beam

    def checks(self) -> dict:
        return {**config_lib.CHECKS, "monitor": config_lib.one_of(*self.monitors), **self.config_checks}

    # Relations between keys that ranges cannot say: (holds(config) -> bool, what it requires, with
    # {key} fields filled from the config). A config that breaks one would train a useless model
    # (every translation empty) without a word.
    config_relations = ()

    def check_relations(self, config: dict, where: str = "config") -> dict:
        for holds, requires in self.config_relations:
            if not holds(config):
                raise UserError(f"{where}: {requires.format(**config)}")
        return config

    def resolve_config(self, preset=None, overrides=None) -> dict:
        return self.check_relations(config_lib.resolve(self.config, self.presets, preset, overrides, self.checks()))

    def stored_config(self, stored, path) -> dict:
        """A run's config.json, checked like a new config: the same keys, types, ranges and relations."""
        return self.check_relations(config_lib.check_stored(stored, self.config, self.checks(), path), str(path))

    # --- data ---------------------------------------------------------------------------
    def load_data(self, data: str, data_root, config: dict, options: dict):
        """-> pipelines.splits.Splits of raw examples."""
        raise NotImplementedError

    # The app's preprocessing: a class with `fit(splits, config)` (learnt from the training split
    # only), `load(folder, config)` (read back from the files it keeps) and, on an instance,
    # `files()` -> {file name: text}, what a run folder keeps. A family ships some or all of those
    # files beside the .tflite, so the phone client reads what training wrote.
    preprocessor: type

    def fit_preprocessing(self, splits, config: dict, run_dir):
        """The preprocessor fitted on the training split, its files written to run_dir."""
        preprocessing = self.preprocessor.fit(splits, config)
        write_files(preprocessing.files(), run_dir)
        return preprocessing

    def load_preprocessing(self, run_dir, config: dict):
        return self.preprocessor.load(run_dir, config)

    def dataset(self, columns: dict, preprocessing, config: dict, shuffle_seed=None) -> tf.data.Dataset:
        """Raw split columns -> batched (inputs, targets) for Keras."""
        raise NotImplementedError

    # --- model --------------------------------------------------------------------------
    def build_model(self, config: dict, preprocessing, unroll_length=None) -> keras.Model:
        """The Keras model; with `unroll_length`, the same weights' layout unrolled for TFLite."""
        raise NotImplementedError

    def compile(self, model: keras.Model, config: dict):
        raise NotImplementedError

    def after_training(self, model: keras.Model, config: dict, preprocessing) -> bool:
        """Called with each trained model's best checkpoint: the place for weights that follow
        from the trained ones (sentiment: rows of unseen words). Returns whether it changed the
        model (then the checkpoint is saved again). Running it twice must give the same weights
        (a resumed run calls it again)."""
        return False

    def stored_sizes(self, model: keras.Model, run) -> list:
        """[(file in the run folder, entries it holds, entries the model was built for)] for every
        vocabulary and label file the run stores: `check_model` refuses a file edited since training."""
        return []

    def check_model(self, model: keras.Model, run):
        """Called when a run's model is loaded: refuse preprocessing files that do not fit the model
        (a vocabulary or label list with lines added or lost), which would otherwise give quiet wrong
        answers (every tag shifted by one). One check for every app, over `stored_sizes`."""
        for file, held, built_for in self.stored_sizes(model, run):
            if held != built_for:
                raise UserError(f"{run.dir / file} holds {held} entries but the model was built for {built_for}: "
                                "the file does not belong to this model; restore it or retrain the run")

    def for_inference(self, model: keras.Model, run) -> keras.Model:
        """The model that evaluate, predict and export use, from the trained one: the same by
        default; a model trained in mixed precision gets a float32 twin (what TFLite and the
        SavedModel compute in)."""
        return model

    def unrolled_twin(self, run, unroll_length) -> keras.Model:
        """run.model's weights in the layout `build_model(..., unroll_length)` gives (what TFLite
        converts); for an ensemble run, one such twin per member, averaged the same way."""
        twins = [self.build_model(run.config, run.preprocessing, unroll_length) for _ in range(run.config["members"])]
        twin = twins[0] if len(twins) == 1 else ensemble(twins, self.name)
        twin.set_weights(run.model.get_weights())
        return twin

    def evaluate(self, run, splits) -> dict:
        """Metrics on splits.test. A metric that is a ratio of sums over examples (accuracy, recall)
        may also give its per-example parts under "per_example": {metric path: {"correct": [...],
        "count": [...]}}, so that bench can draw a bootstrap interval over the test examples; Run.evaluate
        keeps them in their own file (PER_EXAMPLE_FILE), out of metrics.json and the printed metrics."""
        raise NotImplementedError

    # --- use ----------------------------------------------------------------------------
    def predict(self, run, inputs: list) -> list:
        """CLI inputs (strings, file paths) -> one JSON-able dict per input."""
        raise NotImplementedError

    def serving(self, run) -> tuple:
        """-> [Endpoint] for the SavedModel; one of them is named `serving_default`."""
        raise NotImplementedError

    def tflite_models(self, run) -> list:
        raise NotImplementedError

    def parity_cases(self, run, examples: dict) -> list:
        """[ParityCase] on `examples`, raw test-split columns stored with the run at training time."""
        raise NotImplementedError

    def exported_inputs(self, inputs: list, tflite_dir) -> tuple:
        """CLI inputs -> (names, SavedModel serving_default inputs, TFLite inputs), using only the
        files shipped beside the .tflite (vocabulary, model card): what a client has."""
        raise NotImplementedError

    def run_tflite(self, interpreter, tflite_inputs: dict, tflite_dir) -> dict:
        """What a phone computes for `tflite_inputs`: by default serving_default, one at a time."""
        from export import tflite

        return tflite.run_one_by_one(interpreter, "serving_default", tflite_inputs)

    def query_rows(self, names: list, served: dict, on_phone: dict, tflite_dir) -> list:
        """One JSON-able row per input: the SavedModel's and the TFLite model's answers side by side."""
        raise NotImplementedError

    def format_prediction(self, row: dict) -> str:
        """A `predict` row as one line of text (`--json` prints the row itself)."""
        raise NotImplementedError

    def format_query(self, row: dict) -> str:
        raise NotImplementedError

    # What phone_quality measures: its name, whether higher is better, and the largest loss of it a
    # quantized .tflite may show against the float one and still be the file a phone app ships.
    phone_metric = ("accuracy", True, 0.01)

    def phone_quality(self, run, test: dict, interpreter) -> float:
        """The app's own quality metric (phone_metric) of the TFLite model in `interpreter` on raw
        test columns, computed as a phone computes: batch 1, the reference step loop. Every
        quantization mode of an export is measured with it."""
        raise NotImplementedError

    def report_sections(self, run, limit: int) -> list:
        """[(title, HTML)] that `rnn-apps report` shows above the loss chart and the metrics (at
        most `limit` examples): what a person would rather look at than logs."""
        return []

    def stream(self, run, prime: str, length: int, temperature: float, top_k: int, seed: int):
        """`rnn-apps generate`: the text written after `prime`, piece by piece as it is chosen
        (apps that write text from a prime; the others refuse)."""
        from foundation.errors import UserError

        raise UserError(f"{self.name} does not write text from a prime; `generate` is for language models (charlm)")


def write_files(files: dict, folder):
    """A preprocessor's files ({name: text}) into `folder`, as UTF-8."""
    for name, text in files.items():
        (Path(folder) / name).write_text(text, encoding="utf-8")


def read_as_shipped(files: dict, read):
    """read(folder) on `files` ({name: text}: what a .tflite ships beside it) written out to a
    temporary folder as an export writes them: how parity and phone quality run an app's phone
    client on exactly what a phone gets, with no export made."""
    with tempfile.TemporaryDirectory() as folder:
        write_files(files, folder)
        return read(folder)


def float32_twin(app: App, model: keras.Model, run) -> keras.Model:
    """`model` rebuilt in float32 without dropout, same weights, compiled: what an app trained in
    mixed precision (or with dropout inside its SimpleRNN cells, whose masks draw on a seed
    variable even when not training) evaluates, predicts and exports with."""
    config = {**run.config, "mixed_precision": False, "dropout": 0.0}
    twin = app.build_model(config, run.preprocessing)
    twin.set_weights(model.get_weights())  # variables are float32 under both policies, in the same order
    app.compile(twin, config)
    return twin


def ensemble(models: list, name: str) -> keras.Model:
    """One model that averages the outputs of `models` (same inputs, same output shapes): a deep
    ensemble. The members keep their weights in order, so get/set_weights line up with a twin."""
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name) for t in models[0].inputs]
    x = inputs[0] if len(inputs) == 1 else inputs
    for i, model in enumerate(models):
        model.name = f"{name}_member_{i}"  # layer names must be unique inside the ensemble
    outputs = [keras.tree.flatten(model(x)) for model in models]
    averaged = [keras.layers.Average()(list(same)) for same in zip(*outputs, strict=True)]
    return keras.Model(x, averaged[0] if len(averaged) == 1 else averaged, name=name)
