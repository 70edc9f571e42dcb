"""Parity: the Keras model, the SavedModel loaded in a separate process, and TFLite must agree.

Floating outputs may differ by at most TOLERANCE; integer and string outputs must be identical.
The SavedModel runs in a child process (`python -m export.parity SAVED_MODEL IN OUT`) so that
nothing from the exporting process (Python objects, registered Keras classes) can help it.
"""

import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from export import tflite
from rnn_apps.errors import ExportError

TOLERANCE = 1e-4


def run_saved_model_in_subprocess(saved_model_dir, signature: str, inputs: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        request, response = Path(tmp) / "in.pkl", Path(tmp) / "out.pkl"
        request.write_bytes(pickle.dumps({"signature": signature, "inputs": inputs}))
        done = subprocess.run([sys.executable, "-m", "export.parity", str(saved_model_dir), str(request),
                               str(response)], capture_output=True, text=True)
        if done.returncode != 0:
            raise ExportError(f"the SavedModel failed in a fresh process:\n{done.stderr.strip()[-4000:]}")
        return pickle.loads(response.read_bytes())


def compare(expected: np.ndarray, actual: np.ndarray) -> dict:
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return {"ok": False, "why": f"shape {actual.shape} != {expected.shape}"}
    if np.issubdtype(expected.dtype, np.floating):
        diff = float(np.max(np.abs(expected - actual))) if expected.size else 0.0
        return {"ok": diff <= TOLERANCE, "max_abs_diff": diff}
    mismatches = int(np.sum(expected != actual))
    return {"ok": mismatches == 0, "mismatches": mismatches}


def check(cases, saved_model_dir, tflite_dir) -> dict:
    """-> {"ok": bool, "tolerance": ..., "cases": [{name, examples, saved_model: {...}, tflite: {...}}]}"""
    report = {"ok": True, "tolerance": TOLERANCE, "cases": []}
    for case in cases:
        signature, sm_inputs = case.saved_model
        outputs = {"saved_model": run_saved_model_in_subprocess(saved_model_dir, signature, sm_inputs)}
        if case.tflite_file:  # a SavedModel-only signature (a language model's `score`) has no TFLite side
            model = tflite.interpreter(Path(tflite_dir) / case.tflite_file)
            outputs["tflite"] = case.tflite_loop(model) if case.tflite_loop else \
                tflite.run_one_by_one(model, case.tflite_signature, case.tflite_inputs)
        entry = {"name": case.name, "examples": len(next(iter(sm_inputs.values())))}
        for kind, got in outputs.items():
            keys = case.tflite_compare if kind == "tflite" and case.tflite_compare is not None else case.compare
            entry[kind] = {key: compare(case.keras_outputs[key], got[key]) for key in keys}
            report["ok"] &= all(r["ok"] for r in entry[kind].values())
        report["cases"].append(entry)
    return report


def _serve(saved_model_dir: str, request: str, response: str):
    import tensorflow as tf

    job = pickle.loads(Path(request).read_bytes())
    fn = tf.saved_model.load(saved_model_dir).signatures[job["signature"]]
    outputs = fn(**{k: tf.constant(v) for k, v in job["inputs"].items()})
    Path(response).write_bytes(pickle.dumps({k: v.numpy() for k, v in outputs.items()}))


if __name__ == "__main__":
    _serve(*sys.argv[1:4])
