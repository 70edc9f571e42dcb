"""Sentence pairs for translation (many-to-many, encoder-decoder), and their tokenisation.

`--data` resolves, in this order:
  1. a folder laid out as `../shared/data/spa_eng` (Tatoeba/Anki `spa.part*.txt`, concatenated in
     order: `English \\t Spanish`) or `kor_eng` (`kor.txt`: `English \\t Korean \\t attribution`);
  2. a bare name under the data root (`spa_eng`, `kor_eng`);
  3. a TFDS name with a config, e.g. `ted_hrlr_translate/pt_to_en` (its own train/validation/test).
The direction (`spa-en`, `en-spa`, `ko-en`, `en-ko`, `pt-en`, ...) names the source and target
languages; both must be in the data.

Splits of the Anki files are made by source sentence (many repeat with other translations), so no
source sentence is in two splits; validation and test each hold min(2,000, 10%) of the pairs.

Tokenisation runs in TF ops, in the serving graph as in training (TOKENISATION_RULES, also in the
model card). Korean is tokenised by character: its words carry particles, so a word vocabulary
would be mostly unseen words.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from foundation.errors import UserError
from foundation.lazy import tensorflow as tf
from pipelines import batching, tfds_source
from pipelines.splits import Splits, local_path, not_found, select
from pipelines.text import MAX_BYTES_PER_TOKEN, RAGGED, padded_ids, token_ids, truncated

PADDING_ID, UNKNOWN_ID, START_ID, END_ID = 0, 1, 2, 3
START, END, SPACE = "[START]", "[END]", "▁"
CHARACTER_LANGUAGES = ("ko", "ja", "zh")
# Anki files: name -> language of each text column, and the files, read in this order.
ANKI = {"spa_eng": (("en", "spa"), "spa.part*.txt"), "kor_eng": (("en", "ko"), "kor.txt")}
HELD_OUT_PAIRS, HELD_OUT_FRACTION = 2000, 0.1

TOKENISATION_RULES = f"""Each text is cut to its first {MAX_BYTES_PER_TOKEN} bytes per allowed token; invalid UTF-8
becomes U+FFFD.
  - word level (Spanish, English, Portuguese, ...): the source is lower-cased (the target keeps its
    case, so outputs compare with raw references); accents kept; ¿ ¡ ? ! . , ; : " ( ) « » … split off
    as tokens; split on whitespace;
  - character level ({", ".join(CHARACTER_LANGUAGES)}): every character is a token, a run of whitespace
    is the token "{SPACE}".
