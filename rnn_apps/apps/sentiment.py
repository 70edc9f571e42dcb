"""sentiment — many-to-one: a sentence in, one label out (negative / positive).

Topology: token ids [batch, time] -> Embedding (id 0 = padding, masked; starts from GloVe 6B 50d)
-> SimpleRNN stack (bidirectional by default) -> max over the unmasked steps -> Dense softmax
[batch, classes]. By default five such models from different seeds are trained one after another
and their probabilities averaged (a deep ensemble, `members`), still one Keras model. GloVe words
outside the training vocabulary get embedding rows placed after training (`after_training`).

Data: SST-2 (`../shared/data/sst2`: phrase-level train.tsv, sentence-level dev/test), rt-polarity,
any CSV/TSV with text and label columns, or TFDS `imdb_reviews` online.

Exports: SavedModel `serving_default(text: string[batch])` -> label, label_id, probability,
probabilities (tokenisation in the graph); TFLite `sentiment.tflite`:
`serving_default(token_ids: int32[batch, max_length])` -> probabilities, label_id, builtin ops only,
with vocab.txt, labels.txt and model_card.json beside it. Trained with `tokenisation=regex` (words
split as MediaPipe's RegexTokenizer splits them), also `sentiment_text.tflite`, which MediaPipe
Tasks' TextClassifier runs alone: its metadata carries the tokenizer, vocabulary and labels.

    rnn-apps train sentiment --data sst2 --data-root ../shared/data --out runs/sentiment
    rnn-apps predict runs/sentiment "a gorgeous , witty , seductive movie ."
    rnn-apps export runs/sentiment --out exports
    rnn-apps train sentiment --data sst2 --data-root ../shared/data --set tokenisation=regex --out runs/sentiment_mp
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from foundation.lazy import tensorflow as tf
from pipelines import batching, text, text_classification
from rnn_apps import config as config_lib
from rnn_apps import metrics, word_vectors
from rnn_apps.families.classify import TextClassifierApp
from rnn_apps.layers import FrozenTailEmbedding, MaskedPooling1D, find_layers, optional_dropout, simple_rnn_stack

WORD_VECTORS_FILE = "word_vectors.json"


@dataclass
class Preprocessing:
    """The vectorizer (vocab.txt) and, with word vectors, where the vocabulary's training words end
    and the rows the embedding starts from (word_vectors.json says what they came from)."""

    vectorizer: layers.TextVectorization
    label_names: list
    # Ids from training_words on are words of the vectors outside the training vocabulary.
    training_words: int
    # From pretrained word vectors, made when first needed: the start rows, and which ids had a vector.
    initial_embeddings: np.ndarray | None = None
    has_vector: np.ndarray | None = None
    vectors_used: dict | None = None  # WORD_VECTORS_FILE: which vectors, how many words had one

    @classmethod
    def fit(cls, splits, config) -> Preprocessing:
        vectorizer = text.adapt(splits.train["text"], config["vocab_size"], tokenisation=config["tokenisation"])
        preprocessing = cls(vectorizer, list(splits.label_names), vectorizer.vocabulary_size())
        if not config["word_vectors"]:
            return preprocessing
        words, vectors = word_vectors.load_for(config)
        if config["word_vectors_unseen_words"]:  # after the training words: their ids do not move
            preprocessing.vectorizer = text.extend(vectorizer, words[:config["word_vectors_unseen_words"]],
                                                   config["tokenisation"])
        preprocessing.initial_embeddings, preprocessing.has_vector = word_vectors.embedding_matrix(
            preprocessing.vectorizer.get_vocabulary(), words, vectors, config["word_vectors_std"], config["seed"])
        preprocessing.vectors_used = {
            "word_vectors": config["word_vectors"], "vocabulary": preprocessing.vectorizer.vocabulary_size(),
            "training_words": preprocessing.training_words, "with_vector": int(preprocessing.has_vector.sum())}
        return preprocessing

    @classmethod
    def load(cls, folder, config) -> Preprocessing:
        folder = Path(folder)
        label_names = config_lib.load(folder / "run.json")["label_names"]
        vectorizer = text.from_vocabulary(folder, config["tokenisation"])
        vectors_used = config_lib.load(folder / WORD_VECTORS_FILE) if (folder / WORD_VECTORS_FILE).exists() else None
        training_words = vectors_used["training_words"] if vectors_used else vectorizer.vocabulary_size()
        return cls(vectorizer, label_names, training_words, vectors_used=vectors_used)

    def files(self) -> dict:
        files = {text.VOCAB_FILE: text.vocabulary_text(self.vectorizer)}
        if self.vectors_used:
            files[WORD_VECTORS_FILE] = json.dumps(self.vectors_used) + "\n"
        return files


class Sentiment(TextClassifierApp):
    name = "sentiment"
    topology = "many-to-one"
    task = "text classification (sentiment)"
    default_data = ("sst2", "imdb_reviews")
    preprocessor = Preprocessing
    config = {
        **config_lib.COMMON,
        # Chosen on SST-2 dev.tsv among the variants in bench/RESULTS.md: the model overfits the
        # phrase-level data after two epochs, so it is small and heavily regularised, and averaging
        # five of them is worth more than any single-model change we tried (bench/RESULTS.md).
        "members": 5,
        "epochs": 2,
        "batch_size": 64,
        # No XLA: the SimpleRNN recurrence runs as the C++ op (rnn_apps/kernels), a third of XLA's
        # training time, and scored higher on validation over 3 seeds each (bench/RESULTS.md, "sentiment").
        "jit_compile": False,
        "units": 64,
        "bidirectional": True,
        "dropout": 0.3,  # on the SimpleRNN inputs
        "vocab_size": 20000,
        "embedding_dim": 50,
        # Start the embedding from GloVe ("" = random): bench/RESULTS.md has what it is worth.
        "word_vectors": word_vectors.GLOVE_6B_50D,
        "word_vectors_std": 0.1,
        # The most frequent words of the vectors outside the training vocabulary, added to the
        # vocabulary after its training words; after training their rows are placed where the
        # trained model expects such words (word_vectors.place_unseen_words). 0 = none.
        "word_vectors_unseen_words": 50000,
        "embedding_dropout": 0.5,
        "word_dropout": 0.25,  # training: share of words replaced by the unknown id
        "output_dropout": 0.5,
        "label_smoothing": 0.1,
        "pooling": "max",  # max | mean | max_mean (both, side by side) | last
        "max_length": 64,  # tokens; the TFLite input length
        # "ptb": SST-2's own Penn Treebank tokens (punctuation and "n't" are tokens). "regex": words
        # split as MediaPipe's RegexTokenizer splits them, PTB clitics joined back when the data is
        # read ("does n't" -> "doesn't"), so MediaPipe's TextClassifier runs sentiment_text.tflite
        # with the SavedModel's answers (pipelines/text.py). PTB scored higher on validation with the
        # C++ recurrence, 3 seeds each (bench/RESULTS.md, "sentiment").
        "tokenisation": "ptb",
        "monitor": "val_accuracy",
        "patience": 2,
    }
    config_checks = {
        "vocab_size": config_lib.at_least(3),  # padding, unknown, and at least one word
        "embedding_dim": config_lib.POSITIVE,
        "max_length": config_lib.POSITIVE,
        "word_vectors_std": config_lib.POSITIVE_NUMBER,
        "word_vectors_unseen_words": config_lib.NON_NEGATIVE,
        "embedding_dropout": config_lib.FRACTION,
        "word_dropout": config_lib.FRACTION,
        "output_dropout": config_lib.FRACTION,
        "pooling": config_lib.one_of("max", "mean", "max_mean", "last"),
        "tokenisation": config_lib.one_of(*text.TOKENISATIONS),
    }
    presets = {
        "tiny": {"epochs": 1, "max_examples": 96, "batch_size": 16, "units": 8, "embedding_dim": 8,
                 "vocab_size": 300, "max_length": 16, "jit_compile": False, "word_dropout": 0.0, "word_vectors": "",
                 "members": 1},
    }

    def load_data(self, data, data_root, config, options):
        splits = text_classification.load(
            data, Path(data_root) if data_root else None, config["seed"],
            text_column=options.get("text_column", "text"), label_column=options.get("label_column", "label"),
            tfds_data_dir=options.get("tfds_data_dir"),
        )
        if config["tokenisation"] == "regex":  # read as people write: "doesn't", not "does n't"
            for split in (splits.train, splits.validation, splits.test):
                split["text"] = text.detokenize_ptb(split["text"])
        return splits

    def dataset(self, columns, preprocessing, config, shuffle_seed=None):
        ids = text.token_ids(preprocessing.vectorizer, columns["text"], config["max_length"])
        ds = tf.data.Dataset.from_tensor_slices((ids, columns["label"]))
        ds = batching.sequence_batches(ds, config["batch_size"], config["max_length"], shuffle_seed)
        if shuffle_seed is not None and config["word_dropout"] > 0:
            # Training only, a fresh draw each epoch: hide words behind the unknown id so the
            # model cannot lean on a few memorised words.
            rate = config["word_dropout"]
            ds = ds.map(lambda x, y: (text.drop_words(x, rate, shuffle_seed), y), num_parallel_calls=tf.data.AUTOTUNE)
        return ds

    def build_model(self, config, preprocessing, unroll_length=None):
        if unroll_length:
            # Inference twin: no dropout, whose seed-state variables would stay resource
            # variables (VAR_HANDLE, CALL_ONCE) in the TFLite graph.
            config = {**config, "dropout": 0.0, "embedding_dropout": 0.0, "output_dropout": 0.0}
        token_ids = keras.Input((unroll_length,), dtype="int32", name="token_ids")
        vocab_size = preprocessing.vectorizer.vocabulary_size()
        embedding = FrozenTailEmbedding(vocab_size, config["embedding_dim"], vocab_size - preprocessing.training_words,
                                        name="embedding")
        x = embedding(token_ids)
        x = optional_dropout(x, config["embedding_dropout"])
        pooled = config["pooling"] != "last"
        x = simple_rnn_stack(x, config, unroll=unroll_length is not None, return_sequences=pooled)
        if pooled:
            x = MaskedPooling1D(config["pooling"], name="pooling")(x)
        x = optional_dropout(x, config["output_dropout"])
        probabilities = layers.Dense(len(preprocessing.label_names), activation="softmax", name="probabilities")(x)
        if config["word_vectors"] and not unroll_length:
            vocabulary = preprocessing.vectorizer.get_vocabulary()
            embedding.set_table(word_vectors.start_rows(preprocessing, vocabulary, config))
        return keras.Model(token_ids, probabilities, name=self.name)

    def after_training(self, model, config, preprocessing):
        return word_vectors.after_training(model.get_layer("embedding"), config, preprocessing,
                                           preprocessing.vectorizer.get_vocabulary())

    def stored_sizes(self, model, run):
        rows = sorted({layer.input_dim for layer in find_layers(model, FrozenTailEmbedding)})
        # an ensemble's members share one vocabulary: one row count, else the counts it has
        return [(text.VOCAB_FILE, run.preprocessing.vectorizer.vocabulary_size(),
                 rows[0] if len(rows) == 1 else " / ".join(map(str, rows)))]

    def evaluate(self, run, splits) -> dict:
        """The family's scores, and TF-IDF + logistic regression's on the same texts (the baseline
        bench compares with, text by text)."""
        result = super().evaluate(run, splits)
        baseline = metrics.tfidf_baseline(splits.train["text"], splits.train["label"], splits.test["text"],
                                          splits.test["label"])
        result["per_example"]["tfidf_baseline.accuracy"] = {"correct": baseline.pop("correct"),
                                                            "count": [1] * len(splits.test["label"])}
        return {**result, "tfidf_baseline": baseline}


APP = Sentiment()
