"""One decoding loop for every model that writes a sequence (translate, charlm; caption next).

A model supplies only its next step, keras-hub `samplers/` style:

    step(tokens: int32 [rows], cache: dict of [rows, ...] tensors) -> (log_probabilities [rows, vocab], cache)

and the loops here drive it: `greedy`, `sample` (temperature, top-k, a seed) and `beam_search`,
each a `tf.while_loop` with a bounded number of steps, used by `predict`, `evaluate` and the
SavedModel signatures alike (eagerly or inside a tf.function); `stream` is `sample` one token at a
time for a CLI that prints as it goes, with the same choices. `start` is the first token fed (START
for a decoder; a prime's last character for a language model), one for all rows or one per row.
Every row stops at `end_id` (None: never) or at its own `limits` entry (a maximum output length).
What a phone runs over the TFLite step signature is the reference loop in `export/step_loop.py`,
checked against `greedy` token for token.

Outputs: token ids [batch, longest output] (the end token excluded, 0 after it) and lengths [batch].
"""

import numpy as np
import tensorflow as tf

NO_END = -1  # an id no model writes: rows run to their limit


MAX_TEMPERATURE = 100.0  # softmax(x / 100) is already near uniform: a higher one means nothing more


def sampling_options(length, temperature, top_k, max_length: int) -> dict:
    """What a served signature does with any client-given sampling options, defined for every value
    (issue 30: no value may take another meaning silently): `length` clipped to [0, max_length];
    `temperature` NaN or <= 0 -> 0 (greedy), above MAX_TEMPERATURE (inf too) -> MAX_TEMPERATURE;
    `top_k` < 0 -> 0 (every token). The signature returns the values it applied."""
    temperature = tf.cast(temperature, tf.float32)
    temperature = tf.where(tf.math.is_nan(temperature), 0.0, tf.clip_by_value(temperature, 0.0, MAX_TEMPERATURE))
    return {"length": tf.clip_by_value(tf.cast(length, tf.int32), 0, max_length), "temperature": temperature,
            "top_k": tf.maximum(tf.cast(top_k, tf.int32), 0)}


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
    greedy_ = tf.argmax(log_probabilities, axis=-1, output_type=tf.int32)
    if isinstance(temperature, (int, float)) and temperature <= 0:
        return greedy_  # known when tracing: no sampling ops in a greedy graph
    vocab = tf.shape(log_probabilities)[-1]
    temperature = tf.cast(temperature, tf.float32)
    top_k = tf.cast(top_k, tf.int32)
    allowed = tf.cond(top_k > 0, lambda: _top_k_only(log_probabilities, tf.minimum(top_k, vocab)),
                      lambda: log_probabilities)
    uniform = tf.random.stateless_uniform([vocab], seed=tf.stack([tf.cast(seed, tf.int64),
                                                                  tf.cast(position, tf.int64)]),
                                          minval=1e-7, maxval=1.0)
    gumbel = -tf.math.log(-tf.math.log(uniform))
    sampled = tf.argmax(allowed / tf.maximum(temperature, 1e-6) + gumbel[None], axis=-1, output_type=tf.int32)
    return tf.where(temperature > 0, sampled, greedy_)


def _top_k_only(log_probabilities, k):
    kth_best = tf.math.top_k(log_probabilities, k=k).values[:, -1:]
    return tf.where(log_probabilities >= kth_best, log_probabilities, -1e9)


def greedy(step, cache: dict, start, end_id, limits: tf.Tensor):
    """Take the most likely token at every step."""
    return sample(step, cache, start, end_id, limits, temperature=0.0)


def sample(step, cache: dict, start, end_id, limits: tf.Tensor, temperature=0.0, top_k=0, seed=0):
    """Choose each token with `choose` (greedy at temperature 0)."""
    limits = tf.cast(limits, tf.int32)
    rows = tf.shape(limits)[0]
    steps = tf.reduce_max(tf.concat([limits, [0]], 0))
    end_id = NO_END if end_id is None else end_id

    def body(i, tokens, cache, done, written):
        log_probabilities, cache = step(tokens, cache)
        tokens = choose(log_probabilities, i, temperature, top_k, seed)
        done = done | (tokens == end_id) | (i >= limits)
        return i + 1, tokens, cache, done, written.write(i, tf.where(done, 0, tokens))

    # Each step's tokens go into a TensorArray, not a tensor re-concatenated one column wider every
    # step: that allocated a new, larger buffer each step, which the allocator could not reuse
    # (charlm writing 10,000 characters for 256 rows peaked at over a gigabyte).
    _, _, _, _, written = tf.while_loop(
        lambda i, tokens, cache, done, written: (i < steps) & ~tf.reduce_all(done), body,
        (tf.constant(0), _starts(start, rows), cache, tf.zeros([rows], tf.bool),
         tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None])),
        shape_invariants=(tf.TensorShape([]), tf.TensorShape([None]), tf.nest.map_structure(_loose, cache),
                          tf.TensorShape([None]), None))
    return _finish(_columns(written, rows))


