"""Word tokenisation shared by the text apps, in TF ops so the same rules run in training,
in the SavedModel's serving graph, and (the rules, in the model card) on a phone.

Two tokenisations (`TOKENISATIONS`): "ptb", the Penn Treebank style the public sentiment data is
written in (TOKENISATION_RULES), and "regex", what MediaPipe's RegexTokenizer can express
(REGEX_RULES): a split on one RE2 pattern and an exact vocabulary lookup, so that MediaPipe's
TextClassifier runs the .tflite alone and gives the SavedModel's answer.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
from keras import layers

from foundation.lazy import tensorflow as tf

PADDING_ID, UNKNOWN_ID = 0, 1
MAX_BYTES_PER_TOKEN = 32
VOCAB_FILE = "vocab.txt"

# What `token_ids` does, for the model card a phone developer reimplements it from.
TOKENISATION_RULES = """SST-2's PTB style, which the public sentiment data uses:
  1. keep the first MAX_BYTES_PER_TOKEN * max_length bytes (a 1 MB string costs no more than that);
  2. replace invalid UTF-8 with U+FFFD, lower-case (Unicode-aware);
  3. split off "n't" and the clitics 's 're 've 'll 'd 'm, and each of . , ! ? ; : ( ) " as a token;
  4. split on whitespace; look up each token in vocab.txt (line i = id i; 0 = padding, 1 = unknown).""".replace(
    "MAX_BYTES_PER_TOKEN", str(MAX_BYTES_PER_TOKEN))


TOKENISATIONS = ("ptb", "regex")
# MediaPipe's RegexTokenizer splits on this RE2 pattern (the SavedModel too): in RE2, \w is ASCII
# letters, digits and "_", so any other character separates tokens; apostrophes stay in words.
REGEX_DELIMITER = r"[^\w']+"
REGEX_RULES = """MediaPipe's RegexTokenizer, as the .tflite's metadata declares it:
  1. keep the first MAX_BYTES_PER_TOKEN * max_length bytes (MediaPipe: the whole text; the same first tokens);
  2. split on the RE2 pattern DELIMITER (\\w: ASCII letters, digits, _): punctuation and non-ASCII
     letters separate words;
  3. look each token up exactly in the vocabulary, which lists every lower-case word also Capitalised and
     in UPPER case with the same id (the SavedModel folds those three spellings to lower case); any other
     token is 1, unknown; keep the first max_length ids and right-pad with 0.""".replace(
    "MAX_BYTES_PER_TOKEN", str(MAX_BYTES_PER_TOKEN)).replace("DELIMITER", REGEX_DELIMITER)
PAD_TOKEN, UNKNOWN_TOKEN = "<PAD>", "<UNKNOWN>"  # MediaPipe's names for ids 0 and 1


def rules(tokenisation: str) -> str:
    return REGEX_RULES if tokenisation == "regex" else TOKENISATION_RULES


def standardize(text: tf.Tensor) -> tf.Tensor:
    text = tf.strings.lower(_valid_utf8(text), encoding="utf-8")
    text = tf.strings.regex_replace(text, r"n't\b", " n't")
    text = tf.strings.regex_replace(text, r"'(s|re|ve|ll|d|m)\b", r" '\1")
    return tf.strings.regex_replace(text, r"([.,!?;:()\"])", r" \1 ")


def _valid_utf8(text: tf.Tensor) -> tf.Tensor:
    return tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)


def regex_split(text: tf.Tensor) -> tf.RaggedTensor:
    """The "regex" tokenisation: tokens split on REGEX_DELIMITER, case folded as the vocabulary
    MediaPipe reads lists them (`fold_case`)."""
    spaced = tf.strings.regex_replace(_valid_utf8(text), REGEX_DELIMITER, " ")
    return tf.ragged.map_flat_values(fold_case, tf.strings.split(tf.strings.strip(spaced)))


def fold_case(tokens: tf.Tensor) -> tf.Tensor:
    """A token that is a word written lower-case, Capitalised or in UPPER case -> the lower-case word;
    any other token ("McQueen") as it is: exactly the spellings `mediapipe_vocabulary` lists."""
    lower = tf.strings.lower(tokens)
    length = tf.strings.length(lower)
    capitalised = tf.strings.upper(tf.strings.substr(lower, tf.zeros_like(length), tf.minimum(length, 1))) + \
        tf.strings.substr(lower, tf.minimum(length, 1), length)
    folded = (tokens == lower) | (tokens == tf.strings.upper(lower)) | (tokens == capitalised)
    return tf.where(folded, lower, tokens)


def mediapipe_vocabulary(vocabulary: list) -> str:
    """vocab.txt for MediaPipe's RegexTokenizer: "token id" lines, <PAD> 0 and <UNKNOWN> 1 first, each
    lower-case word also Capitalised and in UPPER case (what `fold_case` maps back to it)."""
    lines, seen = [f"{PAD_TOKEN} {PADDING_ID}", f"{UNKNOWN_TOKEN} {UNKNOWN_ID}"], set()
    for index, word in enumerate(vocabulary[2:], start=2):
        spellings = (word, word.capitalize(), word.upper()) if word.isascii() and word == word.lower() else (word,)
        for spelling in dict.fromkeys(spellings):
            if spelling and spelling not in seen and " " not in spelling:
                seen.add(spelling)
                lines.append(f"{spelling} {index}")
    return "\n".join(lines) + "\n"


def regex_ids(texts, vocabulary_lines: str, max_length: int) -> np.ndarray:
    """The phone client of the "regex" tokenisation in plain Python, as MediaPipe's RegexTokenizer
    runs it: int32 ids [batch, max_length] from `mediapipe_vocabulary`'s lines."""
    index = {}
    for line in vocabulary_lines.split("\n"):
        if line:
            token, number = line.rsplit(" ", 1)
            index[token] = int(number)
    rows = []
    for item in texts:
        # the bytes the SavedModel reads (truncate_bytes); a character cut in two separates words
        kept = item.encode("utf-8")[:MAX_BYTES_PER_TOKEN * max_length].decode("utf-8", "replace")
        tokens = [t for t in re.split(REGEX_DELIMITER, kept, flags=re.ASCII) if t][:max_length]
        ids = [index.get(t, UNKNOWN_ID) for t in tokens]
        rows.append(ids + [PADDING_ID] * (max_length - len(ids)))
    return np.array(rows, np.int32).reshape(len(rows), max_length)


