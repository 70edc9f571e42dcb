"""Data sources (local folders, CSV/TSV, TFDS under mock_data) and the tf.data pipeline."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from foundation.errors import UserError
from pipelines import batching, images, text, text_classification, tfds_source


def test_sst2_folder_reads_the_published_counts(data_root):
    splits = text_classification.load("sst2", data_root, seed=0)
    assert (splits.size("train"), splits.size("validation"), splits.size("test")) == (67349, 872, 1821)
    assert splits.label_names == ["negative", "positive"]
    assert np.bincount(splits.test["label"]).tolist() == [912, 909]
    assert not any(t.endswith("\r") for t in splits.train["text"])  # CRLF stripped
    assert "sst2/test.tsv" in splits.describe()


def test_rt_polarity_decodes_cp1252_and_splits_seeded(data_root):
    a = text_classification.load(str(data_root / "rt_polarity"), None, seed=3)
    b = text_classification.load("rt_polarity", data_root, seed=3)
    total = sum(a.size(s) for s in ("train", "validation", "test"))
    assert total == 2 * 5331
    assert (a.size("test"), a.size("validation")) == (1066, 1066)
    np.testing.assert_array_equal(a.test["text"], b.test["text"])
    assert any("é" in t for t in a.train["text"]) or any("é" in t for t in a.test["text"])
    c = text_classification.load("rt_polarity", data_root, seed=4)
    assert not np.array_equal(a.test["text"], c.test["text"])


def test_csv_file_with_named_columns(tmp_path):
    path = tmp_path / "reviews.csv"
    rows = ["review,stars"] + [f"\"text number {i}, ok\",{'good' if i % 2 else 'bad'}" for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    splits = text_classification.load(str(path), None, seed=0, text_column="review", label_column="stars")
    assert splits.label_names == ["bad", "good"]
    assert sum(splits.size(s) for s in ("train", "validation", "test")) == 40
    assert splits.train["text"][0].startswith("text number")


def test_csv_missing_column_names_the_columns(tmp_path):
    path = tmp_path / "reviews.tsv"
    path.write_text("review\tstars\nfine\t1\n")
    with pytest.raises(UserError, match=r"no column 'text'; its columns are: review, stars"):
        text_classification.load(str(path), None, seed=0)


def test_unknown_dataset_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no dataset 'nope'"):
        text_classification.load("nope", tmp_path, seed=0)


@pytest.fixture
def online(monkeypatch):
    """A connected machine: the download host answers (mock_data then stands in for the download)."""
    monkeypatch.setattr(tfds_source, "_reachable", lambda url: True)


def test_tfds_imdb_reviews_through_mock_data(online):
    with tfds.testing.mock_data(num_examples=12):
        splits = text_classification.load("imdb_reviews", None, seed=0)
    assert splits.label_names == ["neg", "pos"]
    assert splits.size("train") + splits.size("validation") == 12 and splits.size("test") == 12
    assert isinstance(splits.train["text"][0], str)
    assert "tfds imdb_reviews 'test'" in splits.describe()


def test_tfds_mnist_through_mock_data_is_resized_to_digits_scale(online):
    with tfds.testing.mock_data(num_examples=10):
        splits = images.load("mnist", seed=0)
    assert splits.train["pixels"].shape[1:] == (64,)
    assert splits.test["pixels"].min() >= 0 and splits.test["pixels"].max() <= 16
    assert splits.label_names == [str(d) for d in range(10)]


def test_tfds_unreachable_download_fails_fast_with_advice(monkeypatch, tmp_path):
    monkeypatch.setattr(tfds_source, "_reachable", lambda url: False)
    with pytest.raises(UserError, match=r"cannot be reached to download it.*--data-root"):
        tfds_source.load("imdb_reviews", 0, lambda cols: cols, data_dir=str(tmp_path))


def test_sklearn_digits_split_is_stratified_80_20():
    splits = images.load("digits", seed=0)
    assert splits.size("test") == 360 and splits.size("train") + splits.size("validation") == 1437
    counts = np.bincount(splits.test["label"])
    assert counts.min() >= 35 and counts.max() <= 37


def test_tokenisation_rules_match_sst_style():
    layer = text.adapt(["it is n't good , is it ?", "the cast 's work"], max_tokens=100)
    vocabulary = layer.get_vocabulary()
    ids = text.token_ids(layer, ["It isn't GOOD, is it?", "the cast's work"], 10).to_list()
    assert [vocabulary[i] for i in ids[0]] == ["it", "is", "n't", "good", ",", "is", "it", "?"]
    assert [vocabulary[i] for i in ids[1]] == ["the", "cast", "'s", "work"]


def test_vocabulary_round_trip_gives_the_same_ids(tmp_path):
    layer = text.adapt(["a b c", "c d e é 😀"], max_tokens=100)
    (tmp_path / text.VOCAB_FILE).write_text(text.vocabulary_text(layer), encoding="utf-8")
    again = text.from_vocabulary(tmp_path)
    assert again.get_vocabulary() == layer.get_vocabulary()
    sample = ["c d é 😀 unknownword", ""]
    assert text.token_ids(again, sample, 8).to_list() == text.token_ids(layer, sample, 8).to_list()


def test_odd_strings_tokenise_to_defined_ids():
    layer = text.adapt(["good movie"], max_tokens=10)
    odd = tf.constant([b"", b"   ", b"\xff\xfe\xfa", "😀 مرحبا 你好".encode(), b"good " * 200_000])
    ids = text.token_ids(layer, odd, 16)
    assert ids.row_lengths().numpy().tolist() == [0, 0, 1, 3, 16]
    assert ids[4].numpy().tolist() == [layer.get_vocabulary().index("good")] * 16


def test_regex_tokenisation_is_what_mediapipes_tokenizer_reads():
    layer = text.adapt(text.detokenize_ptb(["it does n't work , the film 's cast -lrb- ok -rrb-", "McQueen rocks"]),
                       max_tokens=100, tokenisation="regex")
    vocabulary = layer.get_vocabulary()
    assert {"doesn't", "film's", "McQueen"} <= set(vocabulary) and not {",", "n't", "-lrb-", "("} & set(vocabulary)
    word = vocabulary.index
    odd = ["It DOESN'T work!", "Cast, CAST, cast, cAST", "McQueen MCQUEEN mcqueen", "café😀ok_ok", b"\xff\xfe", "",
           "work " * 50_000]
    ids = text.padded_ids(layer, [t if isinstance(t, str) else t.decode("latin-1") for t in odd], 6)
    assert ids[0].tolist() == [word("it"), word("doesn't"), word("work"), 0, 0, 0]
    assert ids[1].tolist() == [word("cast")] * 3 + [1, 0, 0]  # three spellings of a word; "cAST" is unknown
    assert ids[2].tolist() == [word("McQueen"), 1, 1, 0, 0, 0]  # a mixed-case word only as it was written
    assert ids[3].tolist() == [1, 1, 0, 0, 0, 0] and ids[5].tolist() == [0] * 6
    assert ids[6].tolist() == [word("work")] * 6
    # the vocabulary MediaPipe reads, and the Python phone client over it, give the same ids
    lines = text.mediapipe_vocabulary(vocabulary)
    doesnt = word("doesn't")
    assert lines.startswith("<PAD> 0\n<UNKNOWN> 1\n") and f"DOESN'T {doesnt}\n" in lines
    assert "MCQUEEN" not in lines and len({line.rsplit(" ", 1)[0] for line in lines.split("\n")}) == \
        len(lines.split("\n"))
    np.testing.assert_array_equal(text.regex_ids(odd[:2] + odd[2:4] + odd[5:], lines, 6),
                                  np.delete(ids, 4, axis=0))


def test_buckets_pad_only_to_the_bucket_boundary():
    assert batching.bucket_boundaries(64) == [9, 17, 33, 65]
    assert batching.bucket_boundaries(16) == [9, 17]
    assert batching.bucket_boundaries(32, first=6, growth=1.25) == [7, 9, 11, 13, 16, 20, 25, 31, 33]
    sequences = tf.ragged.constant([[1, 2], [3, 4, 5], [6] * 12, [7] * 13, [8] * 30])
    ds = tf.data.Dataset.from_tensor_slices((sequences, tf.constant([0, 1, 0, 1, 0])))
    shapes = sorted(x.shape[1] for x, _ in batching.sequence_batches(ds, batch_size=8, max_length=20))
    assert shapes == [8, 16, 20]  # 2-3 tokens -> 8, 12-13 -> 16, 30 truncated to 20
    padded = next(x for x, _ in batching.sequence_batches(ds, 8, 20) if x.shape[1] == 8).numpy()
    assert padded.tolist() == [[1, 2, 0, 0, 0, 0, 0, 0], [3, 4, 5, 0, 0, 0, 0, 0]]


def test_shuffle_is_seeded():
    ds = tf.data.Dataset.from_tensor_slices((tf.reshape(tf.range(1, 201), [200, 1]), tf.zeros(200)))
    first = [x.numpy().ravel().tolist() for x, _ in batching.sequence_batches(ds, 50, 4, shuffle_seed=7)]
    again = [x.numpy().ravel().tolist() for x, _ in batching.sequence_batches(ds, 50, 4, shuffle_seed=7)]
    assert first == again and first[0] != list(range(1, 51))
    partial = tf.data.Dataset.from_tensor_slices((tf.reshape(tf.range(1, 131), [130, 1]), tf.zeros(130)))
    sizes = [len(x) for x, _ in batching.sequence_batches(partial, 50, 4, shuffle_seed=7)]
    assert sizes == [50, 50]  # training drops the partial batch: one XLA shape per bucket
    assert sorted(len(x) for x, _ in batching.sequence_batches(partial, 50, 4)) == [30, 50, 50]


def test_image_pixels_from_any_size_and_channels():
    rgb = np.zeros((2, 32, 24, 3), np.uint8)
    rgb[:, :16, :, :] = 255
    pixels = images.to_pixels(rgb).numpy()
    assert pixels.shape == (2, 64)
    np.testing.assert_allclose(pixels[0, :32], 16.0, atol=1e-2)  # gray weights sum to 0.9999
    np.testing.assert_allclose(pixels[0, 32:], 0.0, atol=1e-4)
    assert images.to_pixels(np.zeros((1, 0, 5, 1), np.uint8)).numpy().tolist() == [[0.0] * 64]
    assert images.sanitize(tf.constant([[np.nan, -3.0, 40.0]])).numpy().tolist() == [[0.0, 0.0, 16.0]]


def test_word_dropout_hides_words_but_never_padding():
    ids = tf.constant([[5, 6, 7, 8, 0, 0]] * 500, tf.int64)
    dropped = text.drop_words(ids, 0.25, seed=1).numpy()
    assert (dropped[:, 4:] == 0).all()
    real = dropped[:, :4]
    assert set(np.unique(real)) <= {1, 5, 6, 7, 8}
    assert 0.2 < (real == 1).mean() < 0.3


def test_images_whose_header_states_too_many_pixels_are_not_decoded(monkeypatch):
    """caption's in-graph decoding (SavedModel image_bytes, training) reads width x height from each
    format's header first: above MAX_IMAGE_PIXELS the image is is_image False, never decoded (an
    8200x8200 PNG took 2 GB to decode). Here the limit is lowered to 1,000 pixels."""
    import io

    import tensorflow as tf
    from PIL import Image

    from pipelines import captions, images

    def encoded(fmt, width, height):
        data = io.BytesIO()
        Image.new("RGB", (width, height), (200, 10, 10)).save(data, fmt)
        return data.getvalue()

    for fmt in ("PNG", "JPEG", "GIF", "BMP"):
        assert captions.header_pixels(tf.constant(encoded(fmt, 37, 23))).numpy() == 37 * 23, fmt
    assert captions.header_pixels(tf.constant(b"not an image")).numpy() == 0
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 1000)
    batch = [encoded("PNG", 50, 50), encoded("PNG", 20, 20), encoded("JPEG", 40, 30), encoded("JPEG", 25, 40),
             encoded("GIF", 10, 10), encoded("GIF", 100, 11), encoded("BMP", 100, 11), encoded("BMP", 30, 30),
             encoded("PNG", 20, 20)[:30], b""]
    pixels, is_image = captions.decode_images(batch, 8)
    assert is_image.numpy().tolist() == [False, True, False, True, True, False, False, True, False, False]
    assert pixels.numpy()[1, 0, 0, 0] > 150 and (pixels.numpy()[0] == 0).all()  # refused: black, not decoded
