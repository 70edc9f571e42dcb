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

Exports: SavedModel `serving_default(text: string[batch])` (raw sentences, tokenised in the graph
by TOKENISATION_RULES) and `tag_tokens(tokens: string[batch, time], "" for padding)` ->
tokens, tags (string, "" on padding), tag_ids (int32, -1 on padding), probabilities (float32, 0 on
padding), lengths. TFLite `tagger.tflite` `serving_default(word_ids, suffix_ids, shape_ids:
int32[1, max_length])` -> probabilities [1, max_length, tags]; vocabularies and model card beside it.

    rnn-apps train tagger --data ud_english_ewt --data-root ../shared/data --out runs/tagger
    rnn-apps evaluate runs/tagger            # accuracy, on unseen words, per tag, frequent errors
    rnn-apps predict runs/tagger "The old man the boats ." [--json]
    rnn-apps export runs/tagger --out exports
    rnn-apps query exports --name tagger "The old man the boats ."
"""

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from foundation.errors import UserError
from pipelines import batching, tagged, text
from rnn_apps import config as config_lib
from rnn_apps import word_vectors
from rnn_apps.app import App, Endpoint, ParityCase, TFLiteModel
from rnn_apps.layers import FrozenTailEmbedding, optional_dropout, simple_rnn_stack

WORDS, SUFFIXES, TAGS, TRAINING_WORDS = "words.txt", "suffixes.txt", "tags.txt", "training_words.json"
SUFFIX_LENGTH, SHAPES = 3, 32
PADDING_TAG_ID = -1
TOKENISATION_RULES = """Raw sentences (serving_default): invalid UTF-8 becomes U+FFFD; split on whitespace; then
. , ! ? ; : ( ) " and the clitics n't 's 're 've 'll 'd 'm are split off as tokens (UD English
style). Pre-tokenised input (tag_tokens) is used as given.
Per token: word id = line of words.txt holding the lower-cased token (1 = unknown); suffix id =
line of suffixes.txt holding its last 3 characters, lower-cased (1 = unknown); shape id = 1 +
bits: 1 first character upper-case, 2 every letter upper-case, 4 holds a digit, 8 holds a hyphen,
16 no letter or digit at all. Ids 0 are padding. The first max_length tokens are tagged."""


@dataclass
class Preprocessing:
    words: layers.StringLookup
    suffixes: layers.StringLookup
    tag_names: list
    training_words: int  # the words of the vocabulary seen in training; the rest is the frozen tail
    initial_embeddings: np.ndarray | None = None
    has_vector: np.ndarray | None = None


class Tagger(App):
    name = "tagger"
    topology = "many-to-many (per step)"
    task = "part-of-speech tagging"
    default_data = ("ud_english_ewt", "conll2003")
    monitors = ("val_loss", "val_accuracy")
    config = {
        **config_lib.COMMON,
        "tag_column": "upos",
        "units": 128,
        "depth": 2,
        "bidirectional": True,
        "dropout": 0.25,
        # Training only: each word is replaced by the unknown id with this probability, so the
        # model learns to tag from the suffix and shape features too. Measured (bench/RESULTS.md):
        # 0.15 took test accuracy from 93.62% to 94.62%, on unseen words from 69.0% to 80.5%.
        "word_dropout": 0.15,
        "embedding_dim": 50,
        # The suffix and shape features: without them (0) test accuracy fell from 94.62% to 92.44%,
        # on unseen words from 80.5% to 60.8% (bench/RESULTS.md).
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

    def fit_preprocessing(self, splits, config, run_dir):
        counts = Counter(t.lower() for s in splits.train["tokens"] for t in s.split(tagged.SEPARATOR))
        training_words = [w for w, _ in counts.most_common()]
        suffixes = Counter(w[-SUFFIX_LENGTH:] for w in counts.elements())
        words = training_words
        initial = has_vector = None
        if config["word_vectors"]:
            vector_words, vectors = word_vectors.load(config["word_vectors"])
            if vectors.shape[1] != config["embedding_dim"]:
                raise UserError(f"config embedding_dim is {config['embedding_dim']} but the word vectors "
                                f"{config['word_vectors']!r} have {vectors.shape[1]} dimensions")
            seen = set(training_words)
            words = training_words + [w for w in vector_words[:config["word_vectors_unseen_words"]] if w not in seen]
            initial, has_vector = word_vectors.embedding_matrix(["", "[UNK]"] + words, vector_words, vectors,
                                                                config["word_vectors_std"], config["seed"])
        write_lines(Path(run_dir) / WORDS, ["", "[UNK]"] + words)
        common_suffixes = [s for s, _ in suffixes.most_common(config["max_suffixes"] - 2)]
        write_lines(Path(run_dir) / SUFFIXES, ["", "[UNK]"] + common_suffixes)
        write_lines(Path(run_dir) / TAGS, splits.label_names)
        (Path(run_dir) / TRAINING_WORDS).write_text(json.dumps({"training_words": len(training_words) + 2}) + "\n")
        preprocessing = self.load_preprocessing(run_dir, config)
        preprocessing.initial_embeddings, preprocessing.has_vector = initial, has_vector
        return preprocessing

    def load_preprocessing(self, run_dir, config):
        run_dir = Path(run_dir)
        training_words = json.loads((run_dir / TRAINING_WORDS).read_text())["training_words"]
        return Preprocessing(*vocabularies(run_dir), training_words=training_words)

    def features(self, preprocessing, tokens: tf.RaggedTensor) -> dict:
        """Ragged token strings -> {word_ids, suffix_ids, shape_ids}, ragged int32 (TOKENISATION_RULES)."""
        flat = tokens.flat_values
        lowered = tf.strings.lower(flat, encoding="utf-8")
        start = tf.maximum(tf.strings.length(lowered, unit="UTF8_CHAR") - SUFFIX_LENGTH, 0)
        suffix = tf.strings.substr(lowered, start, tf.fill(tf.shape(start), SUFFIX_LENGTH), unit="UTF8_CHAR")
        ids = {"word_ids": preprocessing.words(lowered), "suffix_ids": preprocessing.suffixes(suffix),
               "shape_ids": shape_ids(flat)}
        return {k: tokens.with_flat_values(tf.cast(v, tf.int32)) for k, v in ids.items()}

    def dataset(self, columns, preprocessing, config, shuffle_seed=None):
        length = config["max_length"]
        tokens = tagged.split_tokens(columns["tokens"])[:, :length]
        tag_table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
            tf.constant(preprocessing.tag_names), tf.range(len(preprocessing.tag_names))), -1)
        tags = tf.ragged.map_flat_values(tag_table.lookup, tagged.split_tokens(columns["tags"])[:, :length])
        features = self.features(preprocessing, tokens)
        ds = tf.data.Dataset.from_tensor_slices((features, tf.maximum(tags, 0)))
        ds = ds.map(lambda x, y: ({k: v[:] for k, v in x.items()}, y[:])).cache()
        if shuffle_seed is not None:
            ds = ds.shuffle(batching.SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=True)
        bounds = batching.bucket_boundaries(length)
        # Padded to the bucket's bound: a handful of shapes, so XLA compiles each once (padded to
        # each batch's longest, epochs took 48 to 165 s as new shapes kept compiling).
        ds = ds.bucket_by_sequence_length(
            lambda x, y: tf.shape(y)[0], bounds, [config["batch_size"]] * (len(bounds) + 1),
            pad_to_bucket_boundary=True, drop_remainder=shuffle_seed is not None)
        if shuffle_seed is not None and config["word_dropout"] > 0:
            rate = config["word_dropout"]
            ds = ds.map(lambda x, y: ({**x, "word_ids": text.drop_words(x["word_ids"], rate, shuffle_seed)}, y))
        return ds.prefetch(tf.data.AUTOTUNE)

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
            embedding.set_table(self._initial_embeddings(config, preprocessing))
        return keras.Model(inputs, probabilities, name=self.name)

    def _initial_embeddings(self, config, preprocessing):
        return word_vectors.start_rows(preprocessing, preprocessing.words.get_vocabulary(), config)

    def compile(self, model, config):
        model.compile(optimizer=keras.optimizers.AdamW(config_lib.learning_rate(config),
                                                       weight_decay=config["weight_decay"]),
                      loss=keras.losses.SparseCategoricalCrossentropy(),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                      jit_compile=config["jit_compile"])

    def after_training(self, model, config, preprocessing):
        embedding = model.get_layer("word_embedding")
        if not config["word_vectors"] or not embedding.frozen_rows:
            return False
        word_vectors.place_frozen_tail(embedding, self._initial_embeddings(config, preprocessing),
                                       preprocessing.has_vector, preprocessing.training_words)
        return True

    def stored_sizes(self, model, run):
        preprocessing = run.preprocessing
        return [(WORDS, preprocessing.words.vocabulary_size(), model.get_layer("word_embedding").input_dim),
                (SUFFIXES, preprocessing.suffixes.vocabulary_size(), model.get_layer("suffix_embedding").input_dim),
                (TAGS, len(preprocessing.tag_names), model.get_layer("probabilities").units)]

    # --- tagging ------------------------------------------------------------------------
    def tagger(self, run, tokenise: bool):
        """Sentences (raw strings, or padded token strings) -> tokens, tags, tag_ids, probabilities,
        lengths: one function for predict, evaluate and both SavedModel signatures."""
        model, preprocessing, length = run.model, run.preprocessing, run.config["max_length"]
        names = tf.constant(preprocessing.tag_names)

        def tag(batch):
            if tokenise:
                tokens = tokenize(batch)
            else:
                tokens = tf.RaggedTensor.from_tensor(batch, padding="")
            tokens = tokens[:, :length]
            features = {k: v.to_tensor() for k, v in self.features(preprocessing, tokens).items()}
            features = {k: tf.pad(v, [[0, 0], [0, tf.maximum(1 - tf.shape(v)[1], 0)]]) for k, v in features.items()}
            probabilities = model(features, training=False)
            mask = features["word_ids"] != 0
            tag_ids = tf.where(mask, tf.argmax(probabilities, -1, output_type=tf.int32), PADDING_TAG_ID)
            dense = tokens.to_tensor("")
            dense = tf.pad(dense, [[0, 0], [0, tf.shape(tag_ids)[1] - tf.shape(dense)[1]]], constant_values="")
            return {"tokens": dense,
                    "tags": tf.where(mask, tf.gather(names, tf.maximum(tag_ids, 0)), ""),
                    "tag_ids": tag_ids,
                    "probabilities": tf.where(mask, tf.reduce_max(probabilities, -1), 0.0),
                    "lengths": tf.cast(tokens.row_lengths(), tf.int32)}

        return tag, [model, preprocessing.words, preprocessing.suffixes]

    def tag(self, run, sentences: list, tokenise: bool = True, batch_size: int = 256) -> list:
        """-> one dict per sentence: tokens, tags, probabilities (lists)."""
        fn = tf.function(self.tagger(run, tokenise)[0], reduce_retracing=True)
        rows = []
        for i in range(0, len(sentences), batch_size):
            out = {k: v.numpy() for k, v in fn(tf.constant(sentences[i: i + batch_size])).items()}
            for j, n in enumerate(out["lengths"]):
                rows.append({"tokens": [t.decode("utf-8") for t in out["tokens"][j][:n]],
                             "tags": [t.decode("utf-8") for t in out["tags"][j][:n]],
                             "probabilities": [round(float(p), 4) for p in out["probabilities"][j][:n]]})
        return rows

    # --- use ----------------------------------------------------------------------------
    def evaluate(self, run, splits) -> dict:
        length = run.config["max_length"]
        sentences = [s.split(tagged.SEPARATOR)[:length] for s in splits.test["tokens"]]
        truth = [t.split(tagged.SEPARATOR)[:length] for t in splits.test["tags"]]
        width = max(len(s) for s in sentences)
        padded = np.array([s + [""] * (width - len(s)) for s in sentences], dtype=object)
        predicted = [row["tags"] for row in self.tag(run, list(padded), tokenise=False)]
        seen = set(t.lower() for s in splits.train["tokens"] for t in s.split(tagged.SEPARATOR))
        pairs = [(w, t, p) for words, tags, preds in zip(sentences, truth, predicted, strict=True)
                 for w, t, p in zip(words, tags, preds, strict=True)]
        right = [t == p for _, t, p in pairs]
        unseen = [t == p for w, t, p in pairs if w.lower() not in seen]
        per_tag = {}
        for name in run.preprocessing.tag_names:
            true_positive = sum(1 for _, t, p in pairs if t == name and p == name)
            predicted_n, actual_n = sum(1 for *_, p in pairs if p == name), sum(1 for _, t, _ in pairs if t == name)
            per_tag[name] = {"precision": round(true_positive / predicted_n, 4) if predicted_n else None,
                             "recall": round(true_positive / actual_n, 4) if actual_n else None, "count": actual_n}
        errors = Counter(f"{t} -> {p}" for _, t, p in pairs if t != p)
        return {"sentences": len(sentences), "tokens": len(pairs), "accuracy": float(np.mean(right)),
                "unseen_word_tokens": len(unseen), "unseen_word_accuracy": float(np.mean(unseen)) if unseen else None,
                "per_tag": per_tag, "most_frequent_errors": dict(errors.most_common(10))}

    def predict(self, run, inputs):
        rows = self.tag(run, list(inputs)) if inputs else []
        return [{"input": text, **row} for text, row in zip(inputs, rows, strict=True)]

    def format_prediction(self, row):
        return " ".join(f"{t}/{g}" for t, g in zip(row["tokens"], row["tags"], strict=True))

    def serving(self, run):
        raw, track = self.tagger(run, tokenise=True)
        given, _ = self.tagger(run, tokenise=False)
        return [Endpoint("serving_default", raw, [tf.TensorSpec([None], tf.string, name="text")], track=track),
                Endpoint("tag_tokens", given, [tf.TensorSpec([None, None], tf.string, name="tokens")], track=track)]

    def tflite_models(self, run):
        length, preprocessing = run.config["max_length"], run.preprocessing
        unrolled = self.unrolled_twin(run, length)

        def tag_ids(word_ids, suffix_ids, shape_ids):
            probabilities = unrolled({"word_ids": word_ids, "suffix_ids": suffix_ids, "shape_ids": shape_ids},
                                     training=False)
            return {"probabilities": probabilities}

        spec = [tf.TensorSpec([None, length], tf.int32, name=n) for n in ("word_ids", "suffix_ids", "shape_ids")]
        card = {
            "app": self.name, "topology": self.topology, "task": self.task, "max_length": length,
            "inputs": {n: f"int32 [1, {length}], right-padded with 0" for n in ("word_ids", "suffix_ids", "shape_ids")},
            "outputs": {"probabilities": f"float32 [1, {length}, {len(preprocessing.tag_names)}], tags in the "
                                         "order of tags.txt; rows past the sentence's length mean nothing"},
            "tokenisation": TOKENISATION_RULES,
            "files": {WORDS: "line i = word id i", SUFFIXES: "line i = suffix id i", TAGS: "line i = tag i"},
        }
        return [TFLiteModel(f"{self.name}.tflite", [Endpoint("serving_default", tag_ids, spec, track=[unrolled])],
                            assets={WORDS: lines_text(preprocessing.words.get_vocabulary()),
                                    SUFFIXES: lines_text(preprocessing.suffixes.get_vocabulary()),
                                    TAGS: lines_text(preprocessing.tag_names),
                                    "model_card.json": json.dumps(card, indent=2) + "\n"})]

    def phone_inputs(self, preprocessing, sentences, length: int) -> dict:
        """Raw sentences -> the TFLite inputs [batch, length], as the model card says to build them."""
        tokens = tokenize(tf.constant(sentences))[:, :length]
        return {k: v.to_tensor(shape=[None, length]).numpy() for k, v in self.features(preprocessing, tokens).items()}

    def parity_cases(self, run, examples):
        """Test sentences, as text: the SavedModel's tags and probabilities equal Keras's, and the
        TFLite model's per-token probabilities (on real tokens) within 1e-4."""
        texts = [s.replace(tagged.SEPARATOR, " ") for s in examples["tokens"]]
        expected = {k: v.numpy() for k, v in tf.function(self.tagger(run, True)[0])(tf.constant(texts)).items()}
        inputs = self.phone_inputs(run.preprocessing, texts, run.config["max_length"])
        probabilities = run.model(inputs, training=False).numpy()
        mask = inputs["word_ids"] != 0
        keras_phone = {"phone_probabilities": np.where(mask[..., None], probabilities, 0.0)}

        def on_phone(interpreter):
            from export import tflite

            out = tflite.run_one_by_one(interpreter, "serving_default", inputs)
            return {"phone_probabilities": np.where(mask[..., None], out["probabilities"], 0.0)}

        words = [s.split(tagged.SEPARATOR) for s in examples["tokens"]]
        width = max([len(w) for w in words] + [1])
        tokens = np.array([[t.encode() for t in w] + [b""] * (width - len(w)) for w in words], dtype=object)
        given = {k: v.numpy() for k, v in tf.function(self.tagger(run, False)[0])(tf.constant(tokens)).items()}
        return [ParityCase("tags of test sentences", {**expected, **keras_phone},
                           ("serving_default", {"text": np.array([t.encode() for t in texts], dtype=object)}),
                           f"{self.name}.tflite", ["tags", "tag_ids", "probabilities", "lengths"],
                           tflite_loop=on_phone, tflite_compare=["phone_probabilities"]),
                ParityCase("tags of test sentences given as tokens", given, ("tag_tokens", {"tokens": tokens}), None,
                           ["tokens", "tags", "tag_ids", "probabilities", "lengths"])]

    def phone_quality(self, run, test, interpreter):
        """Token accuracy of the TFLite model on the test sentences' own tokens (up to max_length)."""
        from export import tflite

        length = run.config["max_length"]
        words = [s.split(tagged.SEPARATOR)[:length] for s in test["tokens"]]
        truth = [t.split(tagged.SEPARATOR)[:length] for t in test["tags"]]
        features = self.features(run.preprocessing, tf.ragged.constant(words))
        inputs = {k: v.to_tensor(shape=[None, length]).numpy() for k, v in features.items()}
        predicted = tflite.run_one_by_one(interpreter, "serving_default", inputs)["probabilities"].argmax(-1)
        names = run.preprocessing.tag_names
        right = [names[p] == t for row, tags in zip(predicted, truth, strict=True)
                 for p, t in zip(row[:len(tags)], tags, strict=True)]
        return float(np.mean(right))

    def exported_inputs(self, inputs, tflite_dir):
        length = json.loads((Path(tflite_dir) / "model_card.json").read_text())["max_length"]
        preprocessing = Preprocessing(*vocabularies(tflite_dir), training_words=0)
        return list(inputs), {"text": np.array([t.encode("utf-8") for t in inputs], dtype=object)}, \
            self.phone_inputs(preprocessing, list(inputs), length)

    def query_rows(self, names, served, on_phone, tflite_dir):
        tag_names = read_lines(Path(tflite_dir) / TAGS)
        rows = []
        for i, name in enumerate(names):
            n = int(served["lengths"][i])
            tokens = [t.decode("utf-8") for t in served["tokens"][i][:n]]
            rows.append({"input": name, "tokens": tokens,
                         "saved_model": [t.decode("utf-8") for t in served["tags"][i][:n]],
                         "tflite": [tag_names[j] for j in on_phone["probabilities"][i][:n].argmax(-1)]})
        return rows

    def format_query(self, row):
        pairs = " ".join(f"{t}/{g}" for t, g in zip(row["tokens"], row["saved_model"], strict=True))
        return f"SavedModel v{row['version']}: {pairs}  TFLite: {' '.join(row['tflite'])}"


def tokenize(text) -> tf.RaggedTensor:
    """Raw sentences -> ragged tokens (TOKENISATION_RULES)."""
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    text = tf.strings.substr(text, 0, 65536)  # a 1 MB string costs no more than its first 64 kB
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


def lookup(vocabulary: list) -> layers.StringLookup:
    layer = layers.StringLookup(vocabulary=vocabulary[2:], mask_token="", oov_token="[UNK]", num_oov_indices=1)
    layer(tf.constant([""]))  # builds it: ExportArchive only tracks built layers
    return layer


def write_lines(path: Path, lines: list):
    path.write_text(lines_text(lines), encoding="utf-8")


def lines_text(lines: list) -> str:
    return "\n".join(lines) + "\n"


def read_lines(path: Path) -> list:
    try:
        return Path(path).read_text(encoding="utf-8").split("\n")[:-1]
    except FileNotFoundError:
        raise UserError(f"{path} is missing; the run folder is damaged") from None


APP = Tagger()
