"""`rnn-apps query EXPORT_ROOT [--name MODEL] INPUTS...`: run inputs through the exported artefacts
only — the newest SavedModel version (as TF Serving would load it) and its TFLite model (as a
phone would run it: one example at a time, or the app's step loop) — and show both side by side.
"""

from pathlib import Path

from export import tflite
from export.exporter import MANIFEST, read_manifest
from foundation.errors import UserError
from rnn_apps import registry


def latest(export_root, model_name: str | None) -> dict:
    """The newest version of `model_name`; without a name, of the one model the root holds."""
    # a pending version is one whose export was stopped mid-publish: never the one to answer with
    exports = [e for e in read_manifest(Path(export_root), missing_ok=False)["exports"] if not e.get("pending")]
    if model_name is None:
        names = sorted({e["model_name"] for e in exports})
        if len(names) != 1:
            raise UserError(f"{export_root} holds {len(names)} models ({', '.join(names) or 'none'}): "
                            "choose one with --name")
        model_name = names[0]
    entries = [e for e in exports if e["model_name"] == model_name]
    if not entries:
        raise UserError(f"no export named {model_name!r} in {Path(export_root) / MANIFEST}")
    return max(entries, key=lambda e: e["version"])


def query(export_root, model_name: str | None, inputs: list) -> list:
    import tensorflow as tf

    root, entry = Path(export_root), latest(export_root, model_name)
    app, model_name = registry.get(entry["app"]), entry["model_name"]
    saved_model = root / model_name / str(entry["version"])
    # The file the model card tells a phone app to ship (a quantized one, when within its bound).
    tflite_path = root / next(a["path"] for a in entry["artefacts"] if a["kind"] == "tflite" and a.get("default", True))
    for path in (saved_model, tflite_path):
        if not path.exists():
            raise UserError(f"{path} is listed in {root / MANIFEST} but missing; export again")
    names, sm_inputs, tflite_inputs = app.exported_inputs(inputs, tflite_path.parent)
    if not names:
        return []
    try:
        signature = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    except Exception as e:  # TensorFlow raises many types for a damaged saved_model.pb or variables
        raise UserError(f"{saved_model} is damaged ({type(e).__name__}); export the run again") from None
    try:
        interpreter = tflite.interpreter(tflite_path)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"{tflite_path} is damaged ({type(e).__name__}); export the run again") from None
    served = {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in sm_inputs.items()}).items()}
    on_phone = app.run_tflite(interpreter, tflite_inputs, tflite_path.parent)
    rows = app.query_rows(names, served, on_phone, tflite_path.parent)
    return [{**row, "version": entry["version"]} for row in rows]