Ids: line i of the vocabulary file is id i; 0 padding, 1 unknown; target 2 START, 3 END.
Detokenising joins the tokens and removes the spaces before closing and after opening punctuation
(word level), or turns "{SPACE}" into a space (character level)."""


def parse_direction(direction: str) -> tuple:
    source, sep, target = direction.partition("-")
    if not sep or not source or not target or source == target:
        raise UserError(f"config direction: expected SOURCE-TARGET such as spa-en, got {direction!r}")
    return source, target


def load(spec: str, data_root, seed: int, direction: str, tfds_data_dir=None) -> Splits:
    source, target = parse_direction(direction)
    path = local_path(spec, data_root)
    if path.is_dir():
        return _anki(path, source, target, seed)
    if tfds_source.exists(spec):
        return _tfds(spec, source, target, tfds_data_dir)
    raise not_found("translation dataset", spec, "a folder of Anki pairs (spa_eng, kor_eng)", data_root)


def _anki(path: Path, source: str, target: str, seed: int) -> Splits:
    kind = next((k for k, (_, pattern) in ANKI.items() if sorted(path.glob(pattern))), None)
    if kind is None:
        raise UserError(f"{path} holds no Anki sentence pairs (expected {' or '.join(p for _, p in ANKI.values())})")
    languages, pattern = ANKI[kind]
    if {source, target} != set(languages):
        raise UserError(f"config direction {source}-{target} does not fit {path.name}, whose languages are "
                        f"{' and '.join(languages)}")
    files = sorted(path.glob(pattern))
    columns = {language: [] for language in languages}
    for file in files:
        for number, line in enumerate(file.read_text(encoding="utf-8").split("\n"), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2:
                raise UserError(f"{file}:{number}: expected tab-separated sentence pairs")
            for language, text in zip(languages, fields[:2], strict=True):
                columns[language].append(text.strip())
    pairs = {"source": np.array(columns[source], dtype=object), "target": np.array(columns[target], dtype=object)}
    train, validation, test = split_by_source(pairs, seed)
    where = (f"{path}/{pattern} ({len(pairs['source']):,} pairs, {source}->{target}), "
             f"split by source sentence, seed {seed}")
    origin = {"train": where, "validation": where, "test": where}
    return Splits(f"{path.name} {source}-{target}", train, validation, test, [], origin)


def split_by_source(pairs: dict, seed: int) -> tuple:
    """(train, validation, test): seeded, whole source sentences per split, held-out splits of
    min(HELD_OUT_PAIRS, HELD_OUT_FRACTION of all) pairs each."""
    sources, group = np.unique(pairs["source"].astype(str), return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(sources))
    pairs_per_source = np.bincount(group, minlength=len(sources))[order]
    held_out = min(HELD_OUT_PAIRS, int(HELD_OUT_FRACTION * len(group)))
    filled = np.cumsum(pairs_per_source)
    test_end = int(np.searchsorted(filled, held_out)) + 1
    validation_end = int(np.searchsorted(filled, filled[test_end - 1] + held_out)) + 1
    rank = np.empty(len(sources), dtype=int)
    rank[order] = np.arange(len(sources))
    place = rank[group]
    test, validation = place < test_end, (place >= test_end) & (place < validation_end)
    train = ~(test | validation)
    return tuple(select(pairs, np.flatnonzero(mask)) for mask in (train, validation, test))


def _tfds(spec: str, source: str, target: str, data_dir) -> Splits:
    """TFDS translation datasets whose features are the two languages (ted_hrlr_translate/pt_to_en: pt, en)."""

    def convert(columns):
        missing = [language for language in (source, target) if language not in columns]
        if missing:
            raise UserError(f"config direction {source}-{target} does not fit TFDS {spec!r}, whose features are "
                            f"{', '.join(sorted(columns))}")
        return {"source": np.array([t.decode("utf-8", "replace") for t in columns[source]], dtype=object),
                "target": np.array([t.decode("utf-8", "replace") for t in columns[target]], dtype=object)}

    return tfds_source.load(spec, 0, convert, data_dir, splits=("train", "validation", "test"), label_names=[],
                            note=f", {source}->{target}")


# --- tokenisation --------------------------------------------------------------------------------

def is_character_level(language: str) -> bool:
    return language in CHARACTER_LANGUAGES


def _valid_utf8(text):
    return tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)


def standardize_source(text):
    text = tf.strings.lower(_valid_utf8(text), encoding="utf-8")
    return tf.strings.regex_replace(text, r"([¿¡?!.,;:\"()«»…])", r" \1 ")


def standardize_target(text):
    return tf.strings.regex_replace(_valid_utf8(text), r"([¿¡?!.,;:\"()«»…])", r" \1 ")


def split_characters(text):
    text = tf.strings.regex_replace(tf.strings.strip(text), r"\s+", SPACE)
    return tf.strings.unicode_split(text, "UTF-8")


def vectorizer(language: str, side: str, vocabulary=None, max_tokens=None,
               standardize=None) -> layers.TextVectorization:
    """Text -> ragged token ids for one side (`source` or `target`) in `language`; `standardize`
    replaces the side's own (captions: lower-cased, punctuation removed)."""
    character = is_character_level(language)
    standardize = standardize or {"source": standardize_source, "target": standardize_target}[side]
    return layers.TextVectorization(
        max_tokens=max_tokens, standardize=_valid_utf8 if character else standardize,
        split=split_characters if character else "whitespace", output_mode="int", ragged=RAGGED,
        vocabulary=vocabulary)


def adapt(texts, language: str, side: str, max_tokens: int, standardize=None) -> layers.TextVectorization:
    layer = vectorizer(language, side, max_tokens=max_tokens - (2 if side == "target" else 0), standardize=standardize)
    layer.adapt(tf.data.Dataset.from_tensor_slices(np.asarray(texts, dtype=object).astype(str)).batch(1024))
    words = layer.get_vocabulary()[2:]
    if side == "target":
        words = [START, END] + [w for w in words if w not in (START, END)]
    return vectorizer(language, side, vocabulary=words, standardize=standardize)


