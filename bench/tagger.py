"""tagger (part-of-speech) benchmark on UD English-EWT, UPOS, trained on 2 CPU cores with the
default configuration. Target (issue 10): test accuracy >= 94% after at most 20 minutes of training.

Reports: the whole training call's seconds, validation accuracy after each epoch, test token
accuracy, accuracy on words unseen in training, per-tag precision/recall, the most frequent
errors; the most-frequent-tag baseline on the same files; the exported SavedModel's sentences/s
(batch 32) and the TFLite model's batch-1 latency; file sizes.

    python bench/tagger.py [--set key=value ...] [--keep RUN_DIR]

Writes bench/results/tagger.json.
"""

import argparse
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import common
from translate import latency_ms


def most_frequent_tag_baseline(splits) -> dict:
    """Each word's most frequent training tag (case-sensitive, then lower-cased); others get the
    most frequent tag overall."""
    by_word, by_lower, overall = defaultdict(Counter), defaultdict(Counter), Counter()
    for tokens, tags in zip(splits.train["tokens"], splits.train["tags"], strict=True):
        for word, tag in zip(tokens.split("\t"), tags.split("\t"), strict=True):
            by_word[word][tag] += 1
            by_lower[word.lower()][tag] += 1
            overall[tag] += 1
    default = overall.most_common(1)[0][0]
    right = total = 0
    for tokens, tags in zip(splits.test["tokens"], splits.test["tags"], strict=True):
        for word, tag in zip(tokens.split("\t"), tags.split("\t"), strict=True):
            table = by_word.get(word) or by_lower.get(word.lower())
            right += (table.most_common(1)[0][0] if table else default) == tag
            total += 1
    return {"accuracy": right / total, "tokens": total}


def serving_figures(run, export_root: Path) -> dict:
    import tensorflow as tf

    from export import exporter, tflite

    entry = exporter.export_run(run, export_root, echo=print)
    saved_model = export_root / "tagger" / str(entry["version"])
    tflite_path = export_root / next(a["path"] for a in entry["artefacts"] if a["kind"] == "tflite")
    texts = [s.replace("\t", " ") for s in run.load_data().test["tokens"]]
    signature = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    signature(text=tf.constant(texts[:32]))
    start = time.time()
    for i in range(0, len(texts), 32):
        signature(text=tf.constant(texts[i: i + 32]))
    throughput = len(texts) / (time.time() - start)
    inputs = run.app.phone_inputs(run.preprocessing, texts[:1], run.config["max_length"])
    runner = tflite.interpreter(tflite_path).get_signature_runner("serving_default")
    size = sum(p.stat().st_size for p in saved_model.rglob("*") if p.is_file())
    return {"parity": entry["parity"]["ok"],
            "saved_model_sentences_per_second_batch_32": round(throughput, 1),
            "tflite_batch_1": latency_ms(lambda: runner(**inputs), 200),
            "tflite_bytes": tflite_path.stat().st_size, "saved_model_bytes": size}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", dest="assignments", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep", help="write the run here (default: a temporary folder)")
    args = parser.parse_args()
    from rnn_apps import registry
    from rnn_apps.config import parse_assignments
    from rnn_apps.run import Run

    app = registry.get("tagger")
    overrides = parse_assignments(args.assignments)
    out = Path(args.keep or tempfile.mkdtemp(prefix="bench_tagger_"))
    train_seconds = common.train_once(app, "ud_english_ewt", overrides, out)
    run = Run(out)
    splits = run.load_data()
    metrics = run.metrics()
    test = app.evaluate(run, splits)
    result = {
        "overrides": overrides, "run_dir": str(out),
        "train_seconds": round(train_seconds, 1),
        "best_epoch": metrics.get("best_epoch"),
        "by_epoch": [{"epoch": h["epoch"], "val_accuracy": round(h["val_accuracy"], 4),
                      "val_loss": round(h["val_loss"], 4)} for h in metrics["history"]],
        "test": test, "most_frequent_tag_baseline": most_frequent_tag_baseline(splits),
        "serving": serving_figures(run, out / "exports"),
    }
    common.write("tagger", result)


if __name__ == "__main__":
    main()
