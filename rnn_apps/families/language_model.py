"""The language-model family (many-to-many while training: the next character at every step;
one-to-many while writing: a prime in, text out, one character at a time). `charlm` is its app.

One model reads and writes one sequence of characters, with no encoder: reading a prime is
running `step` over it, so a phone needs one signature. Written once here:
  - `step` (embedding, the trained cells, logits on one character) and `Reader` (the same cells in
    RNN wrappers that take and return their state: a long text read window by window);
  - the SavedModel's `generate` (read the prime, then rnn_apps/decoding.py's sampling loop),
    `serving_default` (generate with SERVED_DEFAULTS) and `score` (nats per character);
  - evaluate (the loss over whole splits, the state carried; a sample), predict, `rnn-apps generate`;
  - the .tflite's `step` signature and its card, parity, phone quality and the phone client
    (the prime read through `step`, then the greedy loop of families/generate.py).

An app of this kind writes its data (one "text" column: a split's text as one string), its
`preprocessor` (App's contract: fit, load, files; its objects have `vocabulary`, id -> character
with 0 padding "" and 1 unknown, `size` and `lookup`, a StringLookup over it, kept in the run as
VOCABULARY) and its Keras model:
ids [batch, time] -> logits [batch, time, vocabulary], from layers named "embedding" and
"logits" around a stack of SimpleRNN layers. Its config holds units, depth, window, dropout,
clipnorm, mixed_precision and COMMON's keys.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras
import numpy as np
from keras import layers

from export import step_loop
from foundation.lazy import tensorflow as tf
from pipelines import characters
from rnn_apps import config as config_lib
from rnn_apps import decoding
from rnn_apps.app import CARD_FILE, Endpoint, ParityCase, TFLiteModel, float32_twin, read_as_shipped
from rnn_apps.families.generate import GeneratingApp
from rnn_apps.layers import SparseCrossentropy, rnn_layers

VOCABULARY = "vocabulary.json"
# Bounds that keep every request's time and memory bounded (documented in the model card).
MAX_LENGTH = 10_000  # characters written per request
MAX_PRIME = 1_000  # a prime's last characters that are read
MAX_SCORED = 20_000  # a scored text's first characters
EMPTY_PRIME = "\n"  # an empty prime reads as the start of a line
READ_WINDOW = 2048  # characters per call when evaluate reads a whole split
SCORE_WINDOW = 256  # characters per step of the loops that read a text (`score`) or a prime
CONTINUATION = 100  # characters `predict` writes after its input
SAMPLE = {"length": 300, "temperature": 0.8, "seed": 0}  # evaluate's sample
# serving_default's options: a greedy continuation of predict's length (deterministic, as predict's)
SERVED_DEFAULTS = {"length": CONTINUATION, "temperature": 0.0, "top_k": 0, "seed": 0}
PARITY_PRIMES, PARITY_LENGTH = 3, 200
PHONE_CHARACTERS = 5_000  # test characters each quantization mode of the .tflite is measured on


class LanguageModelApp(GeneratingApp):
    # the phone loop (families/generate.py): `step` from the prime's state, no end character
    output_name, query_key, step_signature, end_id = "text", "continuation", "step", None

    def for_inference(self, model, run):
        if not run.config["mixed_precision"] and not run.config["dropout"]:
            return model
        return float32_twin(self, model, run)

    def compile(self, model, config):
        model.compile(optimizer=keras.optimizers.Adam(config_lib.learning_rate(config), clipnorm=config["clipnorm"]),
                      loss=SparseCrossentropy(config["label_smoothing"], from_logits=True),
                      jit_compile=config["jit_compile"])

    # --- reading and writing ------------------------------------------------------------
    def step(self, model):
        """step(tokens [rows], cache {state_i}) -> (log-probabilities [rows, vocab], cache): the
        trained cells on one character. Padding and unknown are never written."""
        embedding, logits = model.get_layer("embedding"), model.get_layer("logits")
        cells = [layer.cell for layer in rnn_layers(model)]
        never = decoding.never_written(embedding.input_dim, (characters.PADDING_ID, characters.UNKNOWN_ID))

        def step(tokens, cache):
            x, new = embedding(tokens), {}
            for i, cell in enumerate(cells):
                x, state = cell(x, [cache[f"state_{i}"]])
                new[f"state_{i}"] = state[0]
            return keras.ops.log_softmax(logits(x) + never, axis=-1), new

        return step

    def generator(self, run):
        """(prime [batch], length, temperature, top_k, seed) -> {"text", "token_ids", "lengths"}:
        read each prime, then write `length` characters; one function for predict, the CLI's
        stream and the SavedModel's `generate`."""
        model, vocabulary = run.model, run.preprocessing.vocabulary
        reader, step, lookup = Reader(model), self.step(model), run.preprocessing.lookup
        table = tf.constant(vocabulary)

        def generate(prime, length, temperature, top_k, seed):
            cache, last = self.read_prime(reader, lookup, prime)
            applied = decoding.sampling_options(length, temperature, top_k, MAX_LENGTH)
            rows = tf.shape(last)
            token_ids, lengths = decoding.sample(step, cache, last, None, tf.fill(rows, applied["length"]),
                                                 applied["temperature"], applied["top_k"], tf.cast(seed, tf.int64))
            # the options as applied, one per row (a client sees what its values meant)
            return {"text": tf.strings.reduce_join(tf.gather(table, token_ids), axis=-1),
                    "token_ids": token_ids, "lengths": lengths,
                    "temperature": tf.fill(rows, applied["temperature"]), "top_k": tf.fill(rows, applied["top_k"])}

        return generate, [model, lookup]

    @staticmethod
    def read_prime(reader, lookup, prime) -> tuple:
        """Primes -> (state after all but their last character, that last character's id)."""
        prime = tf.convert_to_tensor(prime, tf.string)
        prime = tf.where(tf.strings.length(prime) == 0, EMPTY_PRIME, prime)
        ids = tf.cast(lookup(characters.split_characters(prime, MAX_PRIME, keep="last")), tf.int32)
        last = tf.gather(ids.flat_values, ids.row_limits() - 1)
        context = ids[:, :-1].to_tensor()
        # whole windows (>= 1), read one after another with the state carried, as `score` reads: the
        # whole prime at once kept every step's states of every layer, 1.7 GB for 1,024 primes of
        # MAX_PRIME characters (bench/signature_memory.py)
        windows = tf.maximum((tf.shape(context)[1] + SCORE_WINDOW - 1) // SCORE_WINDOW, 1)
        context = tf.pad(context, [[0, 0], [0, windows * SCORE_WINDOW - tf.shape(context)[1]]])

        def read_window(i, states):
            window = context[:, i * SCORE_WINDOW: (i + 1) * SCORE_WINDOW]
            return i + 1, reader(window, states, mask=window != 0)[1]

        _, states = tf.while_loop(lambda i, _: i < windows, read_window,
                                  (tf.constant(0), reader.zero_states(tf.shape(context)[0])))
        return states, last

    def scorer(self, run):
        """text [batch] -> {"nats_per_char", "bits_per_char", "characters"}: the model's loss on each
        text's characters after its first, from a zero state (a text of < 2 characters: 0 of them,
        loss 0)."""
        model, reader, lookup = run.model, Reader(run.model), run.preprocessing.lookup

        def score(text):
            ragged = tf.cast(lookup(characters.split_characters(text, MAX_SCORED)), tf.int32)
            lengths, ids = ragged.row_lengths(), ragged.to_tensor()
            # >= 1 prediction, and whole windows: padding (id 0) is masked and not counted
            width = tf.maximum(tf.shape(ids)[1] - 1, 1)
            windows = (width + SCORE_WINDOW - 1) // SCORE_WINDOW
            ids = tf.pad(ids, [[0, 0], [0, windows * SCORE_WINDOW + 1 - tf.shape(ids)[1]]])
            rows = tf.shape(ids)[0]

            # Window by window, the state carried: memory grows with the window, not with the text
            # (issue 30: the whole text at once took ~9 KB a character). Each window reads only the
            # rows with characters left to predict in it, so a request costs its characters, not
            # rows x its longest text (one long text among 1,000 short ones was 1,000 long ones).
            def read_window(i, states, total, count):
                active = tf.where(lengths > tf.cast(i * SCORE_WINDOW + 1, lengths.dtype))[:, 0]
                inputs = tf.gather(ids[:, i * SCORE_WINDOW: (i + 1) * SCORE_WINDOW], active)
                targets = tf.gather(ids[:, i * SCORE_WINDOW + 1: (i + 1) * SCORE_WINDOW + 1], active)
                logits, new = reader(inputs, {k: tf.gather(v, active) for k, v in states.items()},
                                     mask=inputs != 0)
                counted = tf.cast(targets != 0, tf.float32)
                losses = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits) * counted
                at = active[:, None]
                return (i + 1, {k: tf.tensor_scatter_nd_update(states[k], at, new[k]) for k in states},
                        tf.tensor_scatter_nd_add(total, at, tf.reduce_sum(losses, axis=1)),
                        tf.tensor_scatter_nd_add(count, at, tf.reduce_sum(counted, axis=1)))

            _, _, total, count = tf.while_loop(
                lambda i, *_: i < windows, read_window,
                (tf.constant(0), reader.zero_states(rows), tf.zeros([rows]), tf.zeros([rows])))
            nats = tf.math.divide_no_nan(total, count)
            return {"nats_per_char": nats, "bits_per_char": nats / math.log(2),
                    "characters": tf.cast(count, tf.int32)}

        return score, [model, lookup]

    def read_split(self, run, text: str) -> dict:
        """Loss over every character of `text` after its first, batch 1, the state carried from
        window to window; and the loss with a fresh state per training-sized window."""
        ids = characters.ids_of(text, run.preprocessing.vocabulary)
        reader = Reader(run.model)

        @tf.function(reduce_retracing=True)
        def window_loss(inputs, targets, states):
            logits, states = reader(inputs, states)
            return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)), states

        losses, counts, states = [], [], reader.zero_states(1)
        for start in range(0, len(ids) - 1, READ_WINDOW):
            chunk = ids[start: start + READ_WINDOW + 1]
            loss, states = window_loss(chunk[None, :-1], chunk[None, 1:], states)
            losses.append(float(loss))
            counts.append(len(chunk) - 1)
        carried = sum(losses) / (len(ids) - 1)
        fresh = run.model.evaluate(self.dataset({"text": [text]}, run.preprocessing, run.config), verbose=0)
        return {"characters": len(ids) - 1, "nats_per_char": carried, "bits_per_char": carried / math.log(2),
                "perplexity": math.exp(carried), "fresh_state_per_window_nats_per_char": float(fresh),
                # each window's summed loss and characters: bench's bootstrap resamples windows
                # (blocks of READ_WINDOW characters, the state carried into each)
                "per_window": {"correct": losses, "count": counts}}

    def stream(self, run, prime: str, length: int, temperature: float, top_k: int, seed: int):
        """The generated characters one at a time, as the SavedModel's `generate` writes them for
        the same arguments. Values out of range are refused here (the signature clamps them)."""
        decoding.check_sampling_options(length, temperature, top_k, seed, MAX_LENGTH, "character")
        reader, lookup = Reader(run.model), run.preprocessing.lookup
        cache, last = self.read_prime(reader, lookup, [prime])
        step = tf.function(self.step(run.model))
        vocabulary = run.preprocessing.vocabulary
        return (vocabulary[token] for token in decoding.stream(step, cache, last, length, temperature, top_k, seed))

    # --- use ----------------------------------------------------------------------------
    def evaluate(self, run, splits) -> dict:
        prime = first_line(splits.test["text"][0])
        sample = "".join(self.stream(run, prime, SAMPLE["length"], SAMPLE["temperature"], 0, SAMPLE["seed"]))
        result = {"validation": self.read_split(run, splits.validation["text"][0]),
                  "test": self.read_split(run, splits.test["text"][0]),
                  "window": run.config["window"], "sample": {**SAMPLE, "prime": prime, "text": sample}}
        if splits.test is not splits.validation:  # (Run.evaluate("validation") hands validation as test)
            # validation and test together: the last 10% of the text, the split nanoGPT reports
            result["last_10pct"] = self.read_split(run, splits.validation["text"][0] + splits.test["text"][0])
        result["per_example"] = {f"{name}.nats_per_char": result[name].pop("per_window")
                                 for name in ("validation", "test", "last_10pct") if name in result}
        return result

    def predict(self, run, inputs):
        score, generate = run.traced("score", lambda: self.scorer(run)[0]), \
            run.traced("generate", lambda: self.generator(run)[0])
        scores = {k: v.numpy() for k, v in score(tf.constant(inputs, tf.string)).items()}
        written = {k: v.numpy() for k, v in generate(tf.constant(inputs, tf.string), CONTINUATION, 0.0, 0, 0).items()}
        return [{"input": text, "nats_per_char": float(scores["nats_per_char"][i]),
                 "bits_per_char": float(scores["bits_per_char"][i]), "characters": int(scores["characters"][i]),
                 "continuation": written["text"][i].decode("utf-8")} for i, text in enumerate(inputs)]

    def format_prediction(self, row):
        return (f"{row['nats_per_char']:.4f} nats/char over {row['characters']}\t"
                f"{one_line(row['input'])} -> {one_line(row['continuation'])}")

    def serving(self, run):
        generate, track = self.generator(run)
        score, _ = self.scorer(run)
        generate_inputs = [tf.TensorSpec([None], tf.string, name="prime"), tf.TensorSpec([], tf.int32, name="length"),
                           tf.TensorSpec([], tf.float32, name="temperature"),
                           tf.TensorSpec([], tf.int32, name="top_k"), tf.TensorSpec([], tf.int64, name="seed")]
        def continue_primes(prime):
            return generate(prime, *(tf.constant(v, spec.dtype) for v, spec in
                                     zip(SERVED_DEFAULTS.values(), generate_inputs[1:], strict=True)))

        return [Endpoint("serving_default", continue_primes, generate_inputs[:1], track=track),
                Endpoint("generate", generate, generate_inputs, track=track),
                Endpoint("score", score, [tf.TensorSpec([None], tf.string, name="text")], track=track)]

    def tflite_models(self, run):
        config, vocabulary = run.config, run.preprocessing.vocabulary
        step, depth, units = self.step(run.model), config["depth"], config["units"]
        names = [f"state_{i}" for i in range(depth)]

        def step_signature(token, *states):
            log_probabilities, cache = step(token, dict(zip(names, states, strict=True)))
            return {"log_probabilities": log_probabilities, **cache}

        endpoint = Endpoint("step", step_signature, [tf.TensorSpec([None], tf.int32, name="token")] + [
            tf.TensorSpec([None, units], tf.float32, name=name) for name in names], track=[run.model])
        state, sampling = f"float32 [1, {units}]", decoding.sampling_card(MAX_LENGTH, "character")
        card = {
            "app": self.name, "topology": self.topology, "task": self.task,
            "signatures": {"step": {"inputs": {"token": "int32 [1]", **dict.fromkeys(names, state)},
                                    "outputs": {"log_probabilities": f"float32 [1, {len(vocabulary)}]",
                                                **dict.fromkeys(names, state)}}},
            "vocabulary": {"file": VOCABULARY, "format": "JSON list: entry i is the character of id i",
                           "padding_id": characters.PADDING_ID, "unknown_id": characters.UNKNOWN_ID,
                           "characters": "Unicode code points; a character not in the list is id 1; invalid "
                                         "UTF-8 reads as U+FFFD; ids outside [0, vocabulary) read as 1",
                           "never_written": "ids 0 and 1 (their log-probabilities are -1e9)"},
            "initial_state": "zeros for every state_i",
            "prime": f"feed every character of the prime but the last through step, keeping only the state; "
                     f"then the loop starts from the last one. An empty prime reads as {EMPTY_PRIME!r}.",
            "sampling": sampling["sampling"],
            "loop": ["state = zeros; for c in prime[:-1]: state = step(token=[c], **state).state_*",
                     "token = prime[-1]; output = []",
                     "repeat length times:",
                     "    result = step(token=[token], **state)",
                     "    token = argmax(result.log_probabilities[0])  # or a sample",
                     "    output.append(token); state = result.state_*"],
            "saved_model_limits": {**sampling["limits"], "prime_characters_read": f"the last {MAX_PRIME}",
                                   "scored_characters": f"the first {MAX_SCORED}"},
        }
        return [TFLiteModel(f"{self.name}.tflite", [endpoint], assets={  # the run's vocabulary file, as it is
            **run.preprocessing.files(), CARD_FILE: json.dumps(card, indent=2, ensure_ascii=False) + "\n"})]

    def parity_cases(self, run, examples):
        """Greedy continuations of PARITY_LENGTH characters from primes out of the test text:
        the SavedModel's and the TFLite reference loop's equal Keras's character for character;
        and the SavedModel's `score` of test snippets equals Keras's loss."""
        text = str(examples["text"][0])
        primes = [text[i: i + 40] for i in np.linspace(0, max(len(text) - 40, 0), PARITY_PRIMES).astype(int)]
        generate_inputs = {"prime": np.array([p.encode() for p in primes], dtype=object),
                           "length": np.int32(PARITY_LENGTH), "temperature": np.float32(0.0),
                           "top_k": np.int32(0), "seed": np.int64(0)}
        generate = self.generator(run)[0]
        expected = call(generate, *[tf.constant(v) for v in generate_inputs.values()])
        defaults = call(generate, tf.constant(generate_inputs["prime"]),
                        *(np.asarray(v, generate_inputs[k].dtype) for k, v in SERVED_DEFAULTS.items()))
        snippets = [text[i: i + 300] for i in range(0, min(len(text), 2400), 300)] + ["", "a", "\u00e9\u4e2d?"]
        loss = [keras_loss(run.model, characters.ids_of(s, run.preprocessing.vocabulary)) for s in snippets]
        # the phone client reads the vocabulary from the file the .tflite ships
        vocabulary = read_as_shipped(run.preprocessing.files(), lambda folder: self.phone_vocabulary(folder, None)[0])
        feeds = [prime_ids(p, vocabulary) for p in primes]

        def loop(interpreter):
            return self.on_phone(interpreter, feeds, [PARITY_LENGTH] * len(feeds), vocabulary)

        return [
            ParityCase("greedy continuations of test primes", expected, ("generate", generate_inputs),
                       f"{self.name}.tflite", ["text", "token_ids", "lengths"], tflite_loop=loop),
            ParityCase("serving_default (prime only: SERVED_DEFAULTS)", defaults,
                       ("serving_default", {"prime": generate_inputs["prime"]}), None,
                       ["text", "token_ids", "lengths", "temperature", "top_k"]),
            ParityCase("score of test snippets vs the Keras loss", {"nats_per_char": np.array(loss, np.float32)},
                       ("score", {"text": np.array([s.encode() for s in snippets], dtype=object)}),
                       None, ["nats_per_char"]),
        ]

    def phone_quality(self, run, test, interpreter):
        """Nats per character of the TFLite `step` loop over the first PHONE_CHARACTERS of the test
        text, the state carried from the first character on; characters outside the vocabulary are
        read but not scored (the step never writes them: their log-probability is -1e9)."""
        ids = characters.ids_of(str(test["text"][0])[:PHONE_CHARACTERS], run.preprocessing.vocabulary)
        step = interpreter.get_signature_runner("step")
        cache, losses = step_loop.zero_state(interpreter, "step"), []
        for token, following in zip(ids[:-1], ids[1:], strict=True):
            result = step(token=np.array([token], np.int32), **cache)
            # Normalised again: a quantized LOG_SOFTMAX need not sum to one, and sampling (softmax of
            # log_probabilities / T) normalises too, so this is the distribution a phone draws from.
            log_probabilities = result.pop("log_probabilities")[0].astype(np.float64)
            if following != characters.UNKNOWN_ID:
                losses.append(float(np.logaddexp.reduce(log_probabilities) - log_probabilities[following]))
            cache.update(result)
        return float(np.mean(losses)) if losses else 0.0

    # --- the phone client: read the prime through `step`, then the shared greedy loop --------
    def exported_inputs(self, inputs, tflite_dir):
        vocabulary = self.phone_vocabulary(tflite_dir, None)[0]  # as parity's client reads it
        served = {"prime": np.array([p.encode("utf-8") for p in inputs], dtype=object)}  # SERVED_DEFAULTS
        return list(inputs), served, {"feeds": [prime_ids(p, vocabulary) for p in inputs],
                                      "limits": [CONTINUATION] * len(inputs)}

    def phone_vocabulary(self, folder, card):
        return characters.load_vocabulary(Path(folder) / VOCABULARY), None

    def phone_start(self, interpreter, ids):
        """Every character of the prime but the last read through `step` from zero states."""
        return step_loop.read(interpreter, ids[:-1], step_loop.zero_state(interpreter, "step")), int(ids[-1])

    def phone_text(self, token_ids, words, language):
        return np.array(["".join(words[t] for t in row).encode("utf-8") for row in token_ids], dtype=object)

    def shown(self, text):
        return one_line(text)



