"""charlm — many-to-many while training (the next character at every step), one-to-many while
writing (a prime in, text out, one character at a time): the lecture's character language model.

Topology: character ids [batch, window] -> Embedding -> `depth` stacked SimpleRNN layers of
`units` -> Dense logits [batch, window, vocabulary] for the next character at every step. Trained
on shuffled windows of `window` characters (truncated backpropagation through time), each from a
zero state: carrying the state across consecutive windows in training (stateful batches: `batch`
streams read side by side) scored worse on validation (bench/RESULTS.md, "charlm"), since
consecutive batches are then far from independent. Reading a
whole text (evaluate, `score`, a prime) carries the state from window to window: the trained
layers' cells in `keras.layers.RNN` wrappers that return their state (`Reader`). Reading,
writing, scoring and the exports are the language-model family's (rnn_apps/families/language_model.py).
Writing: the same cells on one step (`step`), driven by the one loop in `rnn_apps/decoding.py`
(greedy, or sampling with a temperature, top-k and a seed).

Data: `../shared/data/tiny_shakespeare` (first 90% of the characters train, next 5% validate,
last 5% test), any UTF-8 text file (`--data FILE.txt`, split the same way), TFDS
`tiny_shakespeare` online. See pipelines/characters.py.

Exports: SavedModel `generate(prime: string[batch], length: int32, temperature: float32, top_k:
int32, seed: int64)` -> text, token_ids, lengths (and the options as applied);
`serving_default(prime: string[batch])`, the same with SERVED_DEFAULTS (every input batched: TF
Serving's row form and batching work); and
`score(text: string[batch])` -> nats_per_char, bits_per_char, characters. TFLite `charlm.tflite`
with one signature a phone drives character by character (export/step_loop.py is the reference
loop): `step(token: int32[1], state_0 .. state_{depth-1}: float32[1, units])` ->
log_probabilities, state_0 ...; vocabulary.json and model_card.json beside it.

    rnn-apps train charlm --data tiny_shakespeare --data-root ../shared/data --out runs/charlm
    rnn-apps evaluate runs/charlm          # nats and bits per character, perplexity, a sample
    rnn-apps generate runs/charlm --prime "ROMEO:" --length 300 --temperature 0.8 --seed 1
    rnn-apps predict runs/charlm "To be, or not to be"   # its loss, and the likeliest continuation
    rnn-apps export runs/charlm --out exports
    rnn-apps query exports --name charlm "ROMEO:"
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import keras
from keras import layers

from pipelines import characters
from rnn_apps import config as config_lib
from rnn_apps.families.language_model import VOCABULARY, LanguageModelApp
from rnn_apps.layers import FrozenTailEmbedding, simple_rnn_stack


@dataclass
class Preprocessing:
    vocabulary: list  # id -> character; 0 padding "", 1 unknown

    @classmethod
    def fit(cls, splits, config) -> Preprocessing:
        return cls(characters.build_vocabulary(splits.train["text"][0]))

    @classmethod
    def load(cls, folder, config) -> Preprocessing:
        return cls(characters.load_vocabulary(Path(folder) / VOCABULARY))

    def files(self) -> dict:
        return {VOCABULARY: characters.vocabulary_text(self.vocabulary)}

    @property
    def size(self) -> int:
        return len(self.vocabulary)

    @cached_property
    def lookup(self) -> layers.StringLookup:
        """Characters -> ids in TF ops; one layer, so every exported signature tracks the same table."""
        return characters.lookup(self.vocabulary)


class CharLM(LanguageModelApp):
    name = "charlm"
    topology = "many-to-many / one-to-many"
    task = "character language model"
    default_data = ("tiny_shakespeare",)
    preprocessor = Preprocessing
    phone_metric = ("nats_per_char", False, 0.02)
    config = {
        **config_lib.COMMON,
        # Issue 9's prototype: Embedding 64 -> SimpleRNN 512 -> SimpleRNN 512, windows of 128,
        # batch 128, Adam 2e-3 with clipping and a decaying rate.
        "units": 512,
        "depth": 2,
        "embedding_dim": 64,
        "window": 128,
        "batch_size": 128,
        "learning_rate": 2e-3,
        # The rate halves every this many steps (0 = constant). Chosen with dropout by a sweep at the
        # step counts the budget allows (bench/RESULTS.md, "charlm"): a constant rate without dropout
        # overfits, a shorter half-life stops learning too early.
        "lr_half_life_steps": 1500,
        "dropout": 0.1,
        "clipnorm": 1.0,
        "recurrent_initializer": "orthogonal",  # or "identity": h_(t-1) passed on as it is at first
        # Train in bfloat16 (weights float32): faster steps on CPUs with AMX units (bench/RESULTS.md);
        # evaluate, predict and export use a float32 twin.
        "mixed_precision": True,
        # An epoch budget, the same model on every machine: what the earlier clock budget reached on
        # the 2-core reference machine (bench/RESULTS.md, "charlm", gives its time).
        "epochs": 44,
        "patience": 3,
        # XLA made a step several times slower here (bench/RESULTS.md, "charlm").
        "jit_compile": False,
        "max_characters": 0,  # 0 = all; otherwise the first this many characters of every split (tests)
    }
    config_checks = {
        **LanguageModelApp.config_checks,
        "embedding_dim": config_lib.POSITIVE,
        "window": config_lib.at_least(2),
        "max_characters": config_lib.NON_NEGATIVE,
        "recurrent_initializer": config_lib.one_of("orthogonal", "identity"),
        "bidirectional": config_lib.one_of(False),  # a language model reads left to right
    }
    presets = {
        "tiny": {"epochs": 2, "units": 16, "embedding_dim": 8, "window": 16, "batch_size": 8,
                 "max_characters": 3000, "mixed_precision": False},
    }

    # --- data ---------------------------------------------------------------------------
    def load_data(self, data, data_root, config, options):
        return characters.load(data, data_root, options.get("tfds_data_dir")).first_characters(
            config["max_characters"])

    def dataset(self, columns, preprocessing, config, shuffle_seed=None):
        ids = characters.ids_of(columns["text"][0], preprocessing.vocabulary)
        return characters.windows(ids, config["window"], config["batch_size"], shuffle_seed)

    # --- model --------------------------------------------------------------------------
    def build_model(self, config, preprocessing, unroll_length=None):
        policy = "mixed_bfloat16" if config["mixed_precision"] else "float32"
        ids = keras.Input((None,), dtype="int32", name="ids")
        # No padding in training windows: no mask, so the RNN runs its plain (faster) loop.
        x = FrozenTailEmbedding(preprocessing.size, config["embedding_dim"], mask_zero=False, name="embedding",
                                dtype=policy)(ids)
        initializer = {"orthogonal": "orthogonal", "identity": keras.initializers.Identity()}[
            config["recurrent_initializer"]]
        x = simple_rnn_stack(x, config, recurrent_initializer=initializer, dtype=policy)
        if config["dropout"]:
            x = layers.Dropout(config["dropout"], dtype=policy)(x)
        logits = layers.Dense(preprocessing.size, name="logits", dtype="float32")(x)  # a float32 softmax
        return keras.Model(ids, logits, name=self.name)

    def stored_sizes(self, model, run):
        return [(VOCABULARY, run.preprocessing.size, model.get_layer("embedding").input_dim)]


APP = CharLM()
