"""translate: sentence-pair data, tokenisation, the shared decoding loops, and the app end to end
on a tiny run (CLI, SavedModel signatures, the TFLite reference loop, odd input)."""

import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from export import step_loop
from foundation.errors import UserError
from pipelines import text, translation
from rnn_apps import decoding, registry
from tests.test_cli import assert_one_line_error, invoke

# --- data -------------------------------------------------------------------------------------


def test_spa_eng_splits_by_source_sentence_with_2000_test_pairs(data_root):
    splits = translation.load("spa_eng", data_root, 0, "spa-en")
    sizes = [splits.size(s) for s in ("train", "validation", "test")]
    assert sum(sizes) == 118_964 and sizes[1] >= 2000 and sizes[2] >= 2000
    train, validation, test = (set(splits[s]["source"]) for s in ("train", "validation", "test"))
    assert not train & test and not train & validation and not validation & test
    assert "¿Dónde está la biblioteca?" in train | validation | test  # Spanish is the source
    assert splits.train["target"][0][0].isupper()  # English keeps its case
    other = translation.load("spa_eng", data_root, 1, "spa-en")
    assert set(other.test["source"]) != test  # seeded
    reverse = translation.load("spa_eng", data_root, 0, "en-spa")
    assert set(reverse.train["target"]) <= set(splits.train["source"]) | set(splits.validation["source"]) | test


def test_kor_eng_reads_two_text_columns_and_refuses_a_wrong_direction(data_root):
    splits = translation.load("kor_eng", data_root, 0, "ko-en")
    assert sum(splits.size(s) for s in ("train", "validation", "test")) == 5749
    assert not any("CC-BY" in t or "tatoeba" in t for t in splits.train["target"])  # attribution left out
    assert any("\uac00" <= c <= "\ud7a3" for c in splits.train["source"][0])  # Hangul
    with pytest.raises(UserError, match="direction spa-en does not fit kor_eng"):
        translation.load("kor_eng", data_root, 0, "spa-en")
    with pytest.raises(UserError, match="expected SOURCE-TARGET"):
        translation.load("kor_eng", data_root, 0, "korean")


def test_a_tied_output_layer_needs_attention_as_wide_as_the_embedding():
    app = registry.get("translate")
    with pytest.raises(UserError, match=r"attention_units \(8\) must equal embedding_dim \(16\)"):
        app.resolve_config("tiny", {"embedding_dim": 16})
    assert app.resolve_config("tiny", {"embedding_dim": 16, "tied_output": "false"})["tied_output"] is False


def test_tfds_ted_hrlr_goes_through_the_same_path_under_mock_data(monkeypatch):
    from pipelines import tfds_source

    monkeypatch.setattr(tfds_source, "_reachable", lambda url: True)  # mock_data stands in for the download
    with tfds.testing.mock_data(num_examples=6):
        splits = translation.load("ted_hrlr_translate/pt_to_en", None, 0, "pt-en")
        assert [splits.size(s) for s in ("train", "validation", "test")] == [6, 6, 6]
        assert isinstance(splits.train["source"][0], str) and isinstance(splits.train["target"][0], str)
        assert "tfds ted_hrlr_translate/pt_to_en 'validation', pt->en" == splits.origin["validation"]
        with pytest.raises(UserError, match="whose features are en, pt"):
            translation.load("ted_hrlr_translate/pt_to_en", None, 0, "spa-en")


def test_word_tokenisation_splits_spanish_punctuation_and_detokenises():
    source = translation.vectorizer("spa", "source", vocabulary=["¿", "dónde", "está", "la", "?"])
    assert source(tf.constant(["¿Dónde está LA biblioteca?"])).to_list() == [[2, 3, 4, 5, 1, 6]]
    tokens = tf.constant([["Where's", "the", "library", "?", ""], ["¿", "Hola", ",", "tú", "!"]])
    assert translation.detokenize(tokens, "en").numpy().tolist() == [b"Where's the library?", "¿Hola, tú!".encode()]