class Reader:
    """The trained SimpleRNN layers' cells in RNN wrappers that take and return their state:
    reads a sequence from given states (a window of a long text, a prime). Same weights."""

    def __init__(self, model):
        self.embedding, self.logits = model.get_layer("embedding"), model.get_layer("logits")
        self.rnns = [layers.RNN(layer.cell, return_sequences=True, return_state=True) for layer in rnn_layers(model)]
        self.units = [layer.cell.units for layer in rnn_layers(model)]

    def zero_states(self, rows) -> dict:
        return {f"state_{i}": keras.ops.zeros([rows, units]) for i, units in enumerate(self.units)}

    def __call__(self, ids, states: dict, mask=None) -> tuple:
        """ids [batch, time] -> (logits [batch, time, vocab], states after the last unmasked step)."""
        x, new = self.embedding(ids), {}
        for i, rnn in enumerate(self.rnns):
            x, new[f"state_{i}"] = rnn(x, initial_state=[states[f"state_{i}"]], mask=mask)
        return self.logits(x), new


def prime_ids(prime: str, vocabulary: list) -> np.ndarray:
    """A prime as the phone feeds it: the ids of its last MAX_PRIME characters (EMPTY_PRIME if empty)."""
    return characters.ids_of((prime or EMPTY_PRIME)[-MAX_PRIME:], vocabulary)


def keras_loss(model, ids: np.ndarray) -> float:
    """The training model's mean loss on one text's characters after its first (0 if none)."""
    if len(ids) < 2:
        return 0.0
    logits = model(ids[None, :-1], training=False)
    return float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(ids[None, 1:], logits,
                                                                               from_logits=True)))


def call(fn, *args) -> dict:
    return {k: v.numpy() for k, v in tf.function(fn)(*args).items()}


def one_line(text: str) -> str:
    """Text quoted as JSON: its newlines stay on the output's one line."""
    return json.dumps(text, ensure_ascii=False)


def first_line(text: str) -> str:
    return text.split("\n", 1)[0][:80] or EMPTY_PRIME


