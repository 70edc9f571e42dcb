"""`rnn-apps export RUN_DIR --out EXPORT_ROOT`: versioned, atomic, parity-checked, listed.

  EXPORT_ROOT/<model_name>/<version>/           SavedModel (point TF Serving's model_base_path here)
  EXPORT_ROOT/tflite/<model_name>/<version>/    <app>.tflite, vocab/labels, model_card.json
  EXPORT_ROOT/manifest.json                     every export: paths, signatures, specs, parity

Everything is written into a staging folder inside EXPORT_ROOT, checked, then renamed into place,
so a server polling the folder never sees half a model, and an existing version is never touched.
The version is chosen, the folders renamed and the manifest rewritten (atomically) under a lock on
EXPORT_ROOT/.lock, so exports running at once get distinct versions. A damaged manifest stops an
export before any work is done; staging folders left by killed exports are removed by the next.

Publishing, in this order, so that a kill at any point leaves nothing a server or a client could
take for a finished version: (1) the manifest lists the new version as `"pending": true`; (2) the
TFLite folder is renamed into place; (3) the SavedModel folder, the one TF Serving watches, last;
(4) the manifest drops `pending`. The next export, or `rnn-apps repair`, finishes a pending version
whose folders are both in place and removes the parts of one that is not (`finish_pending`).
"""

import contextlib
import datetime
import fcntl
import json
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

from export import gpu_delegate, metadata, parity, savedmodel, serving, tflite
from export import quantize as quantization
from foundation import progress
from foundation.errors import ExportError, UserError
from foundation.files import write_json

MANIFEST = "manifest.json"
LABEL = re.compile(r"[a-z][a-z0-9_-]{0,63}")  # a TF Serving version label (stable, canary)
LOCK = ".lock"
STAGING_PREFIX = ".staging-"
# The SavedModel's signatures run a request in chunks of this many examples (a tf.while_loop in the
# graph), so a server's peak memory does not grow with the batch a client sends.
SERVING_CHUNK = 256


@contextlib.contextmanager
def locked(root: Path):
    """Hold the export root's lock: one process at a time chooses a version, publishes it and
    writes the manifest. The kernel releases it when the process dies, even by SIGKILL."""
    with open(root / LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_manifest(root: Path, missing_ok: bool = True) -> dict:
    """EXPORT_ROOT/manifest.json, checked: {"exports": [{"model_name": str, "version": int, ...}]}."""
    path = Path(root) / MANIFEST
    if not path.exists():
        if missing_ok:
            return {"exports": []}
        raise UserError(f"{path} is missing; write an export with `rnn-apps export RUN_DIR --out {root}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        manifest = None
    entries = manifest.get("exports") if isinstance(manifest, dict) else None
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("model_name"), str) and isinstance(e.get("version"), int)
            and isinstance(e.get("artefacts"), list) for e in entries) or not _labels_valid(manifest.get("labels", {})):
        raise UserError(f"{path} is damaged (expected {{\"exports\": [...]}} with a model_name, version and "
                        f"artefacts in each entry); restore it or move it away from the export root {root}")
    return manifest


def _labels_valid(labels) -> bool:
    """{"labels": {model: {label: version}}}, optional."""
    return isinstance(labels, dict) and all(isinstance(versions, dict) and all(isinstance(v, int) for v in
                                                                              versions.values())
                                            for versions in labels.values())


def next_version(manifest: dict, model_name: str, *folders) -> int:
    """One more than any version of model_name on disk or in the manifest."""
    versions = [int(p.name) for f in folders if f.is_dir() for p in f.iterdir() if p.name.isdigit()]
    versions += [e["version"] for e in manifest["exports"] if e["model_name"] == model_name]
    return max(versions, default=0) + 1


def version_folders(root: Path, entry: dict) -> list:
    """The two folders an export entry publishes: its TFLite folder, then its SavedModel."""
    name, version = entry["model_name"], str(entry["version"])
    return [root / "tflite" / name / version, root / name / version]


