"""`rnn-apps export RUN_DIR --out EXPORT_ROOT`: versioned, atomic, parity-checked, listed.

  EXPORT_ROOT/<model_name>/<version>/           SavedModel (point TF Serving's model_base_path here)
  EXPORT_ROOT/tflite/<model_name>/<version>/    <app>.tflite, vocab/labels, model_card.json
  EXPORT_ROOT/manifest.json                     every export: paths, signatures, specs, parity

Everything is written into a staging folder inside EXPORT_ROOT, checked, then renamed into place,
so a server polling the folder never sees half a model, and an existing version is never touched.
"""

import datetime
import json
import os
import shutil
from pathlib import Path

from export import parity, savedmodel, tflite
from rnn_apps.errors import UserError
from rnn_apps.run import read_json, write_json

MANIFEST = "manifest.json"
PARITY_EXAMPLES = 64


def next_version(*folders) -> int:
    versions = [int(p.name) for f in folders if f.is_dir() for p in f.iterdir() if p.name.isdigit()]
    return max(versions, default=0) + 1


def export_run(run, export_root, model_name=None, parity_examples=PARITY_EXAMPLES, echo=print) -> dict:
    app, root = run.app, Path(export_root)
    model_name = model_name or app.name
    serving_base, tflite_base = root / model_name, root / "tflite" / model_name
    version = next_version(serving_base, tflite_base)
    staging = root / f".staging-{model_name}-{version}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "tflite").mkdir(parents=True)
    try:
        savedmodel.write(staging / "saved_model", app.serving(run))
        tflite_entries = []
        for model in app.tflite_models(run):
            path = staging / "tflite" / model.filename
            path.write_bytes(tflite.convert(model.endpoint))
            for name, content in model.assets.items():
                (staging / "tflite" / name).write_text(content, encoding="utf-8")
            ops = tflite.op_names(path)
            non_builtin = [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
            if non_builtin:
                raise UserError(f"{model.filename} needs non-builtin ops {non_builtin}; it would not run on a phone")
            tflite_entries.append((model, ops))
        report = parity.check(app.parity_cases(run, run.load_data(), parity_examples),
                              staging / "saved_model", staging / "tflite")
        if not report["ok"]:
            raise UserError(f"parity check failed, nothing published: {json.dumps(report['cases'])}")
        entry = {
            "model_name": model_name, "version": version, "app": app.name, "run_dir": str(run.dir.resolve()),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "artefacts": [{"kind": "saved_model", "path": f"{model_name}/{version}",
                           "signatures": savedmodel.signature_specs(staging / "saved_model")}],
            "parity": report,
        }
        for model, ops in tflite_entries:
            entry["artefacts"].append({
                "kind": "tflite", "path": f"tflite/{model_name}/{version}/{model.filename}",
                "signatures": tflite.signature_specs(staging / "tflite" / model.filename),
                "ops": ops, "assets": sorted(model.assets),
            })
        for staged, final in ((staging / "saved_model", serving_base / str(version)),
                              (staging / "tflite", tflite_base / str(version))):
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # another export took this version meanwhile; never overwrite it
                raise UserError(f"{final} appeared while exporting; run export again")
            os.rename(staged, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest = read_json(root / MANIFEST, default={"exports": []})
    manifest["exports"].append(entry)
    write_json(root / MANIFEST, manifest)
    echo(f"exported {model_name} version {version}: SavedModel {serving_base / str(version)}, "
         f"TFLite {tflite_base / str(version)}; parity ok over {parity_examples} test examples")
    return entry