def detokenize(tokens: tf.Tensor, language: str) -> tf.Tensor:
    """Token strings [batch, time] ("" for padding) -> one string per row."""
    if is_character_level(language):
        text = tf.strings.reduce_join(tokens, axis=-1)
        return tf.strings.strip(tf.strings.regex_replace(text, SPACE, " "))
    text = tf.strings.strip(tf.strings.regex_replace(tf.strings.reduce_join(tokens, axis=-1, separator=" "),
                                                     r" +", " "))
    text = tf.strings.regex_replace(text, r" ([?!.,;:)»…])", r"\1")
    return tf.strings.regex_replace(text, r"([¿¡(«]) ", r"\1")


def load_vocabulary(path: Path) -> list:
    return Path(path).read_text(encoding="utf-8").split("\n")[:-1]


def from_vocabulary(path: Path, language: str, side: str, standardize=None) -> layers.TextVectorization:
    layer = vectorizer(language, side, vocabulary=load_vocabulary(path)[2:], standardize=standardize)
    layer(tf.constant([""]))  # builds it: ExportArchive only tracks built layers
    return layer


def teacher_forcing(source_vectorizer, target_vectorizer, columns: dict, source_length: int, target_length: int,
                    batch_size: int, shuffle_seed=None) -> tf.data.Dataset:
    """Sentence pairs (columns `source`, `target`) -> batches of ((source ids, target ids after
    START), target ids then END), int32, padded per length bucket; shuffled each epoch with a seed
    (training), in order without one. Targets hold at most target_length ids, END included."""
    source = token_ids(source_vectorizer, columns["source"], source_length)
    target = token_ids(target_vectorizer, columns["target"], target_length - 1)
    rows = target.nrows()
    target_in = tf.concat([tf.fill([rows, 1], np.int64(START_ID)), target], axis=1)
    target_out = tf.concat([target, tf.fill([rows, 1], np.int64(END_ID))], axis=1)
    ds = tf.data.Dataset.from_tensor_slices((source, target_in, target_out))
    ds = ds.map(lambda s, i, o: (s[:], i[:], o[:])).cache()  # ragged rows -> dense rows
    if shuffle_seed is not None:
        ds = ds.shuffle(batching.SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=True)
    longest = max(source_length, target_length)
    # Buckets 25% apart: these sentences are short, and doubling buckets padded several times
    # more target tokens (the output layer's work), for a few more shapes to compile.
    bounds = batching.bucket_boundaries(longest, first=6, growth=1.25)
    ds = ds.bucket_by_sequence_length(
        lambda s, i, o: tf.maximum(tf.shape(s)[0], tf.shape(i)[0]), bounds,
        [batch_size] * (len(bounds) + 1), pad_to_bucket_boundary=True,
        drop_remainder=shuffle_seed is not None)
    return ds.map(lambda s, i, o: ((tf.cast(s, tf.int32), tf.cast(i, tf.int32)), o)).prefetch(tf.data.AUTOTUNE)


# --- the preprocessor: what translate learns from the training split, keeps, and ships ------------

SOURCE_VOCAB, TARGET_VOCAB = "source_vocab.txt", "target_vocab.txt"
NEVER_WRITTEN = (PADDING_ID, UNKNOWN_ID, START_ID)  # ids a translation never holds


def source_mask(source_ids):
    """1.0 where a source step holds a token, 0.0 on padding."""
    return keras.ops.cast(keras.ops.not_equal(source_ids, PADDING_ID), "float32")


def output_limits(rule: dict, source_ids):
    """The longest output for each source: min(target_length, ceil(length_ratio * tokens) +
    length_extra), and 0 for a source of no tokens ("" or blanks translate to "", not to whatever the
    decoder writes from nothing). `rule` is a run's config or the model card's max_output_tokens."""
    ops = keras.ops
    tokens = ops.sum(source_mask(source_ids), axis=1)
    wanted = ops.ceil(rule["length_ratio"] * tokens) + rule["length_extra"]
    return ops.where(tokens > 0, ops.cast(ops.minimum(wanted, float(rule["target_length"])), "int32"), 0)