def finish_pending(root: Path, manifest: dict) -> list:
    """Under the lock: versions a killed export left pending are finished where both folders are in
    place, else removed (folders and entry). Returns one line for each; rewrites the manifest if any."""
    said, kept = [], []
    for entry in manifest["exports"]:
        if not entry.get("pending"):
            kept.append(entry)
            continue
        label = f"{entry['model_name']} version {entry['version']}"
        if all(folder.is_dir() for folder in version_folders(root, entry)):
            entry.pop("pending")
            kept.append(entry)
            said.append(f"finished {label}: its export was stopped after publishing both folders")
        else:
            for folder in reversed(version_folders(root, entry)):
                shutil.rmtree(folder, ignore_errors=True)
            said.append(f"removed {label}: its export was stopped before publishing it whole")
    if said:
        manifest["exports"] = kept
        write_json(root / MANIFEST, manifest)
    return said


def unlisted_versions(root: Path, manifest: dict) -> list:
    """Version folders of the manifest's models that no entry lists (left by an export that predates
    the pending protocol, or put there by hand): TF Serving's default policy would serve the newest."""
    listed = {folder for entry in manifest["exports"] for folder in version_folders(root, entry)}
    names = {entry["model_name"] for entry in manifest["exports"]}
    return sorted(folder for name in names for base in (root / name, root / "tflite" / name) if base.is_dir()
                  for folder in base.iterdir() if folder.name.isdigit() and folder not in listed)


ORPHANS = ".orphans"


def repair(export_root) -> list:
    """`rnn-apps repair EXPORT_ROOT`: finish or remove pending versions, and move version folders the
    manifest does not list to EXPORT_ROOT/.orphans/ (out of TF Serving's sight, not deleted)."""
    root = Path(export_root)
    if not (root / MANIFEST).exists():
        raise UserError(f"{root / MANIFEST} is missing: {root} is not an export root")
    with locked(root):
        manifest = read_manifest(root)
        remove_stale_staging(root)
        said = finish_pending(root, manifest)
        for folder in unlisted_versions(root, manifest):
            target = root / ORPHANS / folder.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                target = target.with_name(f"{target.name}-{secrets.token_hex(4)}")
            os.rename(folder, target)
            said.append(f"moved {folder.relative_to(root)}, which the manifest does not list, "
                        f"to {target.relative_to(root)}")
        serving.write_server_files(root, manifest, SERVING_CHUNK)
    return said


@contextlib.contextmanager
def scratch_in(folder: Path):
    """Temporary files (ours, the converter's, the parity process's) go under `folder` meanwhile, so a
    killed export leaves them in its staging folder, which the next export removes, not in /tmp."""
    folder.mkdir(parents=True, exist_ok=True)
    saved_tempdir, saved_env = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = str(folder), str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env


def remove_stale_staging(root: Path):
    """Staging folders of exports whose process is gone (killed mid-export) are removed."""
    for folder in root.glob(STAGING_PREFIX + "*"):
        pid = folder.name[len(STAGING_PREFIX):].split("-")[0]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_label(label: str):
    if not LABEL.fullmatch(label):
        raise UserError(f"--label {label!r}: a label is lower-case letters, digits, - and _, starting with a letter")


def set_label(export_root, model_name: str, version: int, label: str) -> dict:
    """Point `label` (stable, canary, ...) of `model_name` at `version` in the manifest and models.config."""
    root = Path(export_root)
    check_label(label)
    with locked(root):
        manifest = read_manifest(root, missing_ok=False)
        if not any(e["model_name"] == model_name and e["version"] == version and not e.get("pending")
                   for e in manifest["exports"]):
            raise UserError(f"{root / MANIFEST} lists no finished version {version} of {model_name!r}")
        manifest.setdefault("labels", {}).setdefault(model_name, {})[label] = version
        write_json(root / MANIFEST, manifest)
        serving.write_server_files(root, manifest, SERVING_CHUNK)
    return manifest["labels"][model_name]