def stream(step, cache: dict, start, length: int, temperature=0.0, top_k=0, seed=0):
    """`sample` for one row without an end token, yielding each token id as it is chosen."""
    token = _starts(start, 1)
    for i in range(length):
        log_probabilities, cache = step(token, cache)
        token = choose(log_probabilities, tf.constant(i), temperature, top_k, seed)
        yield int(token[0])


def _starts(start, rows) -> tf.Tensor:
    start = tf.cast(start, tf.int32)
    return tf.fill([rows], start) if start.shape.rank == 0 else start


def beam_search(step, cache: dict, start_id: int, end_id: int, limits: tf.Tensor, width: int,
                length_penalty: float = 1.0):
    """Keep the `width` most likely prefixes of each row; pick the finished one whose
    log-probability divided by length ** length_penalty is highest (length normalisation: without
    it, short outputs win)."""
    limits = tf.cast(limits, tf.int32)
    rows = tf.shape(limits)[0]
    steps = tf.reduce_max(tf.concat([limits, [0]], 0))
    cache = tf.nest.map_structure(lambda t: tf.repeat(t, width, axis=0), cache)  # [rows * width, ...]
    beam_limits = tf.repeat(limits, width)
    # Only the first beam of each row is alive at the start, so the first step does not pick the
    # same token `width` times.
    scores = tf.tile(tf.concat([[0.0], tf.fill([width - 1], -1e9)], 0)[None], [rows, 1])

    def body(i, tokens, cache, scores, done, sequences, lengths):
        log_probabilities, cache = step(tokens, cache)
        vocab = tf.shape(log_probabilities)[-1]
        # A finished beam continues only with padding, at no cost, so it keeps its score.
        finished_row = tf.one_hot(0, vocab, on_value=0.0, off_value=-1e9)
        log_probabilities = tf.where(done[:, None], finished_row[None], log_probabilities)
        total = tf.reshape(tf.reshape(scores, [-1])[:, None] + log_probabilities, [rows, width * vocab])
        scores, flat = tf.math.top_k(total, k=width)
        origin = tf.reshape(flat // vocab + tf.range(rows)[:, None] * width, [-1])  # rows of the old beams
        tokens = tf.reshape(flat % vocab, [-1])
        cache = tf.nest.map_structure(lambda t: tf.gather(t, origin), cache)
        was_done, lengths = tf.gather(done, origin), tf.gather(lengths, origin)
        tokens = tf.where(was_done, 0, tokens)
        done = was_done | (tokens == end_id) | (i >= beam_limits)
        lengths = lengths + tf.cast(~was_done, tf.int32)
        written = tf.where(done, 0, tokens)
        sequences = tf.concat([tf.gather(sequences, origin), written[:, None]], axis=1)
        return i + 1, tokens, cache, scores, done, sequences, lengths

    beams = rows * width
    _, _, _, scores, done, sequences, lengths = tf.while_loop(
        lambda i, tokens, cache, scores, done, sequences, lengths: (i < steps) & ~tf.reduce_all(done), body,
        (tf.constant(0), tf.repeat(_starts(start_id, rows), width), cache, scores, tf.zeros([beams], tf.bool),
         tf.zeros([beams, 0], tf.int32), tf.zeros([beams], tf.int32)),
        shape_invariants=(tf.TensorShape([]), tf.TensorShape([None]), tf.nest.map_structure(_loose, cache),
                          tf.TensorShape([None, width]), tf.TensorShape([None]), tf.TensorShape([None, None]),
                          tf.TensorShape([None])))
    normalised = scores / tf.pow(tf.cast(tf.maximum(tf.reshape(lengths, [rows, width]), 1), tf.float32),
                                 length_penalty)
    best = tf.argmax(normalised, axis=-1, output_type=tf.int32) + tf.range(rows) * width
    return _finish(tf.gather(sequences, best))


def _columns(written: tf.TensorArray, rows) -> tf.Tensor:
    """A TensorArray of [rows] token vectors, one per step -> [rows, steps] (steps may be 0: an empty
    TensorArray cannot stack a row length it never saw)."""
    return tf.cond(written.size() > 0, lambda: tf.transpose(written.stack()), lambda: tf.zeros([rows, 0], tf.int32))


def _loose(t: tf.Tensor) -> tf.TensorShape:
    """The shape invariant of a cache tensor: any number of rows, the rest as it is."""
    return tf.TensorShape([None]).concatenate(t.shape[1:])


def _finish(sequences: tf.Tensor) -> tuple:
    """Token ids with 0 after the end -> (ids [batch, longest output], lengths [batch]): as wide
    as the longest output, however many steps the loop ran, so every runner's ids compare."""
    lengths = tf.reduce_sum(tf.math.cumprod(tf.cast(sequences != 0, tf.int32), axis=1), axis=1)
    return sequences[:, :tf.reduce_max(tf.concat([lengths, [0]], 0))], lengths


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
