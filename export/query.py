"""`rnn-apps query EXPORT_ROOT --name MODEL INPUTS...`: run inputs through the exported artefacts
only — the newest SavedModel version (as TF Serving would load it) and its TFLite model (as a
phone would run it, one example at a time) — and show both answers side by side.
"""

from pathlib import Path

import numpy as np

from export import tflite
from export.exporter import MANIFEST, read_manifest
from rnn_apps import registry
from rnn_apps.errors import UserError


def latest(export_root, model_name: str) -> dict:
    entries = [e for e in read_manifest(Path(export_root), missing_ok=False)["exports"]
               if e["model_name"] == model_name]
    if not entries:
        raise UserError(f"no export named {model_name!r} in {Path(export_root) / MANIFEST}")
    return max(entries, key=lambda e: e["version"])


def query(export_root, model_name: str, inputs: list) -> list:
    import tensorflow as tf

    root, entry = Path(export_root), latest(export_root, model_name)
    app = registry.get(entry["app"])
    tflite_path = root / next(a["path"] for a in entry["artefacts"] if a["kind"] == "tflite")
    label_names = (tflite_path.parent / "labels.txt").read_text(encoding="utf-8").split("\n")[:-1]
    names, sm_inputs, tflite_inputs = app.exported_inputs(inputs, tflite_path.parent)
    if not names:
        return []
    signature = tf.saved_model.load(str(root / model_name / str(entry["version"]))).signatures["serving_default"]
    served = {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in sm_inputs.items()}).items()}
    on_phone = tflite.run_one_by_one(tflite_path, "serving_default", tflite_inputs)
    rows = []
    for i, name in enumerate(names):
        phone_id = int(np.argmax(on_phone["probabilities"][i]))
        rows.append({
            "input": name, "version": entry["version"],
            "saved_model": {"label": served["label"][i].decode(), "probability": float(served["probability"][i])},
            "tflite": {"label": label_names[phone_id], "probability": float(on_phone["probabilities"][i][phone_id])},
        })
    return rows
