"""Keras backends: a run trained with KERAS_BACKEND=jax writes the same .keras checkpoints, which
this (TensorFlow) process reads unchanged, to the same predictions (issue 13; bench/jax_backend.py
also exports every app's JAX-trained run with TensorFlow, parity gate included)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


WITHOUT_TENSORFLOW = """
import json, sys
sys.modules["tensorflow"] = None  # as on the GPU machine: no TensorFlow to import
sys.path.insert(0, "bench")
from pathlib import Path
import numpy as np
from rnn_apps import registry
print("apps:", ",".join(registry.get(name).name for name in registry.names()))
import charlm_sweep_gpu, translate_sweep_gpu
from pipelines import characters
splits = characters.load(sys.argv[1], None)
curve = charlm_sweep_gpu.sweep_one("tiny", {"units": 8, "depth": 1, "embedding_dim": 4, "window": 16,
                                            "batch_size": 4, "mixed_precision": False}, splits, 4, 2)
print("charlm:", json.dumps(curve))
translate_sweep_gpu.train_recipe("default", Path(sys.argv[2]), Path(sys.argv[3]), 1)
"""


@pytest.mark.slow
def test_the_gpu_sweeps_train_the_apps_own_models_without_tensorflow(data_root, tmp_path):
    """bench's GPU sweeps build, train and decode with the app modules themselves (no twin of the
    models), on Keras's JAX backend with TensorFlow unimportable, as on the device machine."""
    text = tmp_path / "text.txt"
    text.write_text((data_root / "tiny_shakespeare" / "input.txt").read_text()[:20000])
    rng = np.random.default_rng(0)
    arrays = {f"{split}_{part}": rng.integers(4, 50, (24, width)).astype(np.int16)
              for split in ("train", "validation") for part, width in
              (("source", 12), ("target_in", 12), ("target_out", 12))}
    np.savez(tmp_path / "translate_ids.npz", **arrays, source_vocab_size=50, target_vocab_size=50)
    (tmp_path / "out").mkdir()
    tiny = {"units": 8, "decoder_units": 16, "attention_units": 8, "embedding_dim": 8, "source_length": 12,
            "target_length": 12, "batch_size": 8, "max_train_steps": 0}
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "SWEEP_ROWS": "24",
           "SWEEP_SET": json.dumps(tiny), "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, str(text), str(tmp_path), str(tmp_path / "out")],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    lines = child.stdout.splitlines()
    assert "apps: caption,charlm,digits,frames,sentiment,tagger,translate" in lines
    curve = json.loads(next(line for line in lines if line.startswith("charlm:")).split(":", 1)[1])
    assert [row["step"] for row in curve] == [2, 4]
    assert all(0 < row["val_carried"] < 6 and 0 < row["val_fresh"] < 6 for row in curve)  # log(vocab) ~ 4.2
    stored = np.load(tmp_path / "out" / "default.npz")
    assert stored["epoch1"].shape == (24, 12)  # greedy ids of every validation source, target_length wide
    assert json.loads(str(stored["curve"]))["epochs"][0]["val_loss"] > 0
