"""One decoding loop for every model that writes a sequence (translate, caption, charlm).

A model supplies only its next step, keras-hub `samplers/` style:

    step(tokens: int32 [rows], cache: dict of [rows, ...] tensors) -> (log_probabilities [rows, vocab], cache)

and the loops here drive it: `greedy`, `sample` (temperature, top-k, a seed) and `beam_search`,
each a bounded while loop written with `keras.ops`, so one module decodes on every Keras backend:
`predict`, `evaluate` and the SavedModel signatures on TensorFlow (eagerly or inside a tf.function),
a JAX step on JAX. `stream` is `sample` one token at a time for a CLI that prints as it goes, with
the same choices. `start` is the first token fed (START for a decoder; a prime's last character
for a language model), one for all rows or one per row. Every row stops at `end_id` (None: never)
or at its own `limits` entry (a maximum output length). What a phone runs over the TFLite step
signature is the reference loop in `export/step_loop.py`, checked against `greedy` token for token.

Three things differ by backend, each in one function at the end: the loop (`_while_loop`: TensorFlow
needs the cache's row count left loose) and the sampling noise (`_uniform_noise`: each backend's
own stateless generator, so a seed writes the same text every time on one backend, another text on
the other), and the output buffer (`_new_columns`: a TensorArray on TensorFlow, a preallocated
tensor elsewhere; never a tensor re-concatenated one column wider each step, with which charlm
writing 10,000 characters for 256 rows once peaked at over a gigabyte).

Outputs: token ids [batch, longest output] (the end token excluded, 0 after it) and lengths [batch].
"""

import math

import keras
import numpy as np
from keras import ops

from foundation.errors import UserError

NO_END = -1  # an id no model writes: rows run to their limit
MAX_TEMPERATURE = 100.0  # softmax(x / 100) is already near uniform: a higher one means nothing more


def sampling_options(length, temperature, top_k, max_length: int) -> dict:
    """What a served signature does with any client-given sampling options, defined for every value
    (issue 30: no value may take another meaning silently): `length` clipped to [0, max_length];
    `temperature` NaN or <= 0 -> 0 (greedy), above MAX_TEMPERATURE (inf too) -> MAX_TEMPERATURE;
    `top_k` < 0 -> 0 (every token). The signature returns the values it applied."""
    temperature = ops.cast(temperature, "float32")
    temperature = ops.where(ops.isnan(temperature), 0.0, ops.clip(temperature, 0.0, MAX_TEMPERATURE))
    return {"length": ops.clip(ops.cast(length, "int32"), 0, max_length), "temperature": temperature,
            "top_k": ops.maximum(ops.cast(top_k, "int32"), 0)}


def check_sampling_options(length: int, temperature: float, top_k: int, seed: int, max_length: int,
                           unit: str = "token"):
    """The command line's side of `sampling_options`: a person typed these, so a value out of range
    is refused in one line, where a signature clamps it and says what it applied."""
    for name, value, ok, says in (
            ("length", length, 0 <= length <= max_length, f"0 to {max_length:,} {unit}s"),
            ("temperature", temperature, math.isfinite(temperature) and temperature >= 0, "a number >= 0 (0 = greedy)"),
            ("top-k", top_k, top_k >= 0, f"an integer >= 0 (0 = every {unit})"),
            ("seed", seed, 0 <= seed < 2 ** 63, "an integer from 0 to 2**63 - 1")):
        if not ok:
            raise UserError(f"--{name}: expected {says}, got {value}")


def sampling_card(max_length: int, unit: str = "token") -> dict:
    """What a model card says of sampling and of `sampling_options`' rules for served values."""
    return {
        "sampling": "greedy: argmax; with a temperature T > 0: sample softmax(log_probabilities / T), "
                    "optionally over the top-k entries only",
        "limits": {"max_length": max_length,
                   "temperature": f"NaN or <= 0 is greedy (0); above {MAX_TEMPERATURE:g} (inf too) is "
                                  f"{MAX_TEMPERATURE:g}; returned as applied",
                   "top_k": f"<= 0 is every {unit} (0); returned as applied",
                   "length": f"clipped to 0..{max_length}; `lengths` says what was written"}}


def never_written(vocabulary_size: int, ids) -> np.ndarray:
    """What a step adds to its logits so that it never writes `ids` (padding, START, "[UNK]", ...):
    -1e9 there, 0 elsewhere; a constant of the step's graph, so the TFLite step does the same."""
    never = np.zeros(vocabulary_size, np.float32)
    never[list(ids)] = -1e9
    return never


