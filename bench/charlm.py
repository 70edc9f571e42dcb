"""charlm (character language model) benchmark on tiny_shakespeare (first 90% of the characters
train, next 5% validate, last 5% test), trained on 2 CPU cores with the default configuration.
Target (issue 9): validation loss <= 1.45 nats/char, every validation character read with the state
carried across windows, after at most 30 minutes of training.

Reports: the whole training call's seconds; validation loss after every epoch (Keras's per-window
figure, fresh state) against training time; for the best checkpoint, validation and test loss
with the state carried (nats and bits per character, perplexity) and with a fresh state per
window; training throughput (characters/s); a sample of generated text; the exported SavedModel's
`generate` (300 characters) and `score` times, the TFLite `step` latency at batch 1; file sizes.

    python bench/charlm.py [--set key=value ...] [--keep RUN_DIR]

With --keep, a run that finished training there (RUN_DIR/train_seconds.json) is not trained again.
Writes bench/results/charlm_single_run.json (bench/results/charlm.json is `python -m bench run charlm`'s).
"""

import argparse
import tempfile
import time
from pathlib import Path

import common
import numpy as np
from translate import latency_ms

SAMPLE_PRIMES = {"ROMEO:": 1, "JULIET:\nO ": 2}  # prime -> seed


def serving_figures(run, export_root: Path) -> dict:
    import tensorflow as tf

    from export import exporter, tflite

    entry = exporter.export_run(run, export_root, echo=print)
    saved_model = export_root / "charlm" / str(entry["version"])
    tflite_path = export_root / next(a["path"] for a in entry["artefacts"] if a["kind"] == "tflite")
    loaded = tf.saved_model.load(str(saved_model))
    generate, score = loaded.signatures["generate"], loaded.signatures["score"]
    options = {"length": tf.constant(300), "temperature": tf.constant(0.8), "top_k": tf.constant(0),
               "seed": tf.constant(0, tf.int64)}
    generate(prime=tf.constant(["ROMEO:"]), **options)  # warm-up
    start = time.time()
    for _ in range(3):
        generate(prime=tf.constant(["ROMEO:"]), **options)
    generate_seconds = (time.time() - start) / 3
    text = run.load_data().test["text"][0]
    snippets = tf.constant([text[i: i + 1000] for i in range(0, 32_000, 1000)])
    score(text=snippets)
    start = time.time()
    score(text=snippets)
    score_seconds = time.time() - start
    interpreter = tflite.interpreter(tflite_path)
    step = interpreter.get_signature_runner("step")
    states = {f"state_{i}": np.zeros((1, run.config["units"]), np.float32) for i in range(run.config["depth"])}
    token = np.array([5], np.int32)
    size = sum(p.stat().st_size for p in saved_model.rglob("*") if p.is_file())
    return {
        "parity": entry["parity"],
        "tflite_ops": next(a["ops"] for a in entry["artefacts"] if a["kind"] == "tflite"),
        "saved_model_generate_300_characters_batch_1_seconds": round(generate_seconds, 3),
        "saved_model_score_32_texts_of_1000_characters_seconds": round(score_seconds, 3),
        "tflite_step_batch_1": latency_ms(lambda: step(token=token, **states), 2000),
        "tflite_bytes": tflite_path.stat().st_size, "saved_model_bytes": size,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", dest="assignments", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep", help="write the run here (default: a temporary folder)")
    args = parser.parse_args()
    from rnn_apps import registry
    from rnn_apps.config import parse_assignments
    from rnn_apps.run import Run

    app = registry.get("charlm")
    overrides = parse_assignments(args.assignments)
    out = Path(args.keep or tempfile.mkdtemp(prefix="bench_charlm_"))
    train_seconds = common.train_once(app, "tiny_shakespeare", overrides, out)
    run = Run(out)
    metrics = run.metrics()
    history = metrics["history"]
    steps = sum(1 for _ in app.dataset(run.load_data().train, run.preprocessing, run.config, shuffle_seed=0))
    characters_per_epoch = steps * run.config["batch_size"] * run.config["window"]
    evaluation = app.evaluate(run, run.load_data())
    samples = {prime: "".join(app.stream(run, prime, 300, 0.8, 0, seed)) for prime, seed in SAMPLE_PRIMES.items()}
    result = {
        "overrides": overrides, "run_dir": str(out), "train_seconds": round(train_seconds, 1),
        "config": run.config, "best_epoch": metrics.get("best_epoch"), "epochs_run": len(history),
        "steps_per_epoch": steps,
        "training_characters_per_second": round(characters_per_epoch * len(history) / metrics["train_seconds"]),
        "val_loss_fresh_state_by_epoch": [{"epoch": h["epoch"], "loss": round(h["loss"], 4),
                                           "val_loss": round(h["val_loss"], 4)} for h in history],
        "validation": evaluation["validation"], "test": evaluation["test"],
        "samples_temperature_0.8": {"seeds": SAMPLE_PRIMES, "texts": samples},
        "serving": serving_figures(run, out / "exports"),
    }
    common.write("charlm_single_run", result)


if __name__ == "__main__":
    main()
