"""tagger — many-to-many, one output per step: a part-of-speech tag for every word of a sentence.

Topology: per token, three ids [batch, time] — the lower-cased word (GloVe-initialised embedding;
GloVe words that training never saw sit in a frozen tail, placed after training as sentiment
does), its last three characters (a suffix embedding: "-ing", "-ly", "-ed" tell an unseen word's
class) and its shape (capitalised, all capitals, digits, hyphen, punctuation: 32 classes) ->
concatenated -> `depth` bidirectional SimpleRNN layers -> per-token softmax over the tags; the loss
and metrics are masked on padding.

Data: Universal Dependencies English-EWT `../shared/data/ud_english_ewt` (UPOS; `--set
tag_column=xpos` for PTB tags), any UD treebank folder; TFDS `conll2003` (`--set tag_column=pos`
or `ner`) online. See pipelines/tagged.py.

Exports (the per-step labelling family's, rnn_apps/families/label_steps.py): SavedModel
`serving_default(text: string[batch])` (raw sentences, tokenised in the graph by
TOKENISATION_RULES) and `tag_tokens(tokens: string[batch, time], "" for padding)` -> tokens, tags,
tag_ids, probabilities, lengths, input_lengths. TFLite `tagger.tflite` `serving_default(word_ids,
suffix_ids, shape_ids: int32[1, max_length])` -> probabilities [1, max_length, tags]; vocabularies
and model card beside it.

    rnn-apps train tagger --data ud_english_ewt --data-root ../shared/data --out runs/tagger
    rnn-apps evaluate runs/tagger            # accuracy, on unseen words, per tag, frequent errors
    rnn-apps predict runs/tagger "The old man the boats ." [--json]
    rnn-apps export runs/tagger --out exports
    rnn-apps query exports --name tagger "The old man the boats ."
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from foundation.lazy import tensorflow as tf
from pipelines import tagged, text
from rnn_apps import config as config_lib
from rnn_apps import word_vectors
from rnn_apps.families.label_steps import TAGS_FILE, LabelSteps, clean_text, lines_text, lookup, read_lines
from rnn_apps.layers import FrozenTailEmbedding, optional_dropout, simple_rnn_stack

WORDS, SUFFIXES, TAGS, TRAINING_WORDS = "words.txt", "suffixes.txt", TAGS_FILE, "training_words.json"
SUFFIX_LENGTH, SHAPES = 3, 32
TOKENISATION_RULES = """Raw sentences (serving_default): invalid UTF-8 becomes U+FFFD; split on whitespace; then
. , ! ? ; : ( ) " and the clitics n't 's 're 've 'll 'd 'm are split off as tokens (UD English
style). Pre-tokenised input (tag_tokens) is used as given.
Per token: word id = line of words.txt holding the lower-cased token (1 = unknown); suffix id =
line of suffixes.txt holding its last 3 characters, lower-cased (1 = unknown); shape id = 1 +
bits: 1 first character upper-case, 2 every letter upper-case, 4 holds a digit, 8 holds a hyphen,
16 no letter or digit at all. Ids 0 are padding. The first max_length tokens are tagged."""


@dataclass
class Preprocessing:
    """The lookups of words.txt and suffixes.txt, the tag names (tags.txt): what a phone reads
    (`phone_files`); and the count of words seen in training (the rest of words.txt, the vectors'
    unseen words, is the word embedding's frozen tail)."""

    words: layers.StringLookup
    suffixes: layers.StringLookup
    tag_names: list
    training_words: int
    initial_embeddings: np.ndarray | None = None  # from the word vectors, at fit time only
    has_vector: np.ndarray | None = None
    phone_files = (WORDS, SUFFIXES, TAGS)

    @classmethod
    def fit(cls, splits, config) -> Preprocessing:
        counts = Counter(t.lower() for s in splits.train["tokens"] for t in s.split(tagged.SEPARATOR))
        training_words = [w for w, _ in counts.most_common()]
        suffixes = Counter(w[-SUFFIX_LENGTH:] for w in counts.elements())
        words, initial, has_vector = training_words, None, None
        if config["word_vectors"]:
            vector_words, vectors = word_vectors.load_for(config)
            seen = set(training_words)
            words = training_words + [w for w in vector_words[:config["word_vectors_unseen_words"]] if w not in seen]
            initial, has_vector = word_vectors.embedding_matrix(["", "[UNK]"] + words, vector_words, vectors,
                                                                config["word_vectors_std"], config["seed"])
        common_suffixes = [s for s, _ in suffixes.most_common(config["max_suffixes"] - 2)]
        return cls(lookup(["", "[UNK]"] + words), lookup(["", "[UNK]"] + common_suffixes), list(splits.label_names),
                   len(training_words) + 2, initial, has_vector)

    @classmethod
    def load(cls, folder, config) -> Preprocessing:
        training_words = config_lib.load(Path(folder) / TRAINING_WORDS)["training_words"]
        return cls(*vocabularies(folder), training_words=training_words)

    @classmethod
    def from_card(cls, folder, card) -> Preprocessing:
        """The phone client's: the files shipped beside the .tflite alone."""
        return cls(*vocabularies(folder), training_words=0)

    def files(self) -> dict:
        return {WORDS: lines_text(self.words.get_vocabulary()), SUFFIXES: lines_text(self.suffixes.get_vocabulary()),
                TAGS: lines_text(self.tag_names),
                TRAINING_WORDS: json.dumps({"training_words": self.training_words}) + "\n"}


class Tagger(LabelSteps):
    name = "tagger"
    topology = "many-to-many (per step)"
    task = "part-of-speech tagging"
    default_data = ("ud_english_ewt", "conll2003")
    input_rules = TOKENISATION_RULES
    preprocessor = Preprocessing
    config = {
        **config_lib.COMMON,
        "tag_column": "upos",
        "units": 128,
        "depth": 2,
        "bidirectional": True,
        "dropout": 0.25,
        # Training only: each word is replaced by the unknown id with this probability, so the
        # model learns to tag from the suffix and shape features too, above all unseen words
        # (bench/RESULTS.md, "tagger").
        "word_dropout": 0.15,
        "embedding_dim": 50,
        # The suffix and shape features (0 leaves one out): without them unseen words are tagged
        # far worse (bench/RESULTS.md, "tagger").
        "suffix_dim": 16,
        "shape_dim": 8,
        "max_suffixes": 2000,
        "max_length": 128,  # tokens tagged per sentence; the TFLite input length
        "word_vectors": word_vectors.GLOVE_6B_50D,
        "word_vectors_std": 0.1,
        "word_vectors_unseen_words": 50000,
        "batch_size": 32,
        "epochs": 20,
        "patience": 3,
    }
    config_checks = {
        "tag_column": config_lib.Range("a tag column (upos, xpos; a TFDS feature)", lambda v: bool(v)),
        "embedding_dim": config_lib.POSITIVE,
        "suffix_dim": config_lib.NON_NEGATIVE, "shape_dim": config_lib.NON_NEGATIVE,  # 0 = the feature left out
        "max_suffixes": config_lib.at_least(3), "max_length": config_lib.POSITIVE, "word_dropout": config_lib.FRACTION,
        "word_vectors_std": config_lib.POSITIVE_NUMBER, "word_vectors_unseen_words": config_lib.NON_NEGATIVE,
        "members": config_lib.one_of(1),
    }
    presets = {
        "tiny": {"epochs": 2, "max_examples": 96, "batch_size": 16, "units": 8, "depth": 1, "embedding_dim": 8,
                 "suffix_dim": 4, "shape_dim": 4, "max_length": 24, "jit_compile": False, "word_vectors": ""},
    }

    # --- data ---------------------------------------------------------------------------
    def load_data(self, data, data_root, config, options):
        return tagged.load(data, data_root, config["tag_column"], options.get("tfds_data_dir"))

    def features(self, preprocessing, tokens: tf.RaggedTensor) -> dict:
        """Ragged token strings -> {word_ids, suffix_ids, shape_ids}, ragged int32 (TOKENISATION_RULES)."""
        flat = tokens.flat_values
        lowered = tf.strings.lower(flat, encoding="utf-8")
        start = tf.maximum(tf.strings.length(lowered, unit="UTF8_CHAR") - SUFFIX_LENGTH, 0)
        suffix = tf.strings.substr(lowered, start, tf.fill(tf.shape(start), SUFFIX_LENGTH), unit="UTF8_CHAR")
        ids = {"word_ids": preprocessing.words(lowered), "suffix_ids": preprocessing.suffixes(suffix),
               "shape_ids": shape_ids(flat)}
        return {k: tokens.with_flat_values(tf.cast(v, tf.int32)) for k, v in ids.items()}

    def augment(self, features, config, seed):
        # each word replaced by the unknown id with probability word_dropout (training batches only)
        if not config["word_dropout"]:
            return features
        return {**features, "word_ids": text.drop_words(features["word_ids"], config["word_dropout"], seed)}

    # --- model --------------------------------------------------------------------------
    def build_model(self, config, preprocessing, unroll_length=None):
        if unroll_length:
            config = {**config, "dropout": 0.0}
        inputs = {name: keras.Input((unroll_length,), dtype="int32", name=name)
                  for name in ("word_ids", "suffix_ids", "shape_ids")}
        vocabulary = preprocessing.words.vocabulary_size()
        embedding = FrozenTailEmbedding(vocabulary, config["embedding_dim"], vocabulary - preprocessing.training_words,
                                        name="word_embedding")
        x = layers.Concatenate(name="token_features")([
            embedding(inputs["word_ids"]),
            FrozenTailEmbedding(preprocessing.suffixes.vocabulary_size(), config["suffix_dim"],
                                name="suffix_embedding")(inputs["suffix_ids"]),
            FrozenTailEmbedding(SHAPES + 1, config["shape_dim"], name="shape_embedding")(inputs["shape_ids"])])
        x = simple_rnn_stack(x, config, unroll=unroll_length is not None)
        x = optional_dropout(x, config["dropout"])
        probabilities = layers.Dense(len(preprocessing.tag_names), activation="softmax", name="probabilities")(x)
        if config["word_vectors"] and not unroll_length:
            embedding.set_table(word_vectors.start_rows(preprocessing, preprocessing.words.get_vocabulary(), config))
        return keras.Model(inputs, probabilities, name=self.name)

    def after_training(self, model, config, preprocessing):
        return word_vectors.after_training(model.get_layer("word_embedding"), config, preprocessing,
                                           preprocessing.words.get_vocabulary())

    def stored_sizes(self, model, run):
        preprocessing = run.preprocessing
        return [(WORDS, preprocessing.words.vocabulary_size(), model.get_layer("word_embedding").input_dim),
                (SUFFIXES, preprocessing.suffixes.vocabulary_size(), model.get_layer("suffix_embedding").input_dim),
                *super().stored_sizes(model, run)]

    def split(self, text):
        return tokenize(text)

    def more_scores(self, splits, per_sequence):
        """Accuracy on the tokens whose word the training split does not hold (lower-cased)."""
        seen = training_words(splits)
        unseen = [[t == p for w, t, p in s if w.lower() not in seen] for s in per_sequence]
        every = [right for s in unseen for right in s]
        return {"unseen_word_tokens": len(every), "unseen_word_accuracy": float(np.mean(every)) if every else None,
                "per_example": {"unseen_word_accuracy": {"correct": [sum(u) for u in unseen],
                                                         "count": [len(u) for u in unseen]}}}


def training_words(splits) -> set:
    return set(t.lower() for s in splits.train["tokens"] for t in s.split(tagged.SEPARATOR))


def tokenize(text) -> tf.RaggedTensor:
    """Raw sentences -> ragged tokens (TOKENISATION_RULES)."""
    text = clean_text(text)
    text = tf.strings.regex_replace(text, r"(?i)(n't)\b", r" \1")
    text = tf.strings.regex_replace(text, r"(?i)('(s|re|ve|ll|d|m))\b", r" \1")
    text = tf.strings.regex_replace(text, r"([.,!?;:()\"])", r" \1 ")
    return tf.strings.split(tf.strings.strip(text))


def shape_ids(tokens: tf.Tensor) -> tf.Tensor:
    """Token strings -> 1 + shape bits (see TOKENISATION_RULES), int32."""
    bits = [tf.strings.regex_full_match(tokens, r"\p{Lu}.*"),
            tf.strings.regex_full_match(tokens, r"[^\p{Ll}]*\p{Lu}[^\p{Ll}]*"),
            tf.strings.regex_full_match(tokens, r".*\d.*"),
            tf.strings.regex_full_match(tokens, r".*-.*"),
            tf.strings.regex_full_match(tokens, r"[^\p{L}\d]+")]
    value = sum(tf.cast(b, tf.int32) * (1 << i) for i, b in enumerate(bits))
    return tf.where(tokens == "", 0, 1 + value)


def vocabularies(folder) -> tuple:
    """(words lookup, suffixes lookup, tag names) from the files a run folder and an export share."""
    folder = Path(folder)
    return lookup(read_lines(folder / WORDS)), lookup(read_lines(folder / SUFFIXES)), read_lines(folder / TAGS)



APP = Tagger()