def export_run(run, export_root, model_name=None, parity_examples=None, echo=print,
               quantize=(), label=None) -> dict:
    """Publish `run` as the next version of `model_name`; with `quantize` (modes of
    export.QUANTIZE_MODES), also each mode's .tflite, measured on the test split (export/quantize.py)."""
    app, root = run.app, Path(export_root)
    model_name = model_name or app.name
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise UserError(f"--name {model_name!r}: a model name is one folder name, not a path")
    serving_base, tflite_base = root / model_name, root / "tflite" / model_name
    root.mkdir(parents=True, exist_ok=True)
    with locked(root):
        read_manifest(root)  # a damaged manifest stops the export before any work
        remove_stale_staging(root)
    if label is not None:
        check_label(label)
    staging = root / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    (staging / "tflite").mkdir(parents=True)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    scratch = contextlib.ExitStack()
    try:
        scratch.enter_context(scratch_in(staging / "scratch"))
        with progress.step(f"writing the SavedModel of {model_name}", echo):
            savedmodel.write(staging / "saved_model", app.serving(run), batch_chunk=SERVING_CHUNK)
        tflite_entries = []
        for model in app.tflite_models(run):
            path = staging / "tflite" / model.filename
            with progress.step(f"converting {model.filename} (builtin ops only)", echo):
                path.write_bytes(tflite.convert(model.endpoints))
            for name, content in model.assets.items():
                (staging / "tflite" / name).write_text(content, encoding="utf-8")
            ops = tflite.op_names(path)
            if tflite.forbidden_ops(ops):
                raise ExportError(f"{model.filename} holds ops a phone's runtime lacks or that keep state: "
                                  f"{tflite.forbidden_ops(ops)}; nothing published")
            tflite_entries.append(model)
        examples = {k: v[:parity_examples] for k, v in run.parity_examples().items()}  # None: all the run stored
        cases = app.parity_cases(run, examples)
        signatures = savedmodel.signature_specs(staging / "saved_model")
        try:
            requests = serving.requests_from(cases, {name: spec["inputs"] for name, spec in signatures.items()})
        except ValueError as e:
            raise ExportError(f"{app.name}: {e}") from None
        serving.write_warmup(staging / "saved_model", model_name, requests)
        # The fresh process that checks parity also replays every warmup record, as TF Serving
        # will on load; their outputs are the responses the REST examples show.
        with progress.step(f"checking parity of Keras, the SavedModel (in a fresh process) and TFLite on "
                           f"{len(cases)} case(s)", echo):
            report, responses = parity.check(cases, staging / "saved_model", staging / "tflite", warmup=True)
        if not report["ok"]:
            raise ExportError(f"parity check failed, nothing published: {json.dumps(report['cases'])}")
        serving.write_examples(staging / "saved_model", model_name, requests, responses)
        artefacts = [{"kind": "saved_model", "signatures": signatures,
                      "tf_serving": {"warmup_requests": len(requests), "examples": f"assets.extra/{serving.REST_FILE}",
                                     "grpc_client": f"assets.extra/{serving.GRPC_FILE}"}}]
        # Every card states the float file's measured quality: on the test split (up to
        # quantize.QUALITY_EXAMPLES) with --quantize, else on the test examples stored with the run.
        if quantize:
            with progress.step(f"reading the test split to measure {app.phone_metric[0]} per quantization mode",
                               echo):
                test = quantization.capped(run.load_data().test)
        else:
            test = examples
        quality = {}
        for model in tflite_entries:
            measured = quantization.measure(app, run, model, staging / "tflite", quantize or ("none",), test, echo)
            measured["examples_from"] = "the test split" if quantize else "the test examples stored with the run"
            # TFLite metadata in each file: the app's card says what each tensor means, and the files
            # beside it (vocabularies, labels) are packed in; then the card is completed, with the
            # files' final sizes (the complete card stays beside the file: it describes every file)
            app_card = json.loads(model.assets.get(model.card_file, "{}"))
            packed = {name: text for name, text in model.assets.items() if name != model.card_file}
            for row in measured["modes"]:
                if row["available"]:
                    file = staging / "tflite" / row["file"]
                    ops = tflite.op_names(file)
                    metadata.attach(file, packed, app_card, version=created)
                    if tflite.op_names(file) != ops:  # the graph itself must come out as it went in
                        raise ExportError(f"{row['file']}: writing its metadata changed its ops; nothing published")
                    tflite.interpreter(file)  # and LiteRT still loads it
                    row["bytes"] = file.stat().st_size
            card = write_card(staging / "tflite", model, measured, run)
            for row in measured["modes"]:
                if row["available"]:
                    file = staging / "tflite" / row["file"]
                    artefacts.append({"kind": "tflite", "file": row["file"], "quantization": row["mode"],
                                      "default": row["file"] == card["default_file"],
                                      "signatures": card["signature_specs"][row["file"]],
                                      "ops": tflite.op_names(file),
                                      "assets": sorted(model.assets), "card": model.card_file})
            quality[model.filename] = measured
        with locked(root):
            manifest = read_manifest(root)
            for line in finish_pending(root, manifest):
                echo(line)
            version = next_version(manifest, model_name, serving_base, tflite_base)
            for artefact in artefacts:
                file = artefact.pop("file", None)
                artefact["path"] = f"{model_name}/{version}" if file is None else \
                    f"tflite/{model_name}/{version}/{file}"
            entry = {
                "model_name": model_name, "version": version, "app": app.name, "run_dir": str(run.dir.resolve()),
                "created": created,
                "artefacts": artefacts, "parity": report,
            }
            entry["quantization"] = quality
            if run.member_index is not None:
                entry["ensemble_member"] = run.member_index
            manifest["exports"].append({**entry, "pending": True})
            write_json(root / MANIFEST, manifest)
            # the order version_folders gives: TFLite first, the SavedModel TF Serving watches last
            _publish(list(zip([staging / "tflite", staging / "saved_model"], version_folders(root, entry),
                              strict=True)))
            manifest["exports"][-1] = entry
            if label is not None:
                manifest.setdefault("labels", {}).setdefault(model_name, {})[label] = version
            write_json(root / MANIFEST, manifest)
            serving.write_server_files(root, manifest, SERVING_CHUNK)
    finally:
        scratch.close()
        shutil.rmtree(staging, ignore_errors=True)
    echo(f"exported {model_name} version {version}: SavedModel {serving_base / str(version)}, "
         f"TFLite {tflite_base / str(version)}; parity ok: "
         + "; ".join(f"{case['name']} ({case['examples']})" for case in report["cases"]))
    return entry


