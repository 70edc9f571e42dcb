"""Shared by the benchmark scripts: train/evaluate through the same code as the CLI, and record
results with the machine, command and date (bench/results/*.json, summarised in bench/RESULTS.md)."""

import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA_ROOT = Path(os.environ.get("RNN_APPS_DATA_ROOT", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results"


def machine() -> str:
    """CPU, Python, and the framework that ran: TensorFlow, or Keras on JAX with its devices (a GPU
    machine has no TensorFlow)."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    described = f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"
    try:
        import tensorflow as tf
    except ImportError:
        import jax
        import keras

        devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
        return f"{described}, Keras {keras.__version__}, JAX {jax.__version__} on {devices}"
    return f"{described}, TensorFlow {tf.__version__}"


# The CPU features that decide how the SimpleRNN kernel is compiled and how fast products run.
ISA = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu() -> dict:
    """The CPU model and the instruction sets from ISA it has (read as the kernel's loader reads them)."""
    from rnn_apps import kernels

    model, flags = kernels.cpu_info()
    return {"model": model, "isa": [name for name in ISA if name in flags]}


def kernel() -> str:
    """How the SimpleRNN kernel that trained here was built (compiler and flags), or why it was not."""
    from rnn_apps import kernels

    return kernels.describe(kernels.build())


def latency_ms(fn, repeats: int) -> dict:
    """Median and 90th percentile of `repeats` calls of fn(), in milliseconds."""
    import numpy as np

    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(float(np.median(times)), 3), "p90_ms": round(float(np.percentile(times, 90)), 3)}


def train_once(app, data: str, overrides: dict, out: Path, echo=print) -> float:
    """Train `app` on `data` into `out` and return the whole call's seconds, kept in
    RUN_DIR/train_seconds.json, so a benchmark rerun with --keep on a finished run only measures."""
    from rnn_apps.train import train

    timing = Path(out) / "train_seconds.json"
    if timing.exists() and (Path(out) / "checkpoints" / "best.keras").exists():
        return json.loads(timing.read_text())["train_seconds"]
    start = time.time()
    train(app, app.resolve_config(None, overrides), data, DATA_ROOT, out, {}, echo=echo)
    seconds = time.time() - start
    timing.write_text(json.dumps({"train_seconds": seconds}) + "\n")
    return seconds


def write(name: str, result: dict):
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"command": "python " + " ".join(sys.argv), "date": datetime.date.today().isoformat(),
              "machine": machine(), "cpu": cpu(), **result}
    if "tensorflow" in sys.modules:  # a training run here may have used the kernel
        result["kernel"] = kernel()
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


def local_data(app: str) -> str:
    """The app's public data here (under DATA_ROOT): the first of the `default_data` its module
    declares, read without importing TensorFlow."""
    from rnn_apps import registry

    return registry.describe(app)["default_data"][0]


# What the serving benchmarks train when no export root is given: each app's default architecture
# (the sizes, the ensemble, the 65k-row sentiment embedding that memory and speed depend on), fitted
# on a little of its local data for one epoch: its answers are poor, its graph is the real one.
QUICK_TRAINING = {"sentiment": {"max_examples": 1024, "epochs": 1},
                  "digits": {"epochs": 1},
                  "translate": {"max_examples": 2048, "epochs": 1},
                  "charlm": {"max_characters": 50_000, "epochs": 1},
                  "tagger": {"max_examples": 2048, "epochs": 1},
                  "frames": {"epochs": 1},
                  "caption": {"epochs": 1}}


def default_architecture_exports(root: Path) -> Path:
    """Train and export every registered app's default architecture on little data into root."""
    from export import exporter
    from rnn_apps import registry
    from rnn_apps.run import Run
    from rnn_apps.train import train

    for name in registry.names():
        if (root / name).is_dir():
            continue
        if name not in QUICK_TRAINING:
            raise SystemExit(f"bench/common.py: add {name!r} to QUICK_TRAINING")
        app = registry.get(name)
        out = root / "runs" / name
        if not (out / "run.json").exists():
            train(app, app.resolve_config(None, QUICK_TRAINING[name]), local_data(name), DATA_ROOT, out, {},
                  echo=lambda *_: None)
        exporter.export_run(Run(out), root, echo=print)
    return root


def exports_root(path) -> Path:
    """--exports PATH (apps missing there are trained and exported into it), else a fresh folder."""
    return default_architecture_exports(Path(path) if path else Path(tempfile.mkdtemp(prefix="bench_exports_")))


def measure_in_fresh_process(code: str, batch: int, *args) -> dict:
    """Run `code` (a script printing one JSON object) in a new Python process with `args`: a memory
    measurement starts from a process that has loaded nothing else. -> {"batch", **printed} or the
    failure's exit code and last stderr line."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode:
        return {"batch": batch, "failed": done.returncode, "stderr": done.stderr.strip().splitlines()[-1:]}
    return {"batch": batch, **json.loads(done.stdout)}
