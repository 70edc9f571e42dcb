"""Peak memory of a SavedModel request against its batch size (reliability issue, item 1).

Each app's signatures process a request in chunks of `export.exporter.SERVING_CHUNK` examples (a
`tf.while_loop` in the graph), so peak memory is that of one chunk plus the request itself. This
measures it, in a fresh process per request: resident memory after loading, a warm-up call and
building the request, then the peak (VmHWM, reset just before) during one call with N examples.
For comparison, the same model written without chunks (as exports were before), up to a batch it
survives.

    python bench/serving_memory.py [--exports EXPORT_ROOT] [--sizes 1 1000 10000 30000 100000]

Apps missing from the export root (a fresh one without --exports) are first trained and exported
with their default architecture on little data (bench/common.py QUICK_TRAINING).
Writes bench/results/serving_memory.json.
"""

import argparse

import common

MEASURE = """
import json, sys
import numpy as np
import tensorflow as tf
path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
signature = tf.saved_model.load(path).signatures["serving_default"]
def batch(n):
    if name == "sentiment":
        words = "a gorgeous , witty , seductive movie that never quite finds its feet".split()
        return {"text": tf.constant([" ".join(words[: 4 + i % 10]) + f" {i}" for i in range(n)])}
    return {"pixels": tf.constant(np.random.default_rng(0).uniform(0, 16, (n, 64)), tf.float32)}
def status(key):  # kB
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))
signature(**batch(8))
request = batch(n)
open("/proc/self/clear_refs", "w").write("5")  # resets the peak (VmHWM) to the current RSS
loaded = status("VmRSS")
outputs = signature(**request)
assert outputs["probabilities"].shape[0] == n
peak = status("VmHWM")
print(json.dumps({"rss_mb": loaded // 1024, "peak_mb": peak // 1024, "growth_mb": (peak - loaded) // 1024}))
"""


def measure(path, name: str, n: int) -> dict:
    return common.measure_in_fresh_process(MEASURE, n, path, name, n)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--exports", help="export root; apps it lacks are trained and exported into it first")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 1000, 10000, 30000, 100000])
    parser.add_argument("--unchunked-up-to", type=int, default=10000,
                        help="largest batch for the unchunked copy (30,000 took 8.4 GB for sentiment)")
    args = parser.parse_args()
    from export import exporter, savedmodel
    from rnn_apps.run import Run

    root = common.exports_root(args.exports)
    results = {}
    for name in ("sentiment", "digits"):
        entry = exporter.read_manifest(root)["exports"]
        entry = max((e for e in entry if e["model_name"] == name), key=lambda e: e["version"])
        chunked = root / name / str(entry["version"])
        unchunked = root / "unchunked" / name
        if not unchunked.exists():
            run = Run(entry["run_dir"])
            savedmodel.write(unchunked, run.app.serving(run))
        rows = []
        for n in args.sizes:
            rows.append({"chunked": measure(chunked, name, n),
                         "unchunked": measure(unchunked, name, n) if n <= args.unchunked_up_to else None})
            print(name, rows[-1], flush=True)
        results[name] = {"saved_model": str(chunked), "run": entry["run_dir"], "by_batch": rows}
    common.write("serving_memory", {"chunk": exporter.SERVING_CHUNK, "exports": str(root), "apps": results})


if __name__ == "__main__":
    main()
