"""Quantized phone models: `rnn-apps export RUN --quantize dynamic --quantize int8 ...`.

For every `.tflite` an app exports, each requested mode (export.QUANTIZE_MODES) is converted from
the same endpoints, checked for builtin ops, and measured with the app's own quality metric on its
test split, run the way a phone runs it (`App.phone_quality`: batch 1, the reference step loop).
int8 is calibrated on inputs recorded while the float model runs that same evaluation, so every
signature (a decoder's `decode_step` too) sees the values it meets in use.

A mode the converter cannot produce is reported as unavailable with the converter's reason, never a
crash. A mode whose quality falls short of the float model's by more than the app's stated bound
(`App.phone_metric`) is flagged; the model card's `default_file` is the smallest file within the
bound (the float `<app>.tflite`, parity-checked against Keras, when none is).
"""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from export import tflite
from foundation.errors import ExportError

QUALITY_EXAMPLES = 1000  # test examples (sentences, images, clips) each mode is measured on
CALIBRATION_SAMPLES = 200  # recorded inputs per signature that calibrate int8


class Recorder:
    """An interpreter that keeps (a seeded uniform sample of) the inputs of every signature call."""

    def __init__(self, interpreter, limit: int = CALIBRATION_SAMPLES, seed: int = 0):
        self._interpreter, self._limit, self._rng = interpreter, limit, np.random.default_rng(seed)
        self.samples, self._seen = {}, {}

    def __getattr__(self, name):
        return getattr(self._interpreter, name)

    def get_signature_runner(self, name: str):
        runner = self._interpreter.get_signature_runner(name)

        def run(**inputs):
            self._keep(name, {k: np.array(v) for k, v in inputs.items()})
            return runner(**inputs)

        run.get_input_details, run.get_output_details = runner.get_input_details, runner.get_output_details
        return run

    def _keep(self, name: str, inputs: dict):
        """Reservoir sampling: each call of a signature is kept with equal chance."""
        kept, seen = self.samples.setdefault(name, []), self._seen.get(name, 0)
        self._seen[name] = seen + 1
        if len(kept) < self._limit:
            kept.append(inputs)
        else:
            slot = int(self._rng.integers(0, seen + 1))
            if slot < self._limit:
                kept[slot] = inputs


def file_for(filename: str, mode: str) -> str:
    """sentiment.tflite -> sentiment.int8.tflite; mode none keeps the float file's name."""
    return filename if mode == "none" else filename.removesuffix(".tflite") + f".{mode}.tflite"


def measure(app, run, model, folder: Path, modes: list, test: dict, echo=print) -> dict:
    """Write `model` (a TFLiteModel whose float file is already in `folder`) in every mode of
    `modes`; -> the card section: metric, bound, default file and one row per mode."""
    metric, higher_is_better, bound = app.phone_metric
    float_path = Path(folder) / model.filename
    start = time.time()
    recorder = Recorder(tflite.interpreter(float_path))
    reference = float(phone_quality(app, model)(run, test, recorder))
    echo(f"  quality of {model.filename} (float32): {metric} {reference:.4f} "
         f"({time.time() - start:.1f} s)")
    rows = [{"mode": "none", "file": model.filename, "bytes": float_path.stat().st_size, "available": True,
             metric: reference, "difference": 0.0, "within_bound": True}]
    for mode in [m for m in modes if m != "none"]:
        rows.append(_variant(app, run, model, folder, mode, test, recorder.samples, reference, echo))
    return {"metric": metric, "higher_is_better": higher_is_better, "bound": bound,
            "test_examples": _examples(test), "modes": rows, "default_file": default_file(rows)}


def phone_quality(app, model):
    """How a file's quality is measured: its own `quality`, else the app's phone_quality."""
    return model.quality or app.phone_quality


def default_file(rows: list) -> str:
    """The file a phone app ships: the smallest available one within the quality bound (the float
    file, first in `rows`, always is)."""
    usable = [r for r in rows if r["available"] and r["within_bound"]]
    return min(usable, key=lambda r: r["bytes"])["file"]


def _variant(app, run, model, folder: Path, mode: str, test: dict, calibration: dict, reference: float,
             echo) -> dict:
    metric, higher_is_better, bound = app.phone_metric
    filename, start = file_for(model.filename, mode), time.time()
    row = {"mode": mode, "file": filename}
    echo(f"  converting {filename} ...")
    try:
        content = tflite.convert(model.endpoints, mode, calibration)
    except ExportError as e:
        echo(f"  {mode}: not available for {app.name} ({_last_line(e)})")
        return {**row, "available": False, "why": _last_line(e)}
    bad = tflite.forbidden_ops(tflite.op_names(content))
    if bad:
        return {**row, "available": False, "why": f"holds ops a phone's runtime lacks: {bad}"}
    path = Path(folder) / filename
    path.write_bytes(content)
    failure = smoke_test(path)
    if failure:
        path.unlink()
        why = f"converted, but LiteRT cannot run it: {failure}"
        echo(f"  {mode}: not available for {app.name} ({why})")
        return {**row, "available": False, "why": why}
    value = float(phone_quality(app, model)(run, test, tflite.interpreter(path)))
    difference = value - reference
    loss = -difference if higher_is_better else difference
    row.update(available=True, bytes=len(content), **{metric: value}, difference=difference,
               within_bound=bool(loss <= bound))
    echo(f"  {mode}: {len(content) / 1e6:.2f} MB, {metric} {value:.4f} ({difference:+.4f}"
         f"{'' if row['within_bound'] else f', beyond the bound of {bound}: flagged'}; {time.time() - start:.1f} s)")
    return row


# Loads a .tflite in LiteRT with its default delegate (XNNPACK) and calls every signature once
# with zeros. It runs in a child process: a quantized file can crash the runtime (a segfault while
# XNNPACK prepares a tensor quantized with scale 0 was seen), which must not take the export along.
SMOKE_TEST = """
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
interpreter = Interpreter(model_path=sys.argv[1])
for name in interpreter.get_signature_list():
    runner = interpreter.get_signature_runner(name)
    runner(**{k: np.zeros([max(int(d), 1) for d in v["shape_signature"]], v["dtype"])
              for k, v in runner.get_input_details().items()})
"""


def smoke_test(path) -> str | None:
    """None if LiteRT loads `path` and runs each signature once; otherwise why not, in one line."""
    done = subprocess.run([sys.executable, "-c", SMOKE_TEST, str(path)], capture_output=True, text=True)
    if done.returncode == 0:
        return None
    if done.returncode < 0:
        return f"the runtime crashed (signal {-done.returncode}) loading or running it"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return (lines[-1] if lines else f"exit status {done.returncode}")[:200]


def capped(columns: dict, limit: int = QUALITY_EXAMPLES) -> dict:
    return {k: v[:limit] for k, v in columns.items()}


def _examples(test: dict) -> int:
    return len(next(iter(test.values())))


def _last_line(error) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if "error:" in line]
    return (reasons or lines or ["unknown"])[-1].strip()[:300]
