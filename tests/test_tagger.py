"""tagger: tokenisation and token features, the masked per-token loss and accuracy, and the app
end to end on a tiny run (CLI, both SavedModel signatures on odd input, TFLite, query)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from rnn_apps.apps import tagger
from rnn_apps.families import label_steps
from tests.test_cli import assert_one_line_error, invoke
from tests.test_faults import copy_run


def test_tokenisation_splits_punctuation_and_clitics_like_ud_english():
    tokens = tagger.tokenize(tf.constant(['I don\'t know, "he" said.', "", "   ", b"\xffok"])).to_list()
    assert tokens[0] == [b"I", b"do", b"n't", b"know", b",", b'"', b"he", b'"', b"said", b"."]
    assert tokens[1] == [] and tokens[2] == [] and tokens[3] == ["\ufffdok".encode()]


def test_shape_ids_and_suffixes():
    shapes = tagger.shape_ids(tf.constant(["the", "The", "USA", "2019", "e-mail", "-", "", "Ünïcode"])).numpy()
    assert shapes.tolist() == [1, 2, 4, 5, 9, 25, 0, 2]


def test_features_of_a_tiny_run(tiny_run):
    run = tiny_run("tagger")
    words = run.preprocessing.words.get_vocabulary()
    tokens = tf.ragged.constant([["The", "running", "a"], ["zzzzqq"]])
    features = run.app.features(run.preprocessing, tokens)
    assert features["word_ids"].to_list()[0][0] == words.index("the")  # lower-cased
    assert features["word_ids"].to_list()[1] == [1]  # unknown
    suffixes = run.preprocessing.suffixes.get_vocabulary()
    ids = features["suffix_ids"].to_list()
    assert suffixes[ids[0][1]] in ("ing", "[UNK]") and suffixes[ids[0][2]] in ("a", "[UNK]")
    assert features["shape_ids"].to_list() == [[2, 1, 1], [1]]


def test_the_training_loss_counts_real_tokens_only(tiny_run):
    """Padding is masked in the loss: on a padded batch, Keras's loss is the mean over words alone."""
    run = tiny_run("tagger")
    validation = run.app.dataset(run.load_data().validation, run.preprocessing, run.config)
    inputs, targets = next(iter(validation))
    mask = inputs["word_ids"].numpy() != 0
    assert not mask.all()  # the batch holds padding
    probabilities = run.model(inputs).numpy()
    picked = np.take_along_axis(probabilities, targets.numpy()[..., None], -1)[..., 0]
    keras_loss = run.model.test_on_batch(inputs, targets, return_dict=True)["loss"]
    np.testing.assert_allclose(keras_loss, -np.log(picked)[mask].mean(), rtol=1e-4)
    assert abs(keras_loss - (-np.log(picked).mean())) > 1e-4  # counting padding would differ