# PTB-tokenised sources (SST-2, rt-polarity) split "doesn't" into "does n't" and "film's" into
# "film 's"; a regex tokenizer reading what a person types sees "doesn't" and "film's".
_PTB_CLITIC = re.compile(r"(\w) (n't|'s|'re|'ve|'ll|'d|'m)\b")
_PTB_BRACKETS = {"-lrb-": "(", "-rrb-": ")", "-LRB-": "(", "-RRB-": ")"}


def detokenize_ptb(texts) -> np.ndarray:
    """PTB-tokenised texts with their clitics joined back to the word, as people write them."""
    def join(line: str) -> str:
        for bracket, character in _PTB_BRACKETS.items():
            line = line.replace(bracket, character)
        return _PTB_CLITIC.sub(r"\1\2", line)
    return np.array([join(str(t)) for t in texts], dtype=object)


def truncate_bytes(text: tf.Tensor, max_length: int) -> tf.Tensor:
    return tf.strings.substr(text, 0, MAX_BYTES_PER_TOKEN * max_length)


# Keras 3 builds a ragged TextVectorization on the TensorFlow backend only; on JAX (training there,
# `KERAS_BACKEND=jax`) it pads with 0 and `ragged_ids` makes the rows ragged again.
RAGGED = keras.backend.backend() == "tensorflow"


