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
from foundation.errors import ExportError

TOLERANCE = 1e-4


def run_in_subprocess(saved_model_dir, requests: list, warmup: bool = False) -> tuple:
    """[(signature, inputs)] -> (their outputs, the outputs of every warmup record in
    SAVED_MODEL/assets.extra replayed through its signature if `warmup`), from one fresh process
    that loads the SavedModel once, as a server would."""
    with tempfile.TemporaryDirectory() as tmp:
        request, response = Path(tmp) / "in.pkl", Path(tmp) / "out.pkl"
        request.write_bytes(pickle.dumps({"requests": [{"signature": s, "inputs": i} for s, i in requests],
                                          "warmup": warmup}))
        done = subprocess.run([sys.executable, "-m", "export.parity", str(saved_model_dir), str(request),
                               str(response)], capture_output=True, text=True)
        if done.returncode != 0:
            raise ExportError(f"the SavedModel failed in a fresh process:\n{done.stderr.strip()[-4000:]}")
        result = pickle.loads(response.read_bytes())
        return result["requests"], result["warmup"]


def compare(expected: np.ndarray, actual: np.ndarray) -> dict:
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return {"ok": False, "why": f"shape {actual.shape} != {expected.shape}"}
    if np.issubdtype(expected.dtype, np.floating):
        diff = float(np.max(np.abs(expected - actual))) if expected.size else 0.0
        return {"ok": diff <= TOLERANCE, "max_abs_diff": diff}
    mismatches = int(np.sum(expected != actual))
    return {"ok": mismatches == 0, "mismatches": mismatches}


def phone_outputs(case, interpreter) -> dict:
    """What the TFLite side of `case` computes with `interpreter`: its loop, or its signature one
    example at a time."""
    if case.tflite_loop:
        return case.tflite_loop(interpreter)
    return tflite.run_one_by_one(interpreter, case.tflite_signature, case.tflite_inputs)


def check(cases, saved_model_dir, tflite_dir, warmup: bool = False) -> tuple:
    """-> ({"ok": bool, "tolerance": ..., "cases": [{name, examples, saved_model: {...}, tflite: {...}}]},
    the outputs of the SavedModel's warmup records, replayed in the same fresh process)."""
    report = {"ok": True, "tolerance": TOLERANCE, "cases": []}
    served, replayed = run_in_subprocess(saved_model_dir, [case.saved_model for case in cases], warmup)
    for case, saved_model_outputs in zip(cases, served, strict=True):
        sm_inputs = case.saved_model[1]
        outputs = {"saved_model": saved_model_outputs}
        if case.tflite_file:  # a SavedModel-only signature (a language model's `score`) has no TFLite side
            outputs["tflite"] = phone_outputs(case, tflite.interpreter(Path(tflite_dir) / case.tflite_file))
        entry = {"name": case.name, "examples": len(next(iter(sm_inputs.values())))}
        for kind, got in outputs.items():
            keys = case.tflite_compare if kind == "tflite" and case.tflite_compare is not None else case.compare
            entry[kind] = {key: compare(case.keras_outputs[key], got[key]) for key in keys}
            report["ok"] &= all(r["ok"] for r in entry[kind].values())
        report["cases"].append(entry)
    return report, replayed


def _serve(saved_model_dir: str, request: str, response: str):
    import tensorflow as tf

    job = pickle.loads(Path(request).read_bytes())
    signatures = tf.saved_model.load(saved_model_dir).signatures

    def run(signature, inputs):
        outputs = signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}

    results = {"requests": [run(r["signature"], r["inputs"]) for r in job["requests"]], "warmup": []}
    if job["warmup"]:
        from export import serving

        results["warmup"] = [run(signature, inputs) for signature, inputs in serving.read_warmup(saved_model_dir)]
    Path(response).write_bytes(pickle.dumps(results))


if __name__ == "__main__":
    _serve(*sys.argv[1:4])