def test_evaluate_reports_accuracy_unseen_words_per_tag_and_errors(tiny_run):
    run = tiny_run("tagger")
    result = invoke("evaluate", run.dir, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    test = run.load_data().test
    assert metrics["sentences"] == 96
    assert metrics["tokens"] == sum(min(len(s.split("\t")), run.config["max_length"]) for s in test["tokens"])
    assert 0 <= metrics["accuracy"] <= 1 and 0 < metrics["unseen_word_tokens"] < metrics["tokens"]
    assert set(metrics["per_tag"]) == set(run.preprocessing.tag_names)
    assert sum(t["count"] for t in metrics["per_tag"].values()) == metrics["tokens"]
    assert sum(metrics["most_frequent_errors"].values()) <= metrics["tokens"]
    counted = run.per_example("test")["metrics"]  # per sentence, for bench's bootstrap
    assert len(counted["accuracy"]["count"]) == 96 and sum(counted["accuracy"]["count"]) == metrics["tokens"]
    assert sum(counted["accuracy"]["correct"]) / metrics["tokens"] == pytest.approx(metrics["accuracy"])
    unseen = counted["unseen_word_accuracy"]
    assert sum(unseen["count"]) == metrics["unseen_word_tokens"]
    assert sum(unseen["correct"]) / sum(unseen["count"]) == pytest.approx(metrics["unseen_word_accuracy"])
    # the most-frequent-tag baseline, fit on the training sentences, scored on the same test tokens
    from rnn_apps.metrics import most_frequent_labels

    train = run.load_data().train
    length = run.config["max_length"]
    sentences = [s.split("\t")[:length] for s in test["tokens"]]
    guessed = most_frequent_labels([s.split("\t") for s in train["tokens"]], [t.split("\t") for t in train["tags"]],
                                   sentences)
    right = sum(g == t for guess, tags in zip(guessed, test["tags"], strict=True)
                for g, t in zip(guess, tags.split("\t")[:length], strict=True))
    assert metrics["most_frequent_baseline"]["accuracy"] == pytest.approx(right / metrics["tokens"])
    assert sum(counted["most_frequent_baseline.accuracy"]["correct"]) == right


def test_predict_prints_token_tag_pairs(tiny_run):
    run = tiny_run("tagger")
    result = invoke("predict", run.dir, "The old man the boats .", "", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert rows[0]["tokens"] == ["The", "old", "man", "the", "boats", "."] and len(rows[0]["tags"]) == 6
    assert set(rows[0]["tags"]) <= set(run.preprocessing.tag_names)
    assert rows[1]["tokens"] == [] and rows[1]["tags"] == []
    text = invoke("predict", run.dir, "The boats")
    assert text.exit_code == 0 and text.stdout.startswith("The/") and " boats/" in text.stdout
    stdin = invoke("predict", run.dir, input=b"ok then\n\xff\xfe bad\n")
    assert stdin.exit_code == 0 and len(stdin.stdout.strip("\n").split("\n")) == 2
    # a sentence longer than max_length: its first max_length tokens tagged, and the rest said, not dropped silently
    length = run.config["max_length"]
    long = invoke("predict", run.dir, " ".join(["word"] * (length + 6)), "--json")
    row = json.loads(long.stdout.strip())
    assert len(row["tags"]) == length and row["not_labelled"] == 6 and rows[0]["not_labelled"] == 0
    assert invoke("predict", run.dir, " ".join(["word"] * (length + 6))).stdout.rstrip().endswith(
        "[6 more not labelled: over max_length]")


def test_saved_model_signatures_agree_and_give_defined_outputs(tiny_export, tiny_run):
    root, entry = tiny_export("tagger")
    run = tiny_run("tagger")
    loaded = tf.saved_model.load(str(root / "tagger" / "1"))
    raw, given = loaded.signatures["serving_default"], loaded.signatures["tag_tokens"]
    odd = [b"The old man the boats .", b"", b"   ", b"\xff\xfe", "\u4e2d\u6587 text".encode(), b"word " * 200_000]
    out = {k: v.numpy() for k, v in raw(text=tf.constant(odd)).items()}
    length = run.config["max_length"]
    # a long text is tagged by its first max_length tokens alone (both directions of the RNN read no
    # further): the same probabilities as those tokens sent by themselves
    words = [f"w{i % 97}" for i in range(20_000)]
    cut = raw(text=tf.constant([" ".join(words).encode(), " ".join(words[:length]).encode()]))
    np.testing.assert_allclose(cut["probabilities"][0], cut["probabilities"][1], atol=1e-6)
    assert out["lengths"].tolist()[:4] == [6, 0, 0, 1] and out["lengths"][5] == length
    # how much of each input was read: every token of a short one; of the long one, all in its first 64 kB
    assert out["input_lengths"].tolist()[:5] == [6, 0, 0, 1, 2] and out["input_lengths"][5] == 65536 // 5 + 1
    assert cut["input_lengths"].numpy().tolist() == [len(" ".join(words)[:65536].split()), length]
    assert out["tags"].shape == out["tag_ids"].shape == out["probabilities"].shape == out["tokens"].shape
    padding = out["tokens"] == b""
    assert (out["tag_ids"][padding] == label_steps.PADDING_TAG_ID).all() and (out["tags"][padding] == b"").all()
    assert (out["probabilities"][padding] == 0).all() and (out["probabilities"][~padding] > 0).all()
    tokens = tf.constant([[b"The", b"old", b"man", b"the", b"boats", b"."], [b"x", b"", b"", b"", b"", b""]])
    from_tokens = {k: v.numpy() for k, v in given(tokens=tokens).items()}
    np.testing.assert_array_equal(from_tokens["tags"][0], out["tags"][0][:6])
    assert from_tokens["lengths"].tolist() == [6, 1]
    signatures = next(a for a in entry["artefacts"] if a["kind"] == "saved_model")["signatures"]
    assert set(signatures) == {"serving_default", "tag_tokens"}


def test_query_shows_the_saved_model_and_tflite_tags(tiny_export):
    root, entry = tiny_export("tagger")
    assert set(entry["parity"]["cases"][0]["tflite"]) == {"phone_probabilities"}
    result = invoke("query", root, "--name", "tagger", "The old man the boats .", "", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert rows[0]["tokens"] == ["The", "old", "man", "the", "boats", "."]
    for row in rows:
        assert row["saved_model"] == row["tflite"]


def test_a_tag_or_suffix_list_edited_since_training_is_refused(tiny_run, tmp_path):
    """A tags.txt that lost its first line would shift every tag (The/INTJ old/ADP ...): every file
    the run stores is checked against the model when the run loads (App.stored_sizes)."""
    run = tiny_run("tagger")
    tags = (run.dir / tagger.TAGS).read_text().splitlines()
    for name, edit in ((tagger.TAGS, lambda text: "\n".join(text.splitlines()[1:]) + "\n"),
                       (tagger.TAGS, lambda text: ""),
                       (tagger.SUFFIXES, lambda text: text + "zzz\n")):
        copy = copy_run(run, tmp_path / f"{name}-{len(edit((run.dir / name).read_text()))}")
        (copy / name).write_text(edit((copy / name).read_text()))
        for args in (["predict", copy, "The old man the boats ."], ["evaluate", copy]):
            assert_one_line_error(invoke(*args), f"{name} holds", "the file does not belong to this model")
    assert len(tags) == len(run.preprocessing.tag_names)  # the run itself is untouched
