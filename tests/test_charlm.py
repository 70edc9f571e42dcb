"""charlm: the character split and vocabulary, the sampler, reading with the state carried, and
the app end to end on a tiny run (CLI generate/predict/evaluate, SavedModel signatures on odd
input, the TFLite step loop, query)."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from foundation.errors import UserError
from pipelines import characters
from rnn_apps import decoding
from rnn_apps.families import language_model
from tests.test_cli import assert_one_line_error, invoke

# --- data -------------------------------------------------------------------------------------


def test_tiny_shakespeare_splits_90_5_5_by_position(data_root):
    splits = characters.load("tiny_shakespeare", data_root)
    text = (data_root / "tiny_shakespeare" / "input.txt").read_text(encoding="utf-8")
    parts = [splits[s]["text"][0] for s in ("train", "validation", "test")]
    assert [len(p) for p in parts] == [1_003_855, 55_770, 55_769]
    assert "".join(parts) == text  # in order, nothing lost or repeated
    assert splits.dataset == "tiny_shakespeare"
    assert "1,003,855 characters" in splits.describe()


def test_any_text_file_splits_the_same_and_bad_paths_fail_in_one_line(tmp_path):
    file = tmp_path / "book.txt"
    file.write_bytes(("é" * 100 + "abc\n" * 25).encode() + b"\xff")  # 201 characters, one invalid byte
    splits = characters.load(str(file), None)
    assert [len(splits[s]["text"][0]) for s in ("train", "validation", "test")] == [181, 10, 10]
    assert splits.test["text"][0].endswith("\ufffd")
    (tmp_path / "other.txt").write_text("x" * 200)
    with pytest.raises(UserError, match="holds 2 .txt files"):
        characters.load(str(tmp_path), None)
    (tmp_path / "short.txt").write_text("too short")
    with pytest.raises(UserError, match="holds 9 characters"):
        characters.load(str(tmp_path / "short.txt"), None)
    with pytest.raises(UserError, match="no text 'nowhere.txt'"):
        characters.load("nowhere.txt", tmp_path)


def test_tfds_tiny_shakespeare_goes_through_the_same_path_under_mock_data(monkeypatch):
    from pipelines import tfds_source

    monkeypatch.setattr(tfds_source, "_reachable", lambda url: True)  # mock_data stands in for the download
    with tfds.testing.mock_data(num_examples=1):
        splits = characters.load("tiny_shakespeare", None)
    assert [splits.size(s) for s in ("train", "validation", "test")] == [1, 1, 1]
    assert isinstance(splits.train["text"][0], str) and splits.train["text"][0]
    assert splits.origin["validation"] == "tfds tiny_shakespeare 'validation'"


def test_vocabulary_keeps_newline_and_reads_unknown_characters_as_one(tmp_path):
    vocabulary = characters.build_vocabulary("ab\nb b")
    assert vocabulary == ["", "[UNK]", "b", "\n", " ", "a"]  # most frequent first, ties by character
    (tmp_path / "v.json").write_text(characters.vocabulary_text(vocabulary), encoding="utf-8")
    assert characters.load_vocabulary(tmp_path / "v.json") == vocabulary
    assert characters.ids_of("ba\nZ", vocabulary).tolist() == [2, 5, 3, 1]
    lookup = characters.lookup(vocabulary)
    assert lookup(characters.split_characters(["ba\nZ"], 10)).to_list() == [[2, 5, 3, 1]]
    (tmp_path / "bad.json").write_text('["a", "bc"]')
    with pytest.raises(UserError, match="not a character vocabulary"):
        characters.load_vocabulary(tmp_path / "bad.json")


def test_split_characters_keeps_whole_characters_from_either_end():
    text = "ab" + "中" * 10 + "\U0001F600" * 3
    first = characters.split_characters([text], 4).to_list()[0]
    last = characters.split_characters([text], 4, keep="last").to_list()[0]
    assert [c.decode() for c in first] == ["a", "b", "中", "中"]
    assert [c.decode() for c in last] == ["中"] + ["\U0001F600"] * 3
    assert characters.split_characters([b"\xffok"], 5).to_list() == [["\ufffd".encode(), b"o", b"k"]]


def test_windows_target_the_next_character():
    ids = np.arange(2, 43, dtype=np.int32)  # 41 ids: 4 windows of 10, one id left over
    inputs, targets = next(iter(characters.windows(ids, 10, 8)))
    assert inputs.shape == (4, 10)
    np.testing.assert_array_equal(targets.numpy(), inputs.numpy() + 1)
    with pytest.raises(UserError, match="shorter than one window"):
        characters.windows(ids[:5], 10, 8)


# --- the sampler --------------------------------------------------------------------------------


def test_choose_is_greedy_at_temperature_0_and_samples_by_seed_otherwise():
    log_probabilities = tf.math.log(tf.constant([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]]))
    assert decoding.choose(log_probabilities, 0).numpy().tolist() == [2, 0]
    assert decoding.choose(log_probabilities, 0, tf.constant(-1.0), 0, 5).numpy().tolist() == [2, 0]
    assert decoding.choose(log_probabilities, 0, 1.0, 1, 5).numpy().tolist() == [2, 0]  # top-1 = greedy
    draws = np.array([decoding.choose(log_probabilities, i, 1.0, 0, 7).numpy() for i in range(3000)])
    np.testing.assert_allclose(np.bincount(draws[:, 0], minlength=3) / 3000, [0.1, 0.2, 0.7], atol=0.03)
    np.testing.assert_allclose(np.bincount(draws[:, 1], minlength=3) / 3000, [0.5, 0.3, 0.2], atol=0.03)
    again = np.array([decoding.choose(log_probabilities, i, 1.0, 0, 7).numpy() for i in range(50)])
    other = np.array([decoding.choose(log_probabilities, i, 1.0, 0, 8).numpy() for i in range(50)])
    np.testing.assert_array_equal(again, draws[:50])
    assert (other != again).any()
    top2 = np.array([decoding.choose(log_probabilities, i, 5.0, 2, 7).numpy()[0] for i in range(200)])
    assert set(top2.tolist()) == {1, 2}  # the least likely is never drawn


# --- the app on a tiny run ----------------------------------------------------------------------


def test_reading_in_windows_with_the_state_carried_equals_reading_at_once(tiny_run):
    run = tiny_run("charlm")
    reader = language_model.Reader(run.model)
    ids = characters.ids_of("First Citizen:\nBefore we proceed", run.preprocessing.vocabulary)[None]
    whole, _ = reader(ids, reader.zero_states(1))
    head, states = reader(ids[:, :10], reader.zero_states(1))
    tail, _ = reader(ids[:, 10:], states)
    np.testing.assert_allclose(np.concatenate([head, tail], 1), whole, atol=1e-5)
    np.testing.assert_allclose(whole, run.model(ids), atol=1e-5)  # the trained model's own output
    fresh, _ = reader(ids[:, 10:], reader.zero_states(1))
    assert not np.allclose(fresh, tail, atol=1e-3)  # the carried state matters


def test_evaluate_reports_nats_bits_and_perplexity_over_every_character(tiny_run):
    run = tiny_run("charlm")
    result = invoke("evaluate", run.dir, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    for split in ("validation", "test"):
        m = metrics[split]
        assert m["characters"] == 2999  # the tiny preset's 3,000 characters, all but the first predicted
        assert m["bits_per_char"] == pytest.approx(m["nats_per_char"] / math.log(2))
        assert m["perplexity"] == pytest.approx(math.exp(m["nats_per_char"]))
        assert 0 < m["nats_per_char"] < math.log(run.preprocessing.size) + 1
        assert 0 < m["fresh_state_per_window_nats_per_char"] < 10
    assert len(metrics["sample"]["text"]) == language_model.SAMPLE["length"]
    # the last 10% of the text (validation and test joined): nanoGPT's split, its loss between theirs
    last = metrics["last_10pct"]
    assert last["characters"] == 5999
    low, high = sorted(metrics[split]["nats_per_char"] for split in ("validation", "test"))
    assert low - 0.05 < last["nats_per_char"] < high + 0.05
    # each READ_WINDOW's loss and characters are stored beside (bench's bootstrap): they sum to the figure
    parts = run.per_example("test")["metrics"]["test.nats_per_char"]
    assert sum(parts["count"]) == 2999 and all(c <= language_model.READ_WINDOW for c in parts["count"])
    assert sum(parts["correct"]) / sum(parts["count"]) == pytest.approx(metrics["test"]["nats_per_char"], rel=1e-6)
    assert "per_window" not in metrics["test"]
    # on validation (what choices are made on) it is not reported: it holds the test split
    validation = invoke("evaluate", run.dir, "--split", "validation", "--json").stdout.strip().splitlines()[-1]
    validation = json.loads(validation)
    assert "last_10pct" not in validation and validation["test"] == metrics["validation"]


def test_generate_streams_the_same_text_for_the_same_seed(tiny_run, tiny_export):
    run = tiny_run("charlm")
    args = ("generate", run.dir, "--prime", "ROMEO:", "--length", "40", "--temperature", "0.8")
    first, again = invoke(*args, "--seed", "3"), invoke(*args, "--seed", "3")
    other = invoke(*args, "--seed", "4")
    assert first.exit_code == 0, first.output
    assert first.stdout == again.stdout and first.stdout != other.stdout
    assert first.stdout.startswith("ROMEO:") and len(first.stdout) == len("ROMEO:") + 40 + 1
    # The SavedModel's generate writes the same text for the same arguments.
    root, _ = tiny_export("charlm")
    generate = tf.saved_model.load(str(root / "charlm" / "1")).signatures["generate"]
    out = generate(prime=tf.constant(["ROMEO:"]), length=tf.constant(40), temperature=tf.constant(0.8),
                   top_k=tf.constant(0), seed=tf.constant(3, tf.int64))
    assert "ROMEO:" + out["text"].numpy()[0].decode() + "\n" == first.stdout


@pytest.mark.parametrize("option, value, message", [
    ("--temperature", "-0.5", "--temperature: expected a number >= 0"),
    ("--temperature", "nan", "--temperature: expected a number >= 0"),
    ("--length", "-1", "--length: expected 0 to 10,000 characters"),
    ("--length", "1000000", "--length: expected 0 to 10,000 characters"),
    ("--top-k", "-2", "--top-k: expected an integer >= 0"),
    ("--seed", "-1", "--seed: expected an integer from 0"),
])
def test_generate_refuses_bad_options_in_one_line(tiny_run, option, value, message):
    assert_one_line_error(invoke("generate", tiny_run("charlm").dir, option, value), message)


def test_generate_is_refused_for_apps_that_do_not_write_text(tiny_run):
    assert_one_line_error(invoke("generate", tiny_run("sentiment").dir), "sentiment does not write text")


def test_predict_prints_the_loss_and_the_likeliest_continuation(tiny_run):
    run = tiny_run("charlm")
    result = invoke("predict", run.dir, "To be, or not", "", "\u4e2d", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["characters"] for r in rows] == [12, 0, 0]
    assert rows[0]["nats_per_char"] > 0 and rows[1]["nats_per_char"] == 0.0
    assert all(len(r["continuation"]) == language_model.CONTINUATION for r in rows)
    text = invoke("predict", run.dir, "To be")
    assert text.exit_code == 0 and "nats/char over 4" in text.stdout and '"To be" -> "' in text.stdout


def test_saved_model_signatures_give_defined_outputs_for_odd_input(tiny_export, tiny_run):
    root, entry = tiny_export("charlm")
    run = tiny_run("charlm")
    loaded = tf.saved_model.load(str(root / "charlm" / "1"))
    generate, score = loaded.signatures["generate"], loaded.signatures["score"]

    def write(primes, length=20, temperature=0.0, top_k=0, seed=0):
        out = generate(prime=tf.constant(primes), length=tf.constant(length), temperature=tf.constant(temperature),
                       top_k=tf.constant(top_k), seed=tf.constant(seed, tf.int64))
        return {k: v.numpy() for k, v in out.items()}

    odd = [b"", b"\xff\xfe", "\u4e2d\u6587".encode(), b"x" * 1_000_000, b"ROMEO:"]
    out = write(odd)
    # a 1 MB prime is read by its last MAX_PRIME characters only: the same text as those alone
    tail = bytes(np.random.default_rng(0).choice(list(b"abcdefgh ROMEO:\n"), language_model.MAX_PRIME))
    long_prime = write([b"Q" * 1_000_000 + tail, tail])
    np.testing.assert_array_equal(long_prime["token_ids"][0], long_prime["token_ids"][1])
    assert out["text"].shape == (5,) and out["token_ids"].shape == (5, 20) and (out["lengths"] == 20).all()
    assert (out["token_ids"] >= 2).all()  # never padding or unknown
    np.testing.assert_array_equal(write(odd, temperature=-3.0)["token_ids"], out["token_ids"])  # clamped: greedy
    # every option value has a defined meaning, returned as applied (issue 30)
    assert out["temperature"].tolist() == [0.0] * 5 and out["top_k"].tolist() == [0] * 5
    for given, applied in ((float("nan"), 0.0), (-1.0, 0.0), (float("inf"), decoding.MAX_TEMPERATURE), (0.5, 0.5)):
        assert write([b"a"], temperature=given)["temperature"].tolist() == [applied]
    np.testing.assert_array_equal(write(odd, temperature=float("nan"))["token_ids"], out["token_ids"])
    assert write([b"a"], top_k=-1)["top_k"].tolist() == [0]
    assert write([b"a"], length=0)["text"].tolist() == [b""]
    assert write([b"a"], length=2 ** 31 - 1)["lengths"].tolist() == [language_model.MAX_LENGTH]
    sampled = write([b"a", b"a"], temperature=1.0, top_k=1000, seed=5)
    assert sampled["text"][0] == sampled["text"][1]  # a row's text depends on its prime and seed only
    nothing = generate(prime=tf.constant([], tf.string), length=tf.constant(5), temperature=tf.constant(1.0),
                       top_k=tf.constant(0), seed=tf.constant(0, tf.int64))
    assert nothing["text"].shape == (0,) and nothing["token_ids"].shape[0] == 0
    scored = {k: v.numpy() for k, v in score(text=tf.constant([b"", b"a", b"\xff\xfe ok", b"y" * 1_000_000])).items()}
    assert scored["characters"].tolist() == [0, 0, 4, language_model.MAX_SCORED - 1]  # each invalid byte: one U+FFFD
    assert scored["nats_per_char"][:2].tolist() == [0.0, 0.0] and np.isfinite(scored["nats_per_char"]).all()
    np.testing.assert_allclose(scored["bits_per_char"], scored["nats_per_char"] / math.log(2), rtol=1e-6)
    keras_loss = language_model.keras_loss(run.model, characters.ids_of("y" * 5000, run.preprocessing.vocabulary))
    long = score(text=tf.constant([b"y" * 5000]))["nats_per_char"].numpy()[0]
    assert long == pytest.approx(keras_loss, abs=1e-4)
    # rows of very different lengths in one request (each window reads only the rows it reaches):
    # every row scores as it does alone
    mixed = [b"y" * 5000, b"To be", b"", b"ab" * 300, b"x"]
    together = score(text=tf.constant(mixed))
    for i, text in enumerate(mixed):
        alone = score(text=tf.constant([text]))
        assert together["characters"].numpy()[i] == alone["characters"].numpy()[0]
        assert together["nats_per_char"].numpy()[i] == pytest.approx(alone["nats_per_char"].numpy()[0], abs=1e-5)


def test_tflite_step_signature_model_card_and_parity_cases(tiny_export, tiny_run):
    root, entry = tiny_export("charlm")
    run = tiny_run("charlm")
    artefact = next(a for a in entry["artefacts"] if a["kind"] == "tflite")
    step = artefact["signatures"]["step"]
    states = {f"state_{i}" for i in range(run.config["depth"])}
    assert run.config["depth"] == 2 and set(step["inputs"]) == {"token"} | states
    assert set(step["outputs"]) == {"log_probabilities"} | states
    assert step["outputs"]["log_probabilities"]["shape"] == [1, run.preprocessing.size]
    tflite_dir = (root / artefact["path"]).parent
    card = json.loads((tflite_dir / "model_card.json").read_text())
    assert card["saved_model_limits"]["max_length"] == language_model.MAX_LENGTH and card["loop"]
    assert characters.load_vocabulary(tflite_dir / language_model.VOCABULARY) == run.preprocessing.vocabulary
    greedy, defaults, scored = entry["parity"]["cases"]
    assert greedy["examples"] == language_model.PARITY_PRIMES
    assert set(greedy["tflite"]) == {"text", "token_ids", "lengths"}
    assert set(scored) == set(defaults) == {"name", "examples", "saved_model"}  # no phone side
    # serving_default takes primes only (TF Serving's row form): SERVED_DEFAULTS, returned as applied
    served = tf.saved_model.load(str(root / "charlm" / "1")).signatures["serving_default"](
        prime=tf.constant(["ROMEO:", ""]))
    assert served["lengths"].numpy().tolist() == [language_model.SERVED_DEFAULTS["length"]] * 2
    assert served["temperature"].numpy().tolist() == [0.0, 0.0]
    signatures = next(a for a in entry["artefacts"] if a["kind"] == "saved_model")["signatures"]
    assert set(signatures) == {"serving_default", "generate", "score"}


def test_query_shows_the_saved_model_and_tflite_continuations(tiny_export):
    root, _ = tiny_export("charlm")
    result = invoke("query", root, "--name", "charlm", "ROMEO:", "", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["input"] for r in rows] == ["ROMEO:", ""]
    for row in rows:
        assert row["saved_model"]["continuation"] == row["tflite"]["continuation"]
        assert len(row["tflite"]["continuation"]) == language_model.CONTINUATION


def test_mixed_precision_training_serves_a_float32_twin(tmp_path, train_tiny):
    run = train_tiny("charlm", tmp_path / "run", mixed_precision=True, epochs=1)
    from rnn_apps.run import load_model

    trained = load_model(run.checkpoints / "best.keras")
    assert trained.get_layer("simple_rnn_0").dtype_policy.compute_dtype == "bfloat16"
    assert run.model.get_layer("simple_rnn_0").dtype_policy.compute_dtype == "float32"
    ids = characters.ids_of("First Citizen:", run.preprocessing.vocabulary)[None]
    np.testing.assert_allclose(run.model(ids), trained(ids), atol=0.1)  # bfloat16 rounding only
    for a, b in zip(run.model.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
