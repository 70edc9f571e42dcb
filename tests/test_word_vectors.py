"""Pretrained word vectors: the GloVe package installed with the project, GloVe-format files, and
the sentiment embedding that starts from them."""

import dataclasses
import json

import numpy as np
import pytest

from rnn_apps import registry, word_vectors
from rnn_apps.errors import UserError


@pytest.fixture
def vectors_file(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("the 1 2 3 4\ngood -1 0 1 2\n,  0 0 0 1\n".replace(",  ", ", "))
    return path


def test_glove_6b_50d_is_installed_with_the_project():
    words, vectors = word_vectors.load(word_vectors.GLOVE_6B_50D)
    assert vectors.shape == (400_000, 50) and vectors.dtype == np.float32
    assert words[:3] == ["the", ",", "."] and "n't" in words  # PTB-style tokens, like SST's
    np.testing.assert_allclose(vectors[0, :3], [0.418, 0.24968, -0.41242])  # glove.6B.50d.txt, line 1


def test_vectors_land_on_their_vocabulary_ids_rescaled(vectors_file):
    matrix, found = word_vectors.embedding_matrix(["", "[UNK]", "good", "unseen", "the"],
                                                  *word_vectors.load(str(vectors_file)), 0.5, 0)
    raw = np.array([[1, 2, 3, 4], [-1, 0, 1, 2], [0, 0, 0, 1]], np.float32)
    scaled = raw * 0.5 / raw.std()
    assert found == 2 and matrix.shape == (5, 4)
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
    weights = model.get_layer("embedding").get_weights()[0]
    np.testing.assert_array_equal(weights, preprocessing.initial_embeddings)
    vocabulary = preprocessing.vectorizer.get_vocabulary()
    raw = np.array([[1, 2, 3, 4], [-1, 0, 1, 2], [0, 0, 0, 1]], np.float32)
    np.testing.assert_allclose(weights[vocabulary.index("the")], raw[0] * 0.1 / raw.std(), rtol=1e-6)
    covered = sum(word in vocabulary for word in ("the", "good", ","))
    assert json.loads((tmp_path / "word_vectors.json").read_text())["with_vector"] == covered >= 2
    # A run reloaded for --resume has no rows in memory: a member that starts then gets the same.
    reloaded = dataclasses.replace(preprocessing, initial_embeddings=None)
    np.testing.assert_array_equal(app.build_model(config, reloaded).get_layer("embedding").get_weights()[0], weights)
    with pytest.raises(UserError, match="embedding_dim is 8 but the word vectors"):
        app.fit_preprocessing(splits, {**config, "embedding_dim": 8}, tmp_path)


def test_extra_words_extend_the_vocabulary_after_the_training_words(tmp_path, data_root, vectors_file):
    vectors_file.write_text(vectors_file.read_text() + "zyzzyva 0 1 0 1\nthe 9 9 9 9\n")
    app = registry.get("sentiment")
    config = app.resolve_config("tiny", {"word_vectors": str(vectors_file), "embedding_dim": 4,
                                         "word_vectors_extra_words": 4})
    splits = app.load_data("sst2", data_root, config, {}).capped(config["max_examples"], config["seed"])
    plain = app.fit_preprocessing(splits, {**config, "word_vectors_extra_words": 0}, tmp_path).vectorizer
    preprocessing = app.fit_preprocessing(splits, config, tmp_path)
    vocabulary = preprocessing.vectorizer.get_vocabulary()
    assert vocabulary[: plain.vocabulary_size()] == plain.get_vocabulary()  # training ids unchanged
    first_four = ["the", "good", ",", "zyzzyva"]  # of the vectors file
    assert vocabulary[plain.vocabulary_size():] == [w for w in first_four if w not in plain.get_vocabulary()]
    assert preprocessing.initial_embeddings.shape == (len(vocabulary), 4)
    assert (tmp_path / "vocab.txt").read_text().splitlines()[-1] == "zyzzyva"
    ids = preprocessing.vectorizer(["zyzzyva"]).to_list()[0]
    assert ids == [len(vocabulary) - 1]
