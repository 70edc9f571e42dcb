"""Peak memory of training each app's default configuration (issue 13): every app's `rnn-apps train`
in a process of its own on its default data, stopped by a short time budget (the epoch it stops in
is validated and checkpointed as usual, so reading the data, building, the first steps, validation
and checkpointing all happen); the peak resident memory of that process (ru_maxrss) is the number.

    python bench/train_memory.py [--apps digits,sentiment,...] [--minutes 0.5]

Writes bench/results/train_memory.json.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

from rnn_apps import registry


def peak_of_training(app: str, minutes: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "rnn_apps.cli", "train", app, "--data", common.local_data(app),
                   "--data-root", str(common.DATA_ROOT), "--out", str(Path(tmp) / "run"),
                   "--set", f"max_train_minutes={minutes}"]
        start = time.time()
        process = subprocess.Popen(command, cwd=common.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)
        _, status, usage = os.wait4(process.pid, 0)
        error = process.stderr.read()
        if os.waitstatus_to_exitcode(status) != 0:
            return {"error": error.strip().splitlines()[-1] if error.strip() else f"exit status {status}"}
        return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "seconds": round(time.time() - start, 1)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--apps", default=",".join(registry.names()))
    parser.add_argument("--minutes", type=float, default=0.5, help="training budget of each run")
    args = parser.parse_args()
    rows = {}
    for app in args.apps.split(","):
        rows[app] = peak_of_training(app, args.minutes)
        print(app, rows[app], flush=True)
    common.write("train_memory", {"minutes": args.minutes, "apps": rows})


if __name__ == "__main__":
    main()