def write_card(folder: Path, model, measured: dict, run) -> dict:
    """Complete the app's model_card.json beside a .tflite with what every card states: each
    file's signature specs (names, shapes, dtypes), the files beside it, the quantization modes with
    their measured quality, and the file to ship (`default_file`)."""
    path = folder / model.card_file
    card = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    # Beside the app's own "signatures" (what each input and output means): each file's exact specs.
    card["signature_specs"] = {row["file"]: tflite.signature_specs(folder / row["file"])
                               for row in measured["modes"] if row["available"]}
    card["files"] = sorted([*card["signature_specs"], *model.assets])
    # per file: the oldest LiteRT runtime it runs on, and the ops a phone's GPU delegate leaves to the CPU
    card["runtime"] = {row["file"]: gpu_delegate.card_entry(folder / row["file"])
                       for row in measured["modes"] if row["available"]}
    card["default_file"] = measured["default_file"]
    card["quantization"] = measured
    if run.member_index is not None:
        card["ensemble_member"] = {"index": run.member_index, "of": run.ensemble_size}
    write_json(path, card)
    return card


def _publish(moves: list):
    """Rename each staged folder into place (atomic each); if one fails, take back the others."""
    done = []
    try:
        for staged, final in moves:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staged, final)
            done.append((staged, final))
    except OSError as e:
        for staged, final in reversed(done):
            os.rename(final, staged)
        raise UserError(f"could not publish {final}: {e}") from None  # the pending entry: finish_pending removes it
