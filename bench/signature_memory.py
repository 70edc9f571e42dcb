"""A memory bound for every SavedModel signature of every app: the peak growth of one request at
1, 64 and 1,024 inputs, each input the largest the signature reads (reliability issue 30).

"The largest" per kind of input, made from the signature's own specs (so every app is covered
without code of its own here):
  - text `string[b]`: 65,536 bytes of words (what the text signatures read of one string at most;
    translate reads less, its first 32 bytes per allowed token);
  - pre-tokenised `string[b, t]`: 128 tokens a row (tagger's max_length);
  - image bytes `image_bytes: string[b]`: a 600x600 JPEG (larger images than MAX_IMAGE_PIXELS are
    refused from their header, without decoding; up to it, decoding one costs 4 bytes a pixel);
  - frames `float32[b, t, ...]` with `lengths`: 4,000 frames a sequence (the signature labels up
    to 108,000; 1,024 such rows would be a 3.5 GB request);
  - pixels with free height and width: 224x224; fixed shapes as they are;
  - scalars: charlm's `length` at its largest (10,000 characters), temperature 1, top_k 0, seed 1.
Each measurement runs in a fresh process: resident memory after loading, a warm-up call at batch 1
and building the request, then the peak (VmHWM, reset just before) during one call.

    python bench/signature_memory.py [--exports EXPORT_ROOT] [--sizes 1 64 1024]

Apps missing from the export root are first trained and exported with their default architecture
on little data (bench/common.py QUICK_TRAINING). Writes bench/results/signature_memory.json.
"""

import argparse
import json
import time

import common

MEASURE = r"""
import io, json, sys
import numpy as np
import tensorflow as tf
from PIL import Image
path, signature_name, n, specs = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
signature = tf.saved_model.load(path).signatures[signature_name]
FRAMES, SIDE, TOKENS = 4000, 224, 128
SCALARS = {"length": 10_000, "temperature": 1.0, "top_k": 0, "seed": 1}
def jpeg():
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)).save(out, "JPEG")
    return out.getvalue()
def request(rows):
    made = {}
    for name, spec in specs.items():
        dtype, shape = spec["dtype"], spec["shape"]
        if not shape:
            made[name] = tf.constant(SCALARS.get(name, 0), dtype)
        elif dtype == "string" and len(shape) == 2:
            made[name] = tf.constant([["word"] * TOKENS] * rows)
        elif dtype == "string":
            made[name] = tf.constant([jpeg() if "image" in name else ("word " * 13107 + "w").encode()] * rows)
        elif name == "lengths":
            made[name] = tf.fill([rows], FRAMES)
        else:
            dims = [rows] + [FRAMES if i == 1 and len(shape) == 3 else 3 if d == -1 and i == 3 and len(shape) == 4
                             else SIDE if d == -1 else d for i, d in enumerate(shape[1:], 1)]  # images: RGB
            values = np.random.default_rng(0).uniform(0, 1, dims)
            made[name] = tf.constant(values * (255 if dtype == "uint8" else 1), dtype)
    return made
def status(key):  # kB
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key))
signature(**request(1))
built = request(n)
open("/proc/self/clear_refs", "w").write("5")  # resets the peak (VmHWM) to the current RSS
loaded = status("VmRSS")
start = __import__("time").time()
outputs = signature(**built)
seconds = __import__("time").time() - start
rows = {k: int(v.shape[0]) for k, v in outputs.items() if v.shape.rank}
assert set(rows.values()) == {n}, rows
peak = status("VmHWM")
print(json.dumps({"rss_mb": loaded // 1024, "peak_mb": peak // 1024, "growth_mb": (peak - loaded) // 1024,
                  "seconds": round(seconds, 2)}))
"""


def measure(path, signature: str, n: int, specs: dict) -> dict:
    return common.measure_in_fresh_process(MEASURE, n, path, signature, n, json.dumps(specs))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--exports", help="export root; apps it lacks are trained and exported into it first")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 64, 1024])
    args = parser.parse_args()
    from export import exporter

    root = common.exports_root(args.exports)
    results, start = {}, time.time()
    for entry in exporter.read_manifest(root)["exports"]:
        saved_model = next(a for a in entry["artefacts"] if a["kind"] == "saved_model")
        for signature, spec in saved_model["signatures"].items():
            rows = [measure(root / saved_model["path"], signature, n, spec["inputs"]) for n in args.sizes]
            results[f"{entry['model_name']} {signature}"] = rows
            print(entry["model_name"], signature, rows, flush=True)
    common.write("signature_memory", {"exports": str(root), "sizes": args.sizes, "signatures": results,
                                      "seconds": round(time.time() - start, 1)})


if __name__ == "__main__":
    main()
