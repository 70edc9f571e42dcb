"""running parity — an app defined in this one file, to show (and test) that adding an app touches
nothing else: the contract tests train it tiny, export it, check parity and query it like the
seven apps of rnn_apps/apps/.

Topology: many-to-many, one output per step (the per-step labelling family). Input: a string of
bits, "0 1 1 0 1"; output per bit: "even" or "odd", the parity of the ones read so far. The answer
at step t needs every step before it, so only the recurrence can give it.

Data: synthetic, made from the seed (no files). Shapes: symbol_ids int32 [batch, time] ->
probabilities [batch, time, 2]. An app outside rnn_apps/apps/ is named by its module path:

    rnn-apps train tests.app_running_parity --out runs/parity
    rnn-apps predict runs/parity "1 0 1 1"
"""

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipelines import tagged
from pipelines.splits import Splits
from rnn_apps import config as config_lib
from rnn_apps.families.label_steps import TAGS_FILE, LabelSteps, lines_text, lookup, read_lines
from rnn_apps.layers import simple_rnn_stack

SYMBOLS = "symbols.txt"
SPLIT_SIZES = {"train": 800, "validation": 100, "test": 100}


@dataclass
class Preprocessing:
    """The symbols' lookup and the two tags: both files ship beside the .tflite."""

    symbols: keras.layers.StringLookup
    tag_names: list
    phone_files = (SYMBOLS, TAGS_FILE)

    @classmethod
    def fit(cls, splits, config):
        return cls(lookup(["", "[UNK]", "0", "1"]), list(splits.label_names))

    @classmethod
    def load(cls, folder, config):
        return cls(lookup(read_lines(Path(folder) / SYMBOLS)), read_lines(Path(folder) / TAGS_FILE))

    @classmethod
    def from_card(cls, folder, card):
        return cls.load(folder, None)  # the run folder and the phone's files hold the same two

    def files(self):
        return {SYMBOLS: lines_text(self.symbols.get_vocabulary()), TAGS_FILE: lines_text(self.tag_names)}


class RunningParity(LabelSteps):
    name = "tests.app_running_parity"
    topology = "many-to-many (per step)"
    task = "the parity of the ones read so far, per bit"
    default_data = ("synthetic",)
    preprocessor = Preprocessing
    input_rules = "Split on whitespace; symbol id = line of symbols.txt holding the piece (1 = unknown, 0 = padding)."
    config = {**config_lib.COMMON, "units": 16, "max_length": 20, "epochs": 20}
    config_checks = {"max_length": config_lib.POSITIVE}
    presets = {"tiny": {"epochs": 2, "units": 4, "max_length": 12, "batch_size": 16}}

    def load_data(self, data, data_root, config, options):
        rng = np.random.default_rng(config["seed"])
        splits = {}
        for split, size in SPLIT_SIZES.items():
            bits = [rng.integers(0, 2, rng.integers(1, 16)) for _ in range(size)]
            parities = [["odd" if p else "even" for p in np.cumsum(b) % 2] for b in bits]
            splits[split] = tagged.joined([[str(b) for b in row] for row in bits], parities)
        return Splits("synthetic", **splits, label_names=["even", "odd"], origin=dict.fromkeys(splits, "random bits"))

    def features(self, preprocessing, pieces):
        return {"symbol_ids": pieces.with_flat_values(tf.cast(preprocessing.symbols(pieces.flat_values), tf.int32))}

    def build_model(self, config, preprocessing, unroll_length=None):
        ids = keras.Input((unroll_length,), dtype="int32", name="symbol_ids")
        x = keras.layers.Embedding(preprocessing.symbols.vocabulary_size(), 4, mask_zero=True)(ids)
        x = simple_rnn_stack(x, config, unroll=unroll_length is not None)
        probabilities = keras.layers.Dense(len(preprocessing.tag_names), activation="softmax", name="probabilities")(x)
        return keras.Model({"symbol_ids": ids}, probabilities, name="running_parity")


APP = RunningParity()
