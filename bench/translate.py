"""translate (encoder-decoder) benchmark: spa->en corpus BLEU (sacrebleu, detokenised output
against the raw references) on the 2,000-pair test split, trained on 2 CPU cores with the default
configuration. Target: BLEU >= 47 with greedy decoding after at most 30 minutes of training.

Reports BLEU after every epoch against the training time so far (the test split decoded greedily
by the model in training; that decoding is not counted as training time), greedy vs beam 4 for the
best checkpoint, BLEU on the test pairs whose reference is not a training sentence, chrF; the
exported SavedModel's throughput (batch 32) and the TFLite `encode` and per-token `decode_step`
latency at batch 1, file sizes; and ko->en BLEU on kor_eng with the same defaults.

    python bench/translate.py [--set key=value ...] [--skip-ko] [--keep RUN_DIR]

With --keep, a run that finished training there (RUN_DIR/bleu_by_epoch.json with its training
time) is not trained again: its evaluation, export and timings are redone.

Writes bench/results/translate.json.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import common
import keras
import numpy as np

CURVE_FILE = "bleu_by_epoch.json"


class BleuAfterEachEpoch(keras.callbacks.Callback):
    """After each epoch: greedy BLEU of the model in training on the test split, and the training
    seconds so far (the time of this decoding excluded)."""

    def __init__(self, app, config, run_dir: Path, splits):
        super().__init__()
        self.app, self.config, self.run_dir, self.splits = app, config, run_dir, splits
        self.rows, self.start, self.excluded, self.view = [], None, 0.0, None

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        begin = time.time()
        trained = begin - self.start - self.excluded
        if self.view is None:  # the preprocessing is on disk once training starts
            self.view = RunView(self.config, self.app.load_preprocessing(self.run_dir, self.config))
        self.view.model = self.model
        bleu = self.app.evaluate(self.view, self.splits)["bleu"]
        self.excluded += time.time() - begin
        self.rows.append({"epoch": epoch + 1, "train_seconds": round(trained, 1), "bleu": round(bleu, 2),
                          "val_loss": round(float(logs["val_loss"]), 4)})
        print("after epoch", self.rows[-1], flush=True)
        (self.run_dir / CURVE_FILE).write_text(json.dumps({"bleu_by_epoch": self.rows}) + "\n")


class RunView:
    """What app.evaluate needs of a run (config, preprocessing, model) while it is still training."""

    def __init__(self, config, preprocessing):
        self.config, self.preprocessing, self.model = config, preprocessing, None


def train_with_bleu_curve(app, data, overrides, out: Path) -> tuple:
    """-> (BLEU after each epoch, seconds of the whole train call less the BLEU decoding), also
    kept in RUN_DIR/bleu_by_epoch.json so that --reuse can report a finished run."""
    from rnn_apps.train import train

    if (out / CURVE_FILE).exists() and (out / "checkpoints" / "best.keras").exists():
        stored = json.loads((out / CURVE_FILE).read_text())
        if "train_seconds" in stored:
            return stored["bleu_by_epoch"], stored["train_seconds"]
    config = app.resolve_config(None, overrides)
    curve = BleuAfterEachEpoch(app, config, out, app.load_data(data, common.DATA_ROOT, config, {}))
    start = time.time()
    train(app, config, data, common.DATA_ROOT, out, {}, echo=print, callbacks=[curve])
    seconds = time.time() - start - curve.excluded
    (out / CURVE_FILE).write_text(json.dumps({"bleu_by_epoch": curve.rows, "train_seconds": seconds}) + "\n")
    return curve.rows, seconds


def latency_ms(fn, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return {"median_ms": round(float(np.median(times)), 3), "p90_ms": round(float(np.percentile(times, 90)), 3)}


def serving_figures(run, export_root: Path) -> dict:
    import tensorflow as tf

    from export import exporter, tflite

    entry = exporter.export_run(run, export_root, echo=print)
    saved_model = export_root / "translate" / str(entry["version"])
    tflite_path = export_root / next(a["path"] for a in entry["artefacts"] if a["kind"] == "tflite")
    texts = list(run.load_data().test["source"])
    signature = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    signature(text=tf.constant(texts[:32]))  # warm-up
    start = time.time()
    for i in range(0, len(texts), 32):
        signature(text=tf.constant(texts[i: i + 32]))
    throughput = len(texts) / (time.time() - start)
    interpreter = tflite.interpreter(tflite_path)
    encode, step = interpreter.get_signature_runner("encode"), interpreter.get_signature_runner("decode_step")
    length = run.config["source_length"]
    ids = np.zeros((1, length), np.int32)
    ids[0, :8] = np.arange(4, 12)
    cache = encode(source_ids=ids)
    token = np.array([2], np.int32)
    size = sum(p.stat().st_size for p in saved_model.rglob("*") if p.is_file())
    return {
        "parity": entry["parity"]["ok"],
        "tflite_ops": next(a["ops"] for a in entry["artefacts"] if a["kind"] == "tflite"),
        "saved_model_sentences_per_second_batch_32": round(throughput, 1),
        "tflite_encode_batch_1": latency_ms(lambda: encode(source_ids=ids), 200),
        "tflite_decode_step_batch_1": latency_ms(lambda: step(token=token, **cache), 1000),
        "tflite_bytes": tflite_path.stat().st_size, "saved_model_bytes": size,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", dest="assignments", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--skip-ko", action="store_true")
    parser.add_argument("--keep", help="write the spa->en run here (default: a temporary folder)")
    args = parser.parse_args()
    from rnn_apps import registry
    from rnn_apps.config import parse_assignments
    from rnn_apps.run import Run

    app = registry.get("translate")
    overrides = parse_assignments(args.assignments)
    out = Path(args.keep or tempfile.mkdtemp(prefix="bench_translate_"))
    curve, train_seconds = train_with_bleu_curve(app, "spa_eng", overrides, out)
    run = Run(out)
    splits = run.load_data()
    greedy = app.evaluate(run, splits)
    start = time.time()
    beam = app.evaluate(run, splits, beam=4)
    beam_seconds = time.time() - start
    result = {
        "overrides": overrides, "run_dir": str(out), "train_seconds": round(train_seconds, 1),
        "best_epoch": run.metrics().get("best_epoch"), "bleu_by_epoch": curve,
        "test_pairs": greedy["examples"], "greedy": {k: v for k, v in greedy.items() if k != "samples"},
        "beam_4": {**{k: v for k, v in beam.items() if k != "samples"}, "decode_seconds": round(beam_seconds, 1)},
        "samples": greedy["samples"],
        "serving": serving_figures(run, out / "exports"),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2), flush=True)
    if not args.skip_ko:
        ko_out = out.parent / (out.name + "_ko_en")
        ko_curve, ko_seconds = train_with_bleu_curve(app, "kor_eng", {**overrides, "direction": "ko-en"}, ko_out)
        ko_run = Run(ko_out)
        ko = app.evaluate(ko_run, ko_run.load_data())
        result["ko_en"] = {"train_seconds": round(ko_seconds, 1), "bleu_by_epoch": ko_curve,
                           **{k: v for k, v in ko.items() if k != "samples"}, "samples": ko["samples"]}
    common.write("translate", result)


if __name__ == "__main__":
    main()
