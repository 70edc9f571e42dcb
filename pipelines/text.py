"""Word tokenisation shared by the text apps, in TF ops so the same rules run in training,
in the SavedModel's serving graph, and (TOKENISATION_RULES, in the model card) on a phone.
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

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


def standardize(text: tf.Tensor) -> tf.Tensor:
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"n't\b", " n't")
    text = tf.strings.regex_replace(text, r"'(s|re|ve|ll|d|m)\b", r" '\1")
    return tf.strings.regex_replace(text, r"([.,!?;:()\"])", r" \1 ")


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


def vectorizer(vocabulary=None, max_tokens=None) -> layers.TextVectorization:
    """Text -> token ids (ragged_ids). Adapt it on the training split, or give it a stored vocabulary."""
    return layers.TextVectorization(
        max_tokens=max_tokens, standardize=standardize, split="whitespace", output_mode="int",
        ragged=RAGGED, vocabulary=vocabulary,
    )


def adapt(texts, max_tokens: int, batch_size: int = 1024) -> layers.TextVectorization:
    layer = vectorizer(max_tokens=max_tokens)
    layer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(batch_size))
    return layer


def extend(layer: layers.TextVectorization, words) -> layers.TextVectorization:
    """A vectorizer with `layer`'s vocabulary (same ids) followed by the `words` it lacks."""
    vocabulary = layer.get_vocabulary()
    known = set(vocabulary)
    extra = [w for w in dict.fromkeys(words) if w and w not in known and len(w.split()) == 1]
    return vectorizer(vocabulary=vocabulary[2:] + extra)


def save_vocabulary(layer: layers.TextVectorization, folder: Path) -> Path:
    path = Path(folder) / VOCAB_FILE
    path.write_text("\n".join(layer.get_vocabulary()) + "\n", encoding="utf-8")
    return path


def load_vocabulary(folder: Path) -> list:
    tokens = (Path(folder) / VOCAB_FILE).read_text(encoding="utf-8").split("\n")[:-1]
    return tokens


def from_vocabulary(folder: Path) -> layers.TextVectorization:
    tokens = load_vocabulary(folder)
    # The stored file starts with the padding ("") and unknown tokens that Keras adds itself.
    layer = vectorizer(vocabulary=tokens[2:])
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
