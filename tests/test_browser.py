"""The browser page (`rnn-apps demo`) in headless Chromium: its JavaScript clients, over LiteRT.js,
give the Python TFLite phone clients' outputs on fixed inputs (issue 29)."""

import functools
import http.server
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from export import demo, tflite
from rnn_apps import registry

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    found = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if found is None:
        pytest.skip("no Chromium here (scripts/install.sh installs Debian's `chromium` where apt can): "
                    "the browser page is NOT tested on this machine")
    return found


def run_page(folder, profile, timeout: float = 300) -> dict:
    """Open `folder`'s page with ?test=1 in headless Chromium, served on 127.0.0.1; what it posts."""
    posted, done = {}, threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_POST(self):
            posted.update(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log = Path(profile).with_suffix(".log")
    with open(log, "w") as errors:
        browser = subprocess.Popen(
            [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             f"--user-data-dir={profile}", f"http://127.0.0.1:{server.server_port}/index.html?test=1"],
            stdout=subprocess.DEVNULL, stderr=errors)
    try:
        deadline = time.monotonic() + timeout
        while not done.wait(1) and browser.poll() is None and time.monotonic() < deadline:
            pass
        why = "Chromium exited" if browser.poll() is not None else f"nothing within {timeout} s"
        assert done.is_set(), f"the page posted nothing ({why}); Chromium's last lines: {log.read_text()[-2000:]}"
    finally:
        browser.kill()
        browser.wait()
        server.shutdown()
    assert "error" not in posted, posted.get("error")
    return posted


def test_the_page_gives_the_python_phone_clients_outputs(tmp_path, tiny_export, tiny_run):
    chromium()
    roots = {app: tiny_export(app)[0] for app in demo.BROWSER_APPS}
    inputs = {
        "sentiment": [str(t) for t in tiny_run("sentiment").load_data().test["text"][:5]]
        + ["It ISN'T good!! (really)", "", "😀 café naïve", "good " * 3000],
        "digits": tiny_run("digits").load_data().test["pixels"][:5].tolist(),
        "translate": [str(t) for t in tiny_run("translate").load_data().test["source"][:4]]
        + ["", "¿Dónde está «la» biblioteca?"],
        "charlm": ["ROMEO:", "", "héllo\n\tthere"],
        "tagger": ["I didn't see the 3 dogs in New-York.", "", "ÉCOLE d'été: Ça VA?! (x-1)", "word " * 200],
    }
    apps = demo.write(list(roots.values()), tmp_path / "page", test_inputs=inputs)
    assert apps == list(demo.BROWSER_APPS)
    page = run_page(tmp_path / "page", tmp_path / "profile")

    for app_name, items in inputs.items():
        app, folder = registry.get(app_name), tmp_path / "page" / "models" / app_name
        interpreter = tflite.interpreter(next(folder.glob("*.tflite")))
        got = page[app_name]
        assert len(got) == len(items)
        if app_name == "digits":  # the page's pixels -> serving_default, as the Python client
            runner = interpreter.get_signature_runner("serving_default")
            expected = np.concatenate([runner(pixels=np.array([row], np.float32))["probabilities"] for row in items])
            np.testing.assert_allclose([g["probabilities"] for g in got], expected, atol=1e-5)
            continue
        _, _, phone_inputs = app.exported_inputs(items, folder)
        expected = app.run_tflite(interpreter, phone_inputs, folder)
        if app_name == "tagger":  # the same ids per token, and the same probabilities where a token is
            for i, row in enumerate(got):
                n = len(row["tokens"])
                for key in ("word_ids", "suffix_ids", "shape_ids"):
                    assert row[key] == phone_inputs[key][i][:n].tolist() and not phone_inputs[key][i][n:].any(), key
                tags = expected["probabilities"].shape[-1]
                np.testing.assert_allclose(np.reshape(row["probabilities"], (n, tags)),
                                           expected["probabilities"][i][:n], atol=1e-5)
        elif app_name == "sentiment":
            np.testing.assert_array_equal([g["token_ids"] for g in got], phone_inputs["token_ids"])
            np.testing.assert_allclose([g["probabilities"] for g in got], expected["probabilities"], atol=1e-5)
        else:  # the decoders: the same ids, token for token, and the same text
            key = "translation" if app_name == "translate" else "text"
            for i, row in enumerate(got):
                assert row["token_ids"] == expected["token_ids"][i][:expected["lengths"][i]].tolist(), (app_name, i)
                assert row[key] == expected[key][i].decode("utf-8"), (app_name, i)
