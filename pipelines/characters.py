"""Plain text for character language models: one long text per split, its character vocabulary,
and the training windows (truncated backpropagation through time).

`--data` resolves, in this order:
  1. a UTF-8 text file (`--data FILE.txt`), or a folder holding exactly one `.txt` file
     (`../shared/data/tiny_shakespeare/input.txt`);
  2. a bare name under the data root (`tiny_shakespeare`);
  3. a TFDS name (`tiny_shakespeare`, with its own train/validation/test texts).
A local text is split by position: the first 90% of its characters train, the next 5% validate,
the last 5% test (SPLIT_FRACTIONS). Each split is one example, `{"text": [the whole split]}`.

Characters are Unicode code points (invalid UTF-8 reads as U+FFFD). The vocabulary is every
character of the training text, most frequent first, after id 0 (padding, never a character) and
id 1 (unknown: any character the training text lacks).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
from keras import layers

from foundation.errors import UserError
from foundation.lazy import tensorflow as tf
from pipelines import tfds_source
from pipelines.splits import SPLIT_NAMES, Splits, local_path, not_found

PADDING_ID, UNKNOWN_ID = 0, 1
UNKNOWN = "[UNK]"
SPLIT_FRACTIONS = (0.90, 0.05, 0.05)


def load(spec: str, data_root, tfds_data_dir=None) -> Splits:
    path = local_path(spec, data_root)
    if path.is_dir():
        texts = sorted(path.glob("*.txt"))
        if len(texts) != 1:
            raise UserError(f"{path} holds {len(texts)} .txt files; expected exactly one text to model "
                            "(or pass --data FILE.txt)")
        path = texts[0]
    if path.is_file():
        return _text_file(path)
    if tfds_source.exists(spec):
        return _tfds(spec, tfds_data_dir)
    raise not_found("text", spec, "a text file or a folder holding one", data_root)


def _text_file(path: Path) -> Splits:
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    if len(text) < 100:
        raise UserError(f"{path} holds {len(text)} characters; a language model needs a longer text")
    ends = np.cumsum([round(f * len(text)) for f in SPLIT_FRACTIONS[:2]])
    parts = (text[:ends[0]], text[ends[0]:ends[1]], text[ends[1]:])
    origin = {split: f"{path} characters {start:,}-{start + len(part):,} ({fraction:.0%})"
              for split, part, start, fraction in zip(SPLIT_NAMES, parts, (0, *ends), SPLIT_FRACTIONS, strict=True)}
    columns = [{"text": np.array([part], dtype=object)} for part in parts]
    return Splits(path.stem if path.stem != "input" else path.parent.name, *columns, [], origin, one_text=True)


def _tfds(spec: str, data_dir) -> Splits:
    """TFDS text datasets with one `text` feature (tiny_shakespeare: one example per split)."""

    def convert(columns):
        if "text" not in columns:
            raise UserError(f"TFDS {spec!r} has no `text` feature (it has {', '.join(sorted(columns))})")
        return {"text": np.array(["".join(t.decode("utf-8", "replace") for t in columns["text"])], dtype=object)}

    return dataclasses.replace(tfds_source.load(spec, 0, convert, data_dir, splits=SPLIT_NAMES, label_names=[]),
                               one_text=True)


def characters(text: str) -> int:
    return len(text)


def build_vocabulary(text: str) -> list:
    """id -> character: padding "", unknown, then the text's characters, most frequent first."""
    counts = Counter(text)
    return ["", UNKNOWN] + sorted(counts, key=lambda c: (-counts[c], c))


def vocabulary_text(vocabulary: list) -> str:
    """The vocabulary file's text: JSON, not one character a line, as it holds the newline itself."""
    return json.dumps(vocabulary, ensure_ascii=False) + "\n"


def load_vocabulary(path: Path) -> list:
    try:
        vocabulary = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} is missing; the run folder is damaged") from None
    except (ValueError, UnicodeDecodeError):
        vocabulary = None
    if not (isinstance(vocabulary, list) and len(vocabulary) > 2 and vocabulary[:2] == ["", UNKNOWN]
            and all(isinstance(c, str) and len(c) == 1 for c in vocabulary[2:])):
        raise UserError(f"{path} is not a character vocabulary (a JSON list: \"\", \"{UNKNOWN}\", then single "
                        "characters); the run folder is damaged")
    return vocabulary


def ids_of(text: str, vocabulary: list) -> np.ndarray:
    """A text -> int32 character ids (unknown characters -> UNKNOWN_ID), in NumPy for whole splits."""
    index = {c: i for i, c in enumerate(vocabulary) if i >= 2}
    return np.fromiter((index.get(c, UNKNOWN_ID) for c in text), dtype=np.int32, count=len(text))


def lookup(vocabulary: list) -> layers.StringLookup:
    """Characters (strings) -> ids in TF ops, for the serving graph."""
    layer = layers.StringLookup(vocabulary=vocabulary[2:], mask_token="", oov_token=UNKNOWN, num_oov_indices=1)
    layer(tf.constant([""]))  # builds it: ExportArchive only tracks built layers
    return layer


def split_characters(texts, max_characters: int, keep: str = "first") -> tf.RaggedTensor:
    """Strings [batch] -> ragged characters, invalid UTF-8 read as U+FFFD, at most `max_characters`
    per text (its first or last ones): the serving graph's time and memory stay bounded."""
    texts = tf.convert_to_tensor(texts, tf.string)
    # A character is at most 4 bytes: cutting the bytes first keeps a 1 MB string from being split
    # whole. From the end, 3 bytes more: a cut inside a character leaves at most 3 broken bytes.
    if keep == "first":
        texts = tf.strings.substr(texts, 0, 4 * max_characters)
    else:
        keep_bytes = 4 * max_characters + 3
        start = tf.maximum(tf.strings.length(texts) - keep_bytes, 0)
        texts = tf.strings.substr(texts, start, tf.fill(tf.shape(start), keep_bytes))
    chars = tf.strings.unicode_split(texts, "UTF-8", errors="replace")
    return chars[:, :max_characters] if keep == "first" else chars[:, -max_characters:]


def window_arrays(ids: np.ndarray, window: int) -> tuple:
    """Ids of one text -> (inputs [count, window], targets [count, window]): consecutive windows,
    each target the next character (the characters after the last whole window are left out)."""
    count = (len(ids) - 1) // window
    if count < 1:
        raise UserError(f"a split of {len(ids)} characters is shorter than one window of {window}; "
                        "lower `window` or use a longer text")
    starts = np.arange(count) * window
    return ids[starts[:, None] + np.arange(window)], ids[starts[:, None] + np.arange(window) + 1]


def windows(ids: np.ndarray, window: int, batch_size: int, shuffle_seed=None) -> tf.data.Dataset:
    """`window_arrays` as batches. Seeded = training: windows shuffled, the last partial batch dropped."""
    inputs, targets = window_arrays(ids, window)
    count = len(inputs)
    ds = tf.data.Dataset.from_tensor_slices((inputs, targets))
    if shuffle_seed is not None:
        ds = ds.shuffle(count, seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=shuffle_seed is not None and count >= batch_size).prefetch(2)
