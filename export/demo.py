"""`rnn-apps demo EXPORT_ROOT --out DIR`: a static folder that runs the exported .tflite files in a
browser with LiteRT.js (`@litertjs/core`, WebAssembly): type a review and see its sentiment, a
Spanish sentence and see it translated step by step through `encode` / `decode_step`, watch the
character model write, tag a sentence, draw a digit.

The folder holds the page (export/web/index.html, demo.js), each app's newest float .tflite with
the files shipped beside it, and the runtime's files: nothing is fetched from the internet when it
runs. Serve it with any static server (`python -m http.server -d DIR`) and open it.

demo.js holds the browser's phone clients: the JavaScript twins of each app's Python phone client
(`App.exported_inputs` + `App.run_tflite`), written from the model cards' rules. tests/test_browser.py
drives the page in headless Chromium (`?test=1`: it runs `test_inputs.json` and posts its outputs
back) and compares them with the Python TFLite outputs.
"""

import json
import shutil
import subprocess
from pathlib import Path

from export.exporter import read_manifest
from foundation.errors import UserError

WEB = Path(__file__).resolve().parent / "web"
PAGE_FILES = ("index.html", "demo.js")
RUNTIME = WEB / "node_modules" / "@litertjs"
RUNTIME_PACKAGES = {"core": ("dist", "wasm"), "wasm-utils": ("dist",)}
# the apps demo.js has a client for, and the files each reads beside its .tflite
BROWSER_APPS = ("sentiment", "digits", "translate", "charlm", "tagger")


def install_runtime() -> Path:
    """The LiteRT.js package, installed from export/web/package-lock.json where missing (npm ci)."""
    if (RUNTIME / "core" / "dist" / "index.js").exists():
        return RUNTIME
    npm = shutil.which("npm")
    if npm is None:
        raise UserError("the browser demo needs LiteRT.js from npm, and npm is not installed; install Node.js "
                        f"(with npm), or run `npm ci` in {WEB} on a machine that has it")
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, capture_output=True, text=True)
    if done.returncode != 0 or not (RUNTIME / "core" / "dist" / "index.js").exists():
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"`npm ci` in {WEB} failed: {last[0]}")
    return RUNTIME


def newest_models(export_roots: list) -> dict:
    """{app: (export entry, .tflite path, the files shipped with it)}: the newest version of each app
    the page runs (the first root that holds the app), its float .tflite (the one its
    model_card.json describes)."""
    chosen = {}
    for root in map(Path, export_roots):
        found = {}
        for entry in read_manifest(root, missing_ok=False)["exports"]:
            if entry.get("pending") or entry.get("app") not in BROWSER_APPS or entry["app"] in chosen:
                continue
            for artefact in entry["artefacts"]:
                if artefact["kind"] == "tflite" and artefact.get("quantization") == "none" \
                        and artefact.get("card", "model_card.json") == "model_card.json":
                    path = root / artefact["path"]
                    if entry["app"] not in found or entry["version"] > found[entry["app"]][0]["version"]:
                        found[entry["app"]] = (entry, path, artefact["assets"])
        chosen.update(found)
    return chosen


def write(export_roots: list, out, test_inputs: dict | None = None) -> list:
    """Write the page for the exports under `export_roots` into `out`; the apps it holds, in order.
    `test_inputs` ({app: [input, ...]}) is written as test_inputs.json for `?test=1`."""
    models = newest_models(export_roots)
    if not models:
        raise UserError(f"{', '.join(map(str, export_roots))}: no export of {', '.join(BROWSER_APPS)}, "
                        "the apps the page runs")
    runtime = install_runtime()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in PAGE_FILES:
        shutil.copy2(WEB / name, out / name)
    for package, folders in RUNTIME_PACKAGES.items():
        for folder in folders:
            shutil.copytree(runtime / package / folder, out / "litertjs" / package / folder, dirs_exist_ok=True)
    apps = []
    for app in BROWSER_APPS:
        if app not in models:
            continue
        entry, path, assets = models[app]
        target = out / "models" / app
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in [path.name, *assets]:  # that file's own (not a MediaPipe twin's card or vocabulary)
            shutil.copy2(path.parent / name, target / name)
        apps.append({"app": app, "version": entry["version"], "folder": f"models/{app}", "file": path.name})
    (out / "apps.json").write_text(json.dumps(apps, indent=2) + "\n")
    if test_inputs is not None:
        (out / "test_inputs.json").write_text(json.dumps(test_inputs, ensure_ascii=False) + "\n")
    return [a["app"] for a in apps]