def choose(log_probabilities, position, temperature=0.0, top_k=0, seed=0):
    """The next token of every row: the most likely one when temperature <= 0, else a sample of
    softmax(log_probabilities / temperature) restricted to the top_k most likely tokens (0 = all).

    Sampling is the Gumbel-max trick with noise drawn from (seed, position) alone, one draw per
    vocabulary entry shared by all rows: the same prime and seed give the same text in any row
    of any batch, in the graph and eagerly."""
    greedy_ = ops.cast(ops.argmax(log_probabilities, axis=-1), "int32")
    if isinstance(temperature, (int, float)) and temperature <= 0:
        return greedy_  # known when tracing: no sampling ops in a greedy graph
    temperature = ops.cast(temperature, "float32")
    top_k = ops.cast(top_k, "int32")
    allowed = ops.cond(top_k > 0, lambda: _top_k_only(log_probabilities, top_k), lambda: log_probabilities)
    gumbel = -ops.log(-ops.log(_uniform_noise(seed, position, ops.shape(log_probabilities)[-1])))
    sampled = ops.cast(ops.argmax(allowed / ops.maximum(temperature, 1e-6) + gumbel[None], axis=-1), "int32")
    return ops.where(temperature > 0, sampled, greedy_)


def _top_k_only(log_probabilities, top_k):
    """-1e9 below each row's top_k-th best entry (top_k >= 1). The k-th best is read from a sort, so
    top_k may be a tensor on every backend (`ops.top_k` wants it static on JAX)."""
    vocab = ops.shape(log_probabilities)[-1]
    kth_best = ops.take(ops.sort(log_probabilities, axis=-1), vocab - ops.minimum(top_k, vocab), axis=-1)[:, None]
    return ops.where(log_probabilities < kth_best, -1e9, log_probabilities)


def greedy(step, cache: dict, start, end_id, limits):
    """Take the most likely token at every step."""
    return sample(step, cache, start, end_id, limits, temperature=0.0)


def sample(step, cache: dict, start, end_id, limits, temperature=0.0, top_k=0, seed=0):
    """Choose each token with `choose` (greedy at temperature 0)."""
    limits = ops.cast(limits, "int32")
    rows, steps = _rows_and_steps(limits)
    end_id = NO_END if end_id is None else end_id

    def body(i, tokens, cache, done, written):
        log_probabilities, cache = step(tokens, cache)
        tokens = choose(log_probabilities, i, temperature, top_k, seed)
        done = done | (tokens == end_id) | (i >= limits)
        return i + 1, tokens, cache, done, _write_column(written, i, ops.where(done, 0, tokens))

    *_, written = _while_loop(
        lambda i, tokens, cache, done, written: (i < steps) & ~ops.all(done), body,
        (ops.convert_to_tensor(0, "int32"), _starts(start, rows), cache, ops.zeros((rows,), "bool"),
         _new_columns(rows, steps)))
    return _finish(_columns(written, rows))


def stream(step, cache: dict, start, length: int, temperature=0.0, top_k=0, seed=0):
    """`sample` for one row without an end token, yielding each token id as it is chosen."""
    token = _starts(start, 1)
    for i in range(length):
        log_probabilities, cache = step(token, cache)
        token = choose(log_probabilities, ops.convert_to_tensor(i, "int32"), temperature, top_k, seed)
        yield int(ops.convert_to_numpy(token)[0])


