"""Keras backends: a run trained with KERAS_BACKEND=jax writes the same .keras checkpoints, which
this (TensorFlow) process reads unchanged, to the same predictions (issue 13; bench/jax_backend.py
also exports every app's JAX-trained run with TensorFlow, parity gate included)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import invoke

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_run_trained_on_jax_predicts_the_same_on_tensorflow(data_root, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    # sentiment: token ids from the text pipeline, which Keras builds differently on JAX (dense, not
    # ragged); jit_compile: JAX's compiled step (eager JAX runs this tiny model twice as long).
    trained = subprocess.run(
        [sys.executable, "-m", "rnn_apps.cli", "train", "sentiment", "--preset", "tiny", "--data", "sst2",
         "--data-root", str(data_root), "--out", str(run), "--epochs", "1", "--set", "jit_compile=true"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    sentences = ["a fine , moving film", "awful , boring"]
    on_jax = subprocess.run([sys.executable, "-m", "rnn_apps.cli", "predict", str(run), *sentences, "--json"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert on_jax.returncode == 0, on_jax.stderr[-3000:]
    on_tensorflow = invoke("predict", run, *sentences, "--json")
    assert on_tensorflow.exit_code == 0, on_tensorflow.output
    jax_rows = [json.loads(line) for line in on_jax.stdout.strip().splitlines()]
    tf_rows = [json.loads(line) for line in on_tensorflow.stdout.strip().splitlines()]
    assert [r["input"] for r in jax_rows] == [r["input"] for r in tf_rows] == sentences
    for a, b in zip(jax_rows, tf_rows, strict=True):
        assert a["label"] == b["label"] and abs(a["probability"] - b["probability"]) < 1e-5
