"""rnn_apps/decoding.py on every Keras backend: the same loops, written with keras.ops, give the same
greedy and beam outputs on JAX (no TensorFlow imported) as on TensorFlow, for a step written in
keras.ops too; sampling there is seeded by JAX's own generator."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from keras import ops

from rnn_apps import decoding

REPO = Path(__file__).resolve().parents[1]
# Vocabulary: 0 padding, 1 unknown, 2 START, 3 END, 4..7 words; each row of the table is the next
# token's distribution given the last one, word 5 loops on itself, 7 follows 6 half the time.
TABLE = np.full((8, 8), 1e-4, np.float32)
TABLE[2, [4, 5, 6]] = [0.5, 0.3, 0.2]
TABLE[4, [3, 6, 5]] = [0.4, 0.35, 0.25]
TABLE[5, 5] = TABLE[7, 3] = TABLE[0, 3] = TABLE[3, 3] = 0.9
TABLE[6, [7, 3]] = [0.5, 0.45]


def outputs() -> dict:
    """Every loop of the module over the table, as lists (run under whichever backend is set)."""
    log_table = ops.log(ops.convert_to_tensor(TABLE / TABLE.sum(1, keepdims=True)))

    def step(tokens, cache):
        return ops.take(log_table, tokens, axis=0), {"steps": cache["steps"] + 1.0}

    cache = {"steps": ops.zeros((3, 2))}
    limits = ops.convert_to_tensor(np.array([6, 2, 0], np.int32))
    found = {}
    for name, (ids, lengths) in {
        "greedy": decoding.greedy(step, cache, 2, 3, limits),
        "beam": decoding.beam_search(step, cache, 2, 3, limits, width=3),
        "top_1": decoding.sample(step, cache, 2, 3, limits, temperature=1.0, top_k=1, seed=4),
        "sampled": decoding.sample(step, cache, 2, 3, limits, temperature=1.0, seed=4),
        "sampled_again": decoding.sample(step, cache, 2, 3, limits, temperature=1.0, seed=4),
    }.items():
        found[name] = {"ids": ops.convert_to_numpy(ids).tolist(), "lengths": ops.convert_to_numpy(lengths).tolist()}
    found["options"] = {k: float(ops.convert_to_numpy(v)) for k, v in
                        decoding.sampling_options(20000, float("nan"), -3, 10000).items()}
    return found


@pytest.mark.slow  # starts a JAX process
def test_the_loops_decode_the_same_on_jax_as_on_tensorflow():
    on_tensorflow = outputs()
    # greedy: START -> 4 (0.5) -> END (0.4); the beam finds the loop on 5, likelier per token
    # (length-normalised), until each row's limit; the row of limit 0 writes nothing
    assert on_tensorflow["greedy"] == {"ids": [[4], [4], [0]], "lengths": [1, 1, 0]}
    assert on_tensorflow["beam"] == {"ids": [[5] * 6, [5, 5, 0, 0, 0, 0], [0] * 6], "lengths": [6, 2, 0]}
    assert on_tensorflow["top_1"] == on_tensorflow["greedy"]  # top-1 sampling is greedy
    assert on_tensorflow["sampled"] == on_tensorflow["sampled_again"]
    assert on_tensorflow["options"] == {"length": 10000.0, "temperature": 0.0, "top_k": 0.0}
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    script = ("import json, sys; from tests.test_decoding import outputs; found = outputs(); "
              "found['tensorflow_imported'] = 'tensorflow' in sys.modules; print(json.dumps(found))")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    on_jax = json.loads(done.stdout.strip().splitlines()[-1])
    assert on_jax.pop("tensorflow_imported") is False
    for name in ("greedy", "beam", "top_1", "options"):
        assert on_jax[name] == on_tensorflow[name], name
    assert on_jax["sampled"] == on_jax["sampled_again"]  # seeded, on JAX's generator
    assert all(0 <= n <= limit for n, limit in zip(on_jax["sampled"]["lengths"], [6, 2, 0], strict=True))