class Preprocessor:
    """translate's preprocessing (keras-hub's sense of the word): the source and target vocabularies,
    learnt from the training split; the files that hold them, which a run keeps and translate.tflite
    ships; and the one tokenisation that training batches, the SavedModel graph and the phone client
    run. `from_card` is the phone client's: it reads only those files and the model card."""

    def __init__(self, source, target, source_language: str, target_language: str, source_length: int,
                 output_rule: dict):
        self.source, self.target = source, target
        self.source_language, self.target_language = source_language, target_language
        self.source_length = source_length
        self.output_rule = {key: output_rule[key] for key in ("target_length", "length_ratio", "length_extra")}

    @classmethod
    def fit(cls, splits, config: dict) -> Preprocessor:
        source_language, target_language = parse_direction(config["direction"])
        return cls(adapt(splits.train["source"], source_language, "source", config["source_vocab_size"]),
                   adapt(splits.train["target"], target_language, "target", config["target_vocab_size"]),
                   source_language, target_language, config["source_length"], config)

    @classmethod
    def load(cls, folder, config: dict) -> Preprocessor:
        languages = parse_direction(config["direction"])
        return cls._read(folder, *languages, config["source_length"], config)

    @classmethod
    def from_card(cls, folder, card: dict) -> Preprocessor:
        return cls._read(folder, card["source"]["language"], card["target"]["language"], card["source"]["length"],
                         card["max_output_tokens"])

    @classmethod
    def _read(cls, folder, source_language, target_language, source_length, output_rule) -> Preprocessor:
        return cls(from_vocabulary(Path(folder) / SOURCE_VOCAB, source_language, "source"),
                   from_vocabulary(Path(folder) / TARGET_VOCAB, target_language, "target"),
                   source_language, target_language, source_length, output_rule)

    @property
    def target_tokens(self) -> list:
        return [str(t) for t in self.target.get_vocabulary()]

    # the decoder's words and their language: what detokenising reads
    output_words = target_tokens

    @property
    def output_language(self) -> str:
        return self.target_language

    @property
    def lookup_layers(self) -> list:
        """The lookup layers the SavedModel's graph calls (tracked with it)."""
        return [self.source]

    def files(self) -> dict:
        return {SOURCE_VOCAB: "\n".join(map(str, self.source.get_vocabulary())) + "\n",
                TARGET_VOCAB: "\n".join(self.target_tokens) + "\n"}

    def card(self, config: dict) -> dict:
        length = self.source_length
        return {
            "direction": f"{self.source_language}-{self.target_language}",
            "source": {"vocabulary": SOURCE_VOCAB, "language": self.source_language, "length": length,
                       "padding": f"right-pad with 0 to exactly {length} ids; ids after {length} are dropped",
                       "id_range": "0 = padding, 1 = unknown; ids outside the vocabulary read as 1"},
            "target": {"vocabulary": TARGET_VOCAB, "language": self.target_language,
                       "start_id": START_ID, "end_id": END_ID,
                       "never_written": f"ids {', '.join(map(str, NEVER_WRITTEN))} (padding, unknown, START: "
                                        "decode_step gives them log-probability -1e9)"},
            "tokenisation": TOKENISATION_RULES,
            "max_output_tokens": {**self.output_rule,
                                  "rule": "min(target_length, ceil(length_ratio * source tokens) + length_extra); "
                                          "0 (an empty translation) for a source of no tokens"},
        }

    def dataset(self, columns: dict, config: dict, shuffle_seed=None) -> tf.data.Dataset:
        return teacher_forcing(self.source, self.target, columns, self.source_length,
                               self.output_rule["target_length"], config["batch_size"], shuffle_seed)

    # --- raw inputs: what the SavedModel's first form and the phone client take ------------------
    def encoder_inputs(self, columns: dict) -> list:
        return list(columns["source"])

    def raw_inputs(self, inputs: list) -> list:
        """CLI inputs -> raw inputs: the texts themselves."""
        return list(inputs)

    def served(self, raw: list) -> dict:
        return {"text": np.array([t.encode("utf-8") for t in raw], dtype=object)}

    def further_feeds(self, raw: list) -> dict:
        return {}  # one serving form

    def serving_forms(self, write) -> dict:
        """text [batch] -> translation, token_ids, lengths, source_truncated: tokenise in the graph, decode."""

        def translate_text(text):
            ids = token_ids(self.source, text, self.source_length).to_tensor()
            ids = tf.pad(tf.cast(ids, tf.int32), [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])  # >= 1 step
            # the source's tail past source_length tokens was not read: say so, not translate it silently
            return {**write(ids, output_limits(self.output_rule, ids)),
                    "source_truncated": truncated(self.source, text, self.source_length)}

        return {"text": ([tf.TensorSpec([None], tf.string, name="text")], translate_text)}

    def phone_feed(self, raw: list) -> tuple:
        """Texts -> encode feeds (source ids) and output limits, as a phone computes them."""
        ids = padded_ids(self.source, raw, self.source_length)
        return [{"source_ids": row[None]} for row in ids], keras.ops.convert_to_numpy(
            output_limits(self.output_rule, ids))