def ragged_ids(layer: layers.TextVectorization, texts) -> tf.RaggedTensor:
    """layer(texts) as ragged int64 ids on any Keras backend (id 0, padding, is never a token)."""
    ids = layer(texts)
    if isinstance(ids, tf.RaggedTensor):
        return ids
    dense = tf.cast(ids if tf.is_tensor(ids) else tf.convert_to_tensor(np.asarray(ids)), tf.int64)
    return tf.RaggedTensor.from_tensor(dense, padding=PADDING_ID)


def vectorizer(vocabulary=None, max_tokens=None, tokenisation="ptb") -> layers.TextVectorization:
    """Text -> token ids (ragged_ids). Adapt it on the training split, or give it a stored vocabulary."""
    regex = tokenisation == "regex"
    return layers.TextVectorization(
        max_tokens=max_tokens, standardize=None if regex else standardize,
        split=regex_split if regex else "whitespace", output_mode="int", ragged=RAGGED, vocabulary=vocabulary,
    )


def adapt(texts, max_tokens: int, batch_size: int = 1024, tokenisation="ptb") -> layers.TextVectorization:
    layer = vectorizer(max_tokens=max_tokens, tokenisation=tokenisation)
    layer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(batch_size))
    return layer


def extend(layer: layers.TextVectorization, words, tokenisation="ptb") -> layers.TextVectorization:
    """A vectorizer with `layer`'s vocabulary (same ids) followed by the `words` it lacks."""
    vocabulary = layer.get_vocabulary()
    known = set(vocabulary)
    extra = [w for w in dict.fromkeys(words) if w and w not in known and len(w.split()) == 1]
    return vectorizer(vocabulary=vocabulary[2:] + extra, tokenisation=tokenisation)


def vocabulary_text(layer: layers.TextVectorization) -> str:
    """VOCAB_FILE's text: token i on line i, padding ("") and unknown first."""
    return "\n".join(layer.get_vocabulary()) + "\n"


def load_vocabulary(folder: Path) -> list:
    tokens = (Path(folder) / VOCAB_FILE).read_text(encoding="utf-8").split("\n")[:-1]
    return tokens


def from_vocabulary(folder: Path, tokenisation="ptb") -> layers.TextVectorization:
    tokens = load_vocabulary(folder)
    # The stored file starts with the padding ("") and unknown tokens that Keras adds itself.
    layer = vectorizer(vocabulary=tokens[2:], tokenisation=tokenisation)
    layer(tf.constant([""]))  # builds it: ExportArchive only tracks built layers
    return layer


def token_ids(layer: layers.TextVectorization, texts, max_length: int) -> tf.RaggedTensor:
    """A batch of strings -> ragged ids, at most max_length per text."""
    texts = truncate_bytes(tf.convert_to_tensor(texts, tf.string), max_length)
    return ragged_ids(layer, texts)[:, :max_length]


def truncated(layer: layers.TextVectorization, texts, max_length: int) -> tf.Tensor:
    """bool [batch]: the text holds more than `max_length` tokens (or more bytes than `token_ids`
    reads), so the model does not read its tail: what a signature reports instead of cutting silently."""
    texts = tf.convert_to_tensor(texts, tf.string)
    cut = MAX_BYTES_PER_TOKEN * max_length
    counted = ragged_ids(layer, tf.strings.substr(texts, 0, cut + 1)).row_lengths()
    return (counted > max_length) | (tf.strings.length(texts) > cut)


def padded_ids(layer: layers.TextVectorization, texts, max_length: int) -> np.ndarray:
    """A batch of strings -> int32 ids [batch, max_length], right-padded with PADDING_ID: the
    fixed-length input the TFLite model takes."""
    ids = token_ids(layer, list(texts), max_length)
    return ids.to_tensor(shape=[None, max_length]).numpy().astype(np.int32)


def drop_words(ids: tf.Tensor, rate: float, seed: int) -> tf.Tensor:
    """Replace each real token (not padding) by the unknown id with probability `rate`."""
    hit = tf.random.uniform(tf.shape(ids), seed=seed) < rate
    return tf.where(tf.logical_and(hit, ids != PADDING_ID), tf.cast(UNKNOWN_ID, ids.dtype), ids)
