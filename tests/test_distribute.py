"""Multi-worker training (rnn_apps/distribute.py): two workers started as processes on 127.0.0.1
train in step (the same weights after every fit), match one process training on the same global
batch, write the run from the chief alone, and continue it with --resume after all of them stop."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from foundation.errors import UserError
from rnn_apps import distribute

REPO = Path(__file__).resolve().parents[1]

# A training process: argv = data_root out_dir strategy, then phases (weights_file overrides_json
# resume), each one train() call. The callback keeps the weights each call ends fit with (a
# worker's own, never written to the run).
WORKER = """
import json, sys
import numpy as np
import keras
from rnn_apps import registry
from rnn_apps.train import train

class FinalWeights(keras.callbacks.Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        np.savez(self.path, *[np.asarray(w.numpy()) for w in self.model.weights])

app = registry.get("sentiment")
phases = sys.argv[4:]
for weights, overrides, resume in zip(phases[::3], phases[1::3], phases[2::3]):
    config = app.resolve_config("tiny", json.loads(overrides))
    train(app, config, "sst2", sys.argv[1], sys.argv[2], {}, resume=resume == "1", resume_epochs=config["epochs"],
          echo=print, callbacks=[FinalWeights(weights)], strategy=sys.argv[3])
"""


def free_ports(count: int) -> list:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start(data_root, out, strategy, phases, tf_config=None):
    """phases: [(weights file, overrides, resume)], trained one after another in this process."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    args = [sys.executable, "-c", WORKER, str(data_root), str(out), strategy]
    for weights, overrides, resume in phases:
        args += [str(weights), json.dumps(overrides), "1" if resume else "0"]
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def weights_of(path) -> list:
    with np.load(path) as stored:
        return [stored[f"arr_{i}"] for i in range(len(stored.files))]


def train_workers(data_root, tmp, phase, overrides, resume, single_phases=()):
    """Two workers (shared run folder `multi`), and one process (`single`) through `single_phases`
    beside them -> the workers' final weights."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = [start(data_root, tmp / "multi", "multi-worker", [(tmp / f"{phase}_worker{i}.npz", overrides, resume)],
                       {"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(2)]
    if single_phases:
        processes.append(start(data_root, tmp / "single", "none", single_phases))
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for p in processes:
                p.kill()
            pytest.fail("a training process hung (workers out of step?)")
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    assert "worker done; the chief writes the run" in outputs[1]
    return [weights_of(tmp / f"{phase}_worker{i}.npz") for i in range(2)]


def assert_same(a, b, atol):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


@pytest.mark.slow
def test_two_workers_train_in_step_and_resume_like_one_process(data_root, tmp_path):
    # Batch 16 over two workers: 8 examples each a step. No dropout (each replica draws its own
    # masks) and XLA off on both sides (a multi-worker run always trains without it), so the
    # comparison is of the same arithmetic, summed in another order.
    overrides = {"epochs": 1, "jit_compile": False, "max_examples": 96, "max_train_minutes": 0.0,
                 "dropout": 0.0, "embedding_dropout": 0.0, "output_dropout": 0.0}
    resumed = {**overrides, "epochs": 2}
    # One process trains the same two phases (an epoch, then --resume to two) beside the first workers.
    single_phases = [(tmp_path / "first_single.npz", overrides, False), (tmp_path / "second_single.npz", resumed, True)]
    first, other = train_workers(data_root, tmp_path, "first", overrides, False, single_phases)
    assert_same(first, other, atol=0)  # in step: the same all-reduced gradients on both workers
    assert_same(first, weights_of(tmp_path / "first_single.npz"), atol=1e-5)

    run = tmp_path / "multi"
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.keras", "last.keras"]
    chief_files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if "logs" not in p.parts)

    # Every process stops; all start again with --resume and a larger epoch budget.
    chief, other = train_workers(data_root, tmp_path, "second", resumed, True)
    assert_same(chief, other, atol=0)
    assert_same(chief, weights_of(tmp_path / "second_single.npz"), atol=1e-5)
    assert max(np.abs(a - b).max() for a, b in zip(chief, first, strict=True)) > 1e-3  # the second epoch trained
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 2
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*") if "logs" not in p.parts) == chief_files


def test_multi_worker_needs_a_cluster_and_an_epoch_budget(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match="--strategy multi-worker needs TF_CONFIG naming the cluster"):
        distribute.make("multi-worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"index": 3}}')
    with pytest.raises(UserError, match="needs TF_CONFIG"):
        distribute.make("multi-worker")
    with pytest.raises(UserError, match="unknown strategy 'ring'"):
        distribute.make("ring")
    assert distribute.make("none") is None and distribute.is_chief(None) and distribute.workers(None) == 1