def test_korean_is_tokenised_by_character_with_a_space_token():
    layer = translation.vectorizer("ko", "source", vocabulary=["안", "녕", translation.SPACE, "!"])
    assert layer(tf.constant(["안녕  안녕!"])).to_list() == [[2, 3, 4, 2, 3, 5]]
    tokens = tf.constant([["안", "녕", translation.SPACE, "녕", ""]])
    assert translation.detokenize(tokens, "ko").numpy().tolist() == ["안녕 녕".encode()]


# --- the decoding loops ---------------------------------------------------------------------------

# Vocabulary: 0 padding, 1 unknown, 2 START, 3 END, 4 A, 5 B, 6 C. From START, A (0.55) beats B
# (0.45); but A ends with 0.4 and B with 0.9: greedy writes "A", a beam of 2 finds "B".
TABLE = np.full((7, 7), 1e-6, np.float32)
TABLE[2, [4, 5]] = [0.55, 0.45]
TABLE[4, [3, 6, 5]] = [0.4, 0.3, 0.3]
TABLE[5, 3] = TABLE[6, 3] = TABLE[0, 3] = TABLE[3, 3] = 0.9
LOG_TABLE = tf.math.log(tf.constant(TABLE / TABLE.sum(1, keepdims=True)))


def table_step(tokens, cache):
    return tf.gather(LOG_TABLE, tokens), {"steps": cache["steps"] + 1}


def test_greedy_and_beam_search_on_a_known_table():
    cache = {"steps": tf.zeros([3])}
    ids, lengths = decoding.greedy(table_step, cache, 2, 3, tf.constant([5, 1, 0]))
    assert ids.numpy().tolist() == [[4], [4], [0]] and lengths.numpy().tolist() == [1, 1, 0]
    ids, lengths = decoding.beam_search(table_step, cache, 2, 3, tf.constant([5, 1, 0]), width=2)
    assert lengths.numpy().tolist() == [1, 1, 0]
    assert ids.numpy().tolist() == [[5], [5], [0]]  # the likelier whole sentence
    one_beam, _ = decoding.beam_search(table_step, cache, 2, 3, tf.constant([5, 1, 0]), width=1)
    assert one_beam.numpy().tolist() == [[4], [4], [0]]  # width 1 is greedy
    empty, empty_lengths = decoding.greedy(table_step, {"steps": tf.zeros([0])}, 2, 3, tf.zeros([0], tf.int32))
    assert empty.shape[0] == 0 and empty_lengths.shape == (0,)


def test_decoding_stops_at_each_rows_limit_when_no_end_comes():
    loop = np.full((7, 7), 1e-6, np.float32)
    loop[:, 4] = 1.0  # never END
    log_loop = tf.math.log(tf.constant(loop / loop.sum(1, keepdims=True)))
    step = lambda tokens, cache: (tf.gather(log_loop, tokens), cache)  # noqa: E731
    for search in (lambda *a: decoding.greedy(*a), lambda *a: decoding.beam_search(*a, width=3)):
        ids, lengths = search(step, {"x": tf.zeros([2, 1])}, 2, 3, tf.constant([4, 2]))
        assert lengths.numpy().tolist() == [4, 2]
        assert ids.numpy().tolist() == [[4, 4, 4, 4], [4, 4, 0, 0]]


# --- the app on a tiny run --------------------------------------------------------------------------

ODD_SOURCES = ["", "   ", "hola " * 300, "😀 emoji 😀", "mixed Ελληνικά русский 中文", "x" * 1_000_000,
               "¿Dónde está la biblioteca?"]


