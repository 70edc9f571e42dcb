"""Sentences with one tag per token (many-to-many, one output per step): part-of-speech or
named-entity tagging.

`--data` resolves, in this order:
  1. a folder of CoNLL-U files laid out as Universal Dependencies releases them
     (`../shared/data/ud_english_ewt`: `*-ud-train*.conllu`, read in name order, so a training
     file kept in parts reads as one; `*-ud-dev.conllu`; `*-ud-test.conllu`);
  2. a bare name under the data root (`ud_english_ewt`);
  3. a TFDS name whose features are `tokens` and tag sequences (`conll2003`: `pos` or `ner`).
`tag_column` picks the tags: `upos` or `xpos` for CoNLL-U, a TFDS feature name (`pos`, `ner`).

CoNLL-U as UD defines it: token lines with an integer ID are the words; multiword-token ranges
(`3-4`, "don't" over "do" + "n't") and empty nodes (`8.1`) are left out, since their words are
on the integer lines; comment lines start with `#`; a blank line ends a sentence.

Each split holds `{"tokens": [...], "tags": [...]}`, one string per sentence with its tokens (and
tags) joined by TAB, which no CoNLL-U field may hold: fixed-width columns that save and slice
like every other app's, split again in TF ops (`split_tokens`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from foundation.errors import UserError
from foundation.lazy import tensorflow as tf
from pipelines import tfds_source
from pipelines.splits import Splits, local_path, not_found

SEPARATOR = "\t"
CONLLU_COLUMNS = {"upos": 3, "xpos": 4}
UD_FILES = {"train": "*-ud-train*.conllu", "validation": "*-ud-dev.conllu", "test": "*-ud-test.conllu"}


def load(spec: str, data_root, tag_column: str, tfds_data_dir=None) -> Splits:
    path = local_path(spec, data_root)
    if path.is_dir():
        return _ud_folder(path, tag_column)
    if tfds_source.exists(spec):
        return _tfds(spec, tag_column, tfds_data_dir)
    raise not_found("tagged dataset", spec, "a folder of CoNLL-U files", data_root)


def read_conllu(paths, tag_column: str = "upos") -> tuple[list, list]:
    """CoNLL-U files, read in order -> (token lists, tag lists), one pair per sentence."""
    if tag_column not in CONLLU_COLUMNS:
        raise UserError(f"config tag_column: expected one of {', '.join(CONLLU_COLUMNS)} for CoNLL-U, "
                        f"got {tag_column!r}")
    column = CONLLU_COLUMNS[tag_column]
    sentences, tags, tokens, sentence_tags = [], [], [], []
    for path in paths:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), start=1):
            if not line.strip():
                if tokens:
                    sentences.append(tokens)
                    tags.append(sentence_tags)
                tokens, sentence_tags = [], []
                continue
            if line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) != 10:
                raise UserError(f"{path}:{number}: expected 10 tab-separated CoNLL-U columns, got {len(fields)}")
            if not fields[0].isdigit():  # a multiword-token range (3-4) or an empty node (8.1)
                continue
            tokens.append(fields[1])
            sentence_tags.append(fields[column])
    if tokens:  # a file that does not end with a blank line
        sentences.append(tokens)
        tags.append(sentence_tags)
    return sentences, tags


def _ud_folder(path: Path, tag_column: str) -> Splits:
    columns, origin = {}, {}
    for split, pattern in UD_FILES.items():
        files = sorted(path.glob(pattern))
        if not files:
            raise UserError(f"{path} has no {pattern} file; expected a Universal Dependencies treebank folder")
        sentences, tags = read_conllu(files, tag_column)
        columns[split] = joined(sentences, tags)
        origin[split] = f"{' + '.join(f.name for f in files)} ({len(sentences):,} sentences, {tag_column})"
    label_names = sorted(set(SEPARATOR.join(columns["train"]["tags"]).split(SEPARATOR)))
    return Splits(path.name, columns["train"], columns["validation"], columns["test"], label_names, origin)


def _tfds(spec: str, tag_column: str, data_dir) -> Splits:
    """TFDS tagging datasets: a `tokens` sequence and tag sequences of class labels (conll2003)."""
    import tensorflow_datasets as tfds

    names = {}

    def convert(columns):
        if "tokens" not in columns or tag_column not in columns:
            raise UserError(f"config tag_column {tag_column!r} does not fit TFDS {spec!r}, whose features are "
                            f"{', '.join(sorted(columns))}")
        sentences = [[t.decode("utf-8", "replace") for t in tokens] for tokens in columns["tokens"]]
        tags = [[names["labels"][i] for i in row] for row in columns[tag_column]]
        for number, (words, labels) in enumerate(zip(sentences, tags, strict=True)):
            if len(words) != len(labels):
                raise UserError(f"TFDS {spec!r}: example {number} has {len(words)} tokens but {len(labels)} tags")
        return joined(sentences, tags)

    features = tfds.builder(spec, data_dir=data_dir).info.features
    if tag_column not in features:
        raise UserError(f"config tag_column {tag_column!r} does not fit TFDS {spec!r}, whose features are "
                        f"{', '.join(sorted(features))}")
    names["labels"] = list(features[tag_column].feature.names)
    return tfds_source.load(spec, 0, convert, data_dir, splits=("train", "validation", "test"),
                            label_names=names["labels"], note=f", {tag_column} tags")


def joined(sentences: list, tags: list) -> dict:
    return {"tokens": np.array([SEPARATOR.join(s) for s in sentences], dtype=object),
            "tags": np.array([SEPARATOR.join(t) for t in tags], dtype=object)}


def split_tokens(joined_text) -> tf.RaggedTensor:
    """Joined sentences [batch] -> ragged tokens (or tags) [batch, (words)]."""
    return tf.strings.split(tf.convert_to_tensor(joined_text, tf.string), SEPARATOR)
