"""Every app trained on the JAX backend, shipped with TensorFlow (issue 13): each app's `tiny` preset
trained by `KERAS_BACKEND=jax rnn-apps train` in a process of its own, then evaluated and exported
(SavedModel + TFLite, parity gate included) from that run's .keras checkpoint by TensorFlow, as a
user who trains on a GPU with JAX and ships with TensorFlow would.

    python bench/jax_backend.py [--apps digits,sentiment,...]

Writes bench/results/jax_backend.json.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

from rnn_apps import registry


def cli(args, backend: str) -> tuple:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.time()
    done = subprocess.run([sys.executable, "-m", "rnn_apps.cli", *map(str, args)], cwd=common.REPO, env=env,
                          capture_output=True, text=True)
    last_error = (done.stderr.strip().splitlines() or ["?"])[-1]
    return done.returncode, done.stdout, last_error, round(time.time() - start, 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", default=",".join(registry.names()))
    args = parser.parse_args()
    rows = {}
    for app in args.apps.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            code, _, error, seconds = cli(["train", app, "--preset", "tiny", "--data", common.local_data(app),
                                           "--data-root", common.DATA_ROOT, "--out", run], "jax")
            row = {"trained_on_jax": code == 0, "train_seconds": seconds}
            if code:
                row["error"] = error
            else:
                code, out, error, _ = cli(["evaluate", run, "--json"], "tensorflow")
                row["evaluated_by_tensorflow"] = json.loads(out.strip().splitlines()[-1]) if code == 0 else error
                code, out, error, seconds = cli(["export", run, "--out", Path(tmp) / "exports"], "tensorflow")
                row["exported_by_tensorflow"] = code == 0 and "parity ok" in out
                row["export"] = out.strip().splitlines()[-1] if code == 0 else error
        rows[app] = row
        print(app, json.dumps(row)[:300], flush=True)
    common.write("jax_backend", {"apps": rows})


if __name__ == "__main__":
    main()
