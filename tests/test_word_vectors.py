"""Pretrained word vectors: the GloVe package installed with the project, GloVe-format files, and
the sentiment embedding that starts from them."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from foundation.errors import UserError
from rnn_apps import config as config_lib
from rnn_apps import registry, word_vectors


@pytest.fixture
def vectors_file(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("the 1 2 3 4\ngood -1 0 1 2\n,  0 0 0 1\n".replace(",  ", ", "))
    return path


def table(model):
    return keras.ops.convert_to_numpy(model.get_layer("embedding").table())


def test_glove_6b_50d_is_installed_with_the_project():
    words, vectors = word_vectors.load(word_vectors.GLOVE_6B_50D)
    assert vectors.shape == (400_000, 50) and vectors.dtype == np.float32
    assert words[:3] == ["the", ",", "."] and "n't" in words  # PTB-style tokens, like SST's
    np.testing.assert_allclose(vectors[0, :3], [0.418, 0.24968, -0.41242])  # glove.6B.50d.txt, line 1


def test_vectors_land_on_their_vocabulary_ids_rescaled(vectors_file):
    matrix, has_vector = word_vectors.embedding_matrix(["", "[UNK]", "good", "unseen", "the"],
                                                       *word_vectors.load(str(vectors_file)), 0.5, 0)
    raw = np.array([[1, 2, 3, 4], [-1, 0, 1, 2], [0, 0, 0, 1]], np.float32)
    scaled = raw * 0.5 / raw.std()
    assert has_vector.tolist() == [False, False, True, False, True] and matrix.shape == (5, 4)
    np.testing.assert_allclose(matrix[4], scaled[0], rtol=1e-6)
    np.testing.assert_allclose(matrix[2], scaled[1], rtol=1e-6)
    assert not matrix[0].any()  # padding
    assert matrix[1].any() and matrix[3].any()  # no vector: random, same scale


@pytest.mark.parametrize("content, message", [
    ("a 1 2\nb 1\n", "vectors.txt:2: 1 numbers where earlier lines have 2"),
    ("a 1 x\n", "vectors.txt:1: not a GloVe line"),
    ("", "holds no word vectors"),
])
def test_bad_vector_files_are_user_errors(tmp_path, content, message):
    path = tmp_path / "vectors.txt"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        word_vectors.load(str(path))
    with pytest.raises(UserError, match="neither 'glove.6B.50d' nor a GloVe-format text file"):
        word_vectors.load(str(tmp_path / "missing.txt"))


def test_sentiment_embedding_starts_from_the_vectors(tmp_path, data_root, vectors_file):
    app = registry.get("sentiment")
    config = app.resolve_config("tiny", {"word_vectors": str(vectors_file), "embedding_dim": 4})
    splits = app.load_data("sst2", data_root, config, {}).capped(config["max_examples"], config["seed"])
    preprocessing = app.fit_preprocessing(splits, config, tmp_path)
    model = app.build_model(config, preprocessing)
    weights = table(model)
    np.testing.assert_array_equal(weights, preprocessing.initial_embeddings)
    vocabulary = preprocessing.vectorizer.get_vocabulary()
    raw = np.array([[1, 2, 3, 4], [-1, 0, 1, 2], [0, 0, 0, 1]], np.float32)
    np.testing.assert_allclose(weights[vocabulary.index("the")], raw[0] * 0.1 / raw.std(), rtol=1e-6)
    covered = sum(word in vocabulary for word in ("the", "good", ","))
    assert json.loads((tmp_path / "word_vectors.json").read_text())["with_vector"] == covered >= 2
    # A run reloaded for --resume has no rows in memory: a member that starts then gets the same.
    reloaded = dataclasses.replace(preprocessing, initial_embeddings=None)
    np.testing.assert_array_equal(table(app.build_model(config, reloaded)), weights)
    with pytest.raises(UserError, match="embedding_dim is 8 but the word vectors"):
        app.fit_preprocessing(splits, {**config, "embedding_dim": 8}, tmp_path)


def test_unseen_words_extend_the_vocabulary_after_the_training_words(tmp_path, data_root, vectors_file):
    vectors_file.write_text(vectors_file.read_text() + "zyzzyva 0 1 0 1\nthe 9 9 9 9\n")
    app = registry.get("sentiment")
    config = app.resolve_config("tiny", {"word_vectors": str(vectors_file), "embedding_dim": 4,
                                         "word_vectors_unseen_words": 4})
    splits = app.load_data("sst2", data_root, config, {}).capped(config["max_examples"], config["seed"])
    plain = app.fit_preprocessing(splits, {**config, "word_vectors_unseen_words": 0}, tmp_path).vectorizer
    preprocessing = app.fit_preprocessing(splits, config, tmp_path)
    vocabulary = preprocessing.vectorizer.get_vocabulary()
    assert preprocessing.training_words == plain.vocabulary_size()
    assert vocabulary[: plain.vocabulary_size()] == plain.get_vocabulary()  # training ids unchanged
    first_four = ["the", "good", ",", "zyzzyva"]  # of the vectors file
    assert vocabulary[plain.vocabulary_size():] == [w for w in first_four if w not in plain.get_vocabulary()]
    assert preprocessing.initial_embeddings.shape == (len(vocabulary), 4)
    assert (tmp_path / "vocab.txt").read_text().splitlines()[-1] == "zyzzyva"
    ids = preprocessing.vectorizer(["zyzzyva"]).to_list()[0]
    assert ids == [len(vocabulary) - 1]
    # The unseen rows are the embedding's frozen tail; a reloaded run knows where it starts.
    embedding = app.build_model(config, preprocessing).get_layer("embedding")
    assert embedding.frozen_rows == len(vocabulary) - plain.vocabulary_size() >= 1
    assert [w.name for w in embedding.trainable_weights] == ["embeddings"]
    (tmp_path / "run.json").write_text(json.dumps({"label_names": preprocessing.label_names}))
    assert app.load_preprocessing(tmp_path, config).training_words == plain.vocabulary_size()


def test_place_unseen_words_recovers_an_affine_map():
    rng = np.random.default_rng(0)
    linear, bias = rng.normal(size=(6, 6)), rng.normal(size=6)
    start, unseen = rng.normal(size=(200, 6)), rng.normal(size=(5, 6))
    placed = word_vectors.place_unseen_words(start, start @ linear + bias, unseen, ridge=1e-9)
    np.testing.assert_allclose(placed, unseen @ linear + bias, rtol=1e-4, atol=1e-4)
    assert placed.dtype == np.float32


def small_vectors_file(path, words, dim=8, seed=1):
    rng = np.random.default_rng(seed)
    path.write_text("".join(f"{w} {' '.join(f'{v:.4f}' for v in rng.normal(size=dim))}\n" for w in words))
    return path


WORDS = ["the", "a", ",", ".", "and", "film", "movie", "good", "bad", "it", "zyzzyva", "blorfish", "quux"]


def test_trained_run_places_its_unseen_words_and_exports_with_parity(tmp_path, train_tiny, data_root):
    from export import exporter
    from rnn_apps.run import load_model

    path = small_vectors_file(tmp_path / "vectors.txt", WORDS)
    # seed 1: its members are seeds 2 and 3 (config.member_seed), not 1 and 2 (seed 0's second member)
    run = train_tiny("sentiment", tmp_path / "run", word_vectors=str(path), embedding_dim=8, members=2,
                     word_vectors_unseen_words=100, seed=1)
    vocabulary, seen = run.preprocessing.vectorizer.get_vocabulary(), run.preprocessing.training_words
    assert vocabulary[seen:][-3:] == ["zyzzyva", "blorfish", "quux"]
    for i in range(2):
        embedding = load_model(run.dir / "members" / str(i) / "checkpoints" / "best.keras").get_layer("embedding")
        start, has_vector = word_vectors.embedding_matrix(vocabulary, *word_vectors.load(str(path)), 0.1,
                                                          config_lib.member_seed(run.config, i))
        trained, fit = keras.ops.convert_to_numpy(embedding.trained), has_vector[:seen]
        expected = word_vectors.place_unseen_words(start[:seen][fit], trained[fit], start[seen:])
        frozen = keras.ops.convert_to_numpy(embedding.frozen)
        np.testing.assert_allclose(frozen, expected, atol=1e-6)
        assert not np.allclose(frozen, start[seen:], atol=1e-3)  # moved from where the vectors start
    unknown, placed = run.app.predict(run, ["qqqqq", "zyzzyva"])
    assert unknown["probability"] != placed["probability"]  # the placed row is what the model reads
    entry = exporter.export_run(run, tmp_path / "export", echo=lambda *_: None)
    assert entry["parity"]["ok"], entry["parity"]


def test_resumed_run_places_its_unseen_words_from_its_best_weights(tmp_path, train_tiny, data_root):
    from rnn_apps.run import Run
    from rnn_apps.train import train

    path = small_vectors_file(tmp_path / "vectors.txt", WORDS)
    run = train_tiny("sentiment", tmp_path / "run", word_vectors=str(path), embedding_dim=8,
                     word_vectors_unseen_words=100)
    train(run.app, run.config, None, data_root, run.dir, {}, resume=True, resume_epochs=2, echo=lambda *_: None)
    resumed = Run(run.dir)
    assert resumed.preprocessing.training_words == run.preprocessing.training_words
    embedding = resumed.model.get_layer("embedding")
    vocabulary, seen = resumed.preprocessing.vectorizer.get_vocabulary(), resumed.preprocessing.training_words
    start, has_vector = word_vectors.embedding_matrix(vocabulary, *word_vectors.load(str(path)), 0.1, 0)
    trained, fit = keras.ops.convert_to_numpy(embedding.trained), has_vector[:seen]
    after = keras.ops.convert_to_numpy(embedding.frozen)
    np.testing.assert_allclose(after, word_vectors.place_unseen_words(start[:seen][fit], trained[fit], start[seen:]),
                               atol=1e-6)