def beam_search(step, cache: dict, start_id: int, end_id: int, limits, width: int, length_penalty: float = 1.0):
    """Keep the `width` most likely prefixes of each row; pick the finished one whose
    log-probability divided by length ** length_penalty is highest (length normalisation: without
    it, short outputs win)."""
    limits = ops.cast(limits, "int32")
    rows, steps = _rows_and_steps(limits)
    cache = keras.tree.map_structure(lambda t: ops.repeat(t, width, axis=0), cache)  # [rows * width, ...]
    beam_limits = ops.repeat(limits, width)
    # Only the first beam of each row is alive at the start, so the first step does not pick the
    # same token `width` times.
    scores = ops.tile(ops.convert_to_tensor([[0.0] + [-1e9] * (width - 1)]), (rows, 1))

    def body(i, tokens, cache, scores, done, sequences, lengths):
        log_probabilities, cache = step(tokens, cache)
        vocab = ops.shape(log_probabilities)[-1]
        # A finished beam continues only with padding, at no cost, so it keeps its score.
        finished_row = ops.where(ops.arange(vocab) == 0, 0.0, -1e9)
        log_probabilities = ops.where(done[:, None], finished_row[None], log_probabilities)
        total = ops.reshape(ops.reshape(scores, (-1,))[:, None] + log_probabilities, (-1, width * vocab))
        scores, flat = ops.top_k(total, k=width)
        flat = ops.cast(flat, "int32")
        origin = ops.reshape(flat // vocab + ops.arange(rows, dtype="int32")[:, None] * width, (-1,))  # old beams
        tokens = ops.reshape(flat % vocab, (-1,))
        cache = keras.tree.map_structure(lambda t: ops.take(t, origin, axis=0), cache)
        was_done, lengths = ops.take(done, origin, axis=0), ops.take(lengths, origin, axis=0)
        tokens = ops.where(was_done, 0, tokens)
        done = was_done | (tokens == end_id) | (i >= beam_limits)
        lengths = lengths + ops.cast(~was_done, "int32")
        sequences = _write_column(ops.take(sequences, origin, axis=0), i, ops.where(done, 0, tokens))
        return i + 1, tokens, cache, scores, done, sequences, lengths

    beams = rows * width
    _, _, _, scores, done, sequences, lengths = _while_loop(
        lambda i, tokens, cache, scores, done, sequences, lengths: (i < steps) & ~ops.all(done), body,
        (ops.convert_to_tensor(0, "int32"), ops.repeat(_starts(start_id, rows), width), cache, scores,
         ops.zeros((beams,), "bool"), ops.zeros((beams, steps), "int32"), ops.zeros((beams,), "int32")))
    normalised = scores / ops.power(ops.cast(ops.maximum(ops.reshape(lengths, (-1, width)), 1), "float32"),
                                    length_penalty)
    best = ops.cast(ops.argmax(normalised, axis=-1), "int32") + ops.arange(rows, dtype="int32") * width
    return _finish(ops.take(sequences, best, axis=0))


def _rows_and_steps(limits):
    """The batch's rows, and the most steps any row may take (the output buffer's width)."""
    return ops.shape(limits)[0], ops.max(ops.concatenate([limits, ops.zeros((1,), "int32")]))


def _starts(start, rows):
    start = ops.cast(start, "int32")
    return ops.full((rows,), start, dtype="int32") if len(start.shape) == 0 else start


def _new_columns(rows, steps):
    """An empty output buffer: `steps` columns of [rows] token ids. On TensorFlow a TensorArray, one
    write a step: TensorFlow copies a [rows, steps] tensor whole at each scatter into it (charlm
    writing 10,000 characters for 256 rows: 6.1 s against 1.0 s); JAX updates it in place."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None])
    return ops.zeros((rows, steps), "int32")


def _is_tensor_array(x) -> bool:
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return isinstance(x, tf.TensorArray)


def _write_column(written, i, values):
    """written[:, i] = values: a TensorArray write, or one scatter into a [rows, steps] tensor."""
    if _is_tensor_array(written):
        return written.write(i, values)
    rows = ops.shape(written)[0]
    where = ops.stack([ops.arange(rows, dtype="int32"), ops.full((rows,), i, dtype="int32")], axis=1)
    return ops.scatter_update(written, where, values)


def _columns(written, rows):
    """The buffer as [rows, steps] (a TensorArray stacked; an empty one cannot stack a row length it
    never saw, so it gives [rows, 0])."""
    if not _is_tensor_array(written):
        return written
    import tensorflow as tf

    return tf.cond(written.size() > 0, lambda: tf.transpose(written.stack()), lambda: tf.zeros([rows, 0], tf.int32))


def _finish(sequences):
    """Token ids with 0 after the end -> (ids [batch, longest output], lengths [batch]): as wide
    as the longest output, however many steps the loop ran, so every runner's ids compare."""
    lengths = ops.sum(ops.cumprod(ops.cast(sequences != 0, "int32"), axis=1), axis=1)
    return sequences[:, :ops.max(ops.concatenate([lengths, ops.zeros((1,), "int32")]))], lengths


def _while_loop(cond, body, loop_vars):
    """keras.ops.while_loop, but on TensorFlow every loop variable may change its number of rows
    (a cache entering with a known batch comes back with an unknown one from a traced step)."""
    if keras.backend.backend() != "tensorflow":
        return ops.while_loop(cond, body, loop_vars)
    import tensorflow as tf

    def loose(t):  # any number of rows, the rest as it is (a Dense layer in the step needs its width)
        if _is_tensor_array(t):
            return None
        return tf.TensorShape([None, *t.shape[1:]]) if t.shape.rank else tf.TensorShape([])

    loop_vars = tf.nest.map_structure(lambda t: t if _is_tensor_array(t) else tf.convert_to_tensor(t), loop_vars)
    return tf.while_loop(cond, body, loop_vars, shape_invariants=tf.nest.map_structure(loose, loop_vars))


def _uniform_noise(seed, position, size):
    """[size] uniform draws in (1e-7, 1), a pure function of (seed, position)."""
    if keras.backend.backend() == "jax":
        import jax

        key = jax.random.fold_in(jax.random.PRNGKey(ops.cast(seed, "uint32")), position)
        return jax.random.uniform(key, (size,), minval=1e-7, maxval=1.0)
    import tensorflow as tf

    return tf.random.stateless_uniform([size], seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(position, tf.int64)]),
                                       minval=1e-7, maxval=1.0)


def join_batches(parts: list, empty: dict) -> dict:
    """The outputs of decoding consecutive batches (dicts of arrays) as one: each output
    concatenated along the batch, `token_ids` [rows, longest output] first padded with 0 to the
    widest batch's; `empty` (zero-row arrays of each output) when there was no batch."""
    if not parts:
        return empty
    width = max(p["token_ids"].shape[1] for p in parts)
    padded = [{**p, "token_ids": np.pad(p["token_ids"], [(0, 0), (0, width - p["token_ids"].shape[1])])}
              for p in parts]
    return {key: np.concatenate([p[key] for p in padded]) for key in parts[0]}
