"""Peak memory of charlm's `score` on one request: the windowed loop (SCORE_WINDOW characters a
step, the state carried) against the whole-text form it replaced (issue 30), in a fresh process per
measurement. Any charlm run of the default architecture will do, e.g. one trained quickly:

    rnn-apps train charlm --data tiny_shakespeare --out /tmp/charlm_quick --set max_characters=50000 --epochs 1
    python bench/charlm_score_memory.py /tmp/charlm_quick windowed 8 20000     # or: whole 8 20000

Prints one JSON line: the peak resident-memory growth (VmHWM) of one call on ROWS texts of CHARS
characters of tiny_shakespeare, and the first row's loss (equal in both forms).
"""
import json
import sys
from pathlib import Path

import common  # noqa: F401 -- puts the repository on sys.path
import tensorflow as tf

from pipelines import characters
from rnn_apps.families import language_model
from rnn_apps.run import Run

run_dir, form, rows, chars = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
run = Run(run_dir)
model, reader, lookup = run.model, language_model.Reader(run.model), run.preprocessing.lookup
if form == "windowed":
    fn = run.app.scorer(run)[0]
else:  # the code before this change
    def fn(text):
        ids = tf.cast(lookup(characters.split_characters(text, language_model.MAX_SCORED)), tf.int32).to_tensor()
        ids = tf.pad(ids, [[0, 0], [0, tf.maximum(2 - tf.shape(ids)[1], 0)]])
        logits, _ = reader(ids[:, :-1], reader.zero_states(tf.shape(ids)[0]), mask=ids[:, :-1] != 0)
        counted = tf.cast(ids[:, 1:] != 0, tf.float32)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(ids[:, 1:], logits) * counted
        count = tf.reduce_sum(counted, axis=1)
        return {"nats_per_char": tf.math.divide_no_nan(tf.reduce_sum(losses, axis=1), count)}
fn = tf.function(fn, reduce_retracing=True)
text = next((common.DATA_ROOT / "tiny_shakespeare").glob("*.txt")).read_text()
batch = tf.constant([text[i * chars:(i + 1) * chars] for i in range(rows)])
fn(batch[:1])  # trace and warm up
Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the present size


def hwm():
    status = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))


before = hwm()
nats = fn(batch)["nats_per_char"].numpy()
print(json.dumps({"form": form, "rows": rows, "chars": chars, "peak_growth_mb": round((hwm() - before) / 1024, 1),
                  "nats_first": float(nats[0])}))