def test_predict_and_beam_give_bounded_translations_for_odd_input(tiny_run):
    run = tiny_run("translate")
    for extra in ([], ["--beam", "3"]):
        result = invoke("predict", run.dir, *ODD_SOURCES, "--json", *extra)
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
        assert [r["input"] for r in rows] == ODD_SOURCES
        for row in rows:
            assert isinstance(row["translation"], str) and 0 <= row["tokens"] <= run.config["target_length"]
    stdin = invoke("predict", run.dir, input=b"hola\n\xff\xfe roto\n")
    assert stdin.exit_code == 0 and len(stdin.stdout.strip("\n").split("\n")) == 2
    long = " ".join(["hola"] * (run.config["source_length"] + 1))
    said = invoke("predict", run.dir, long, "hola").stdout.strip("\n").split("\n")
    assert said[0].endswith("[the source was cut: only its first source_length tokens were translated]")
    assert "[the source was cut" not in said[1]


def test_evaluate_reports_bleu_chrf_and_samples(tiny_run):
    run = tiny_run("translate")
    result = invoke("evaluate", run.dir, "--beam", "2", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["decoding"] == "beam 2" and metrics["examples"] == 96
    assert 0 <= metrics["bleu"] <= 100 and 0 <= metrics["chrf"] <= 100 and len(metrics["samples"]) == 5
    assert metrics["unseen_references"] <= 96 and metrics["bleu_tokenizer"] == "13a"
    # each sentence's BLEU statistics are stored beside (not printed): they sum to the corpus BLEU
    from foundation import internals

    assert "per_example" not in metrics
    parts = run.per_example("test")["metrics"]["bleu"]
    assert len(parts["bleu_stats"]) == 96 and parts["tokenize"] == "13a"
    summed = [sum(column) for column in zip(*parts["bleu_stats"], strict=True)]
    assert internals.bleu_from_statistics(summed, "13a") == pytest.approx(metrics["bleu"], abs=1e-6)


def test_beam_is_refused_for_classifiers_and_a_mismatched_run(tiny_run):
    assert_one_line_error(invoke("predict", tiny_run("sentiment").dir, "x", "--beam", "2"),
                          "--beam is for apps that decode with beam search")
    assert_one_line_error(invoke("train", "translate", "--out", tiny_run("sentiment").dir, "--resume"),
                          "is a run of app 'sentiment', not 'translate'")
    assert_one_line_error(invoke("predict", tiny_run("translate").dir, "x", "--beam", "0"), "--beam")
    for width in ("65", "10000000"):  # bounded: memory grows with the width
        assert_one_line_error(invoke("evaluate", tiny_run("translate").dir, "--beam", width),
                              f"--beam: expected a width from 1 to 64, got {width}")


def test_the_step_never_writes_padding_unknown_or_start(tiny_run):
    run, app = tiny_run("translate"), registry.get("translate")
    ids = tf.constant([[5, 6, 7, 0], [8, 0, 0, 0]], tf.int32)
    cache = app.encoder(run.model)(ids)
    state = cache["state"]
    log_probabilities, new_cache = app.step(run.model)(tf.constant([translation.START_ID, 9]), cache)
    log_probabilities = log_probabilities.numpy()
    never = [translation.PADDING_ID, translation.UNKNOWN_ID, translation.START_ID]
    assert (log_probabilities[:, never] < -1e8).all()
    np.testing.assert_allclose(np.exp(log_probabilities).sum(axis=1), 1.0, rtol=1e-5)
    assert new_cache["state"].shape == state.shape and not np.allclose(new_cache["state"], state)


def test_saved_model_signatures_and_the_tflite_loop_agree_on_odd_input(tiny_export, tiny_run):
    from export import tflite
    from rnn_apps import registry

    root, entry = tiny_export("translate")
    run, app = tiny_run("translate"), registry.get("translate")
    loaded = tf.saved_model.load(str(root / "translate" / "1"))
    batch = [s.encode("utf-8") for s in ODD_SOURCES] + [b"\xff\xfe\xfd invalid"]
    greedy = {k: v.numpy() for k, v in loaded.signatures["serving_default"](text=tf.constant(batch)).items()}
    beam = {k: v.numpy() for k, v in loaded.signatures["beam_search"](text=tf.constant(batch)).items()}
    for out in (greedy, beam):
        assert out["translation"].shape == (len(batch),) and out["lengths"].shape == (len(batch),)
        assert (out["lengths"] <= run.config["target_length"]).all()
        # "" and blanks have no token to translate: an empty translation (issue 30), on the phone too
        assert out["translation"][:2].tolist() == [b"", b""] and out["lengths"][:2].tolist() == [0, 0]
        assert (out["lengths"][2:] > 0).all()
        assert not out["source_truncated"][:2].any()
    # a source longer than source_length tokens is cut, and the signature says so (issue 30)
    length = run.config["source_length"]
    long, short = " ".join(["hola"] * (length + 5)), " ".join(["hola"] * length)
    cut = {k: v.numpy() for k, v in loaded.signatures["serving_default"](text=tf.constant([long, short])).items()}
    assert cut["source_truncated"].tolist() == [True, False]
    assert cut["translation"][0] == cut["translation"][1]  # the tail was not read
    assert loaded.signatures["serving_default"](text=tf.constant([], tf.string))["translation"].shape == (0,)
    keras_out = app.generate(run, [b.decode("utf-8", "replace") for b in batch])
    # no input at all: every output, empty, with its dtype (the family's generate)
    nothing = app.generate(run, [])
    assert {k: (v.shape, v.dtype.kind) for k, v in nothing.items()} == {
        "translation": ((0,), "O"), "token_ids": ((0, 0), "i"), "lengths": ((0,), "i"), "source_truncated": ((0,), "b")}
    assert greedy["translation"].tolist() == keras_out["translation"].tolist()
    # Both run one decoding closure (eager, traced): check its ids against the plain reference loop
    # a phone runs (export/step_loop.py), one sentence at a time over the Keras model's own step.
    texts = [b.decode("utf-8", "replace") for b in batch]
    ids = text.padded_ids(run.preprocessing.source, texts, run.config["source_length"])
    limits, step = translation.output_limits(run.config, ids).numpy(), app.step(run.model)

    def keras_step(token, **cache):
        log_probabilities, updated = step(tf.constant(token), cache)
        return {"log_probabilities": np.asarray(log_probabilities), **{k: np.asarray(v) for k, v in updated.items()}}

    rows = []
    for row, limit in zip(ids, limits, strict=True):
        cache = {k: v.numpy() for k, v in app.encoder(run.model)(row[None]).items()}
        rows.append(step_loop.greedy_steps(keras_step, cache, translation.START_ID, translation.END_ID, int(limit)))
    np.testing.assert_array_equal(step_loop.padded(rows)[0], greedy["token_ids"])
    artefact = next(a for a in entry["artefacts"] if a["kind"] == "tflite")
    assert set(artefact["signatures"]) == {"encode", "decode_step"}
    assert {"model_card.json", "source_vocab.txt", "target_vocab.txt"} == set(artefact["assets"])
    tflite_dir = (root / artefact["path"]).parent
    names, _, phone_inputs = app.exported_inputs([b.decode("utf-8", "replace") for b in batch], tflite_dir)
    on_phone = app.run_tflite(tflite.interpreter(root / artefact["path"]), phone_inputs, tflite_dir)
    assert on_phone["translation"].tolist() == greedy["translation"].tolist()
    np.testing.assert_array_equal(on_phone["token_ids"], greedy["token_ids"])  # same ids, same width
    card = json.loads((tflite_dir / "model_card.json").read_text())
    assert card["target"]["end_id"] == translation.END_ID and card["loop"]


def test_query_shows_the_saved_model_and_tflite_translations(tiny_export):
    root, _ = tiny_export("translate")
    result = invoke("query", root, "--name", "translate", "Hola.", "", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["input"] for r in rows] == ["Hola.", ""]
    for row in rows:
        assert row["saved_model"]["translation"] == row["tflite"]["translation"] and row["version"] == 1
