"""Sentiment (many-to-one) benchmark: SST-2 and rt-polarity test accuracy of the default config,
training time and throughput on this machine's CPUs, TFLite batch-1 latency for a 64-token input,
and a TF-IDF + logistic regression baseline on the same test sets.

    python bench/sentiment.py [--seed 0] [--set key=value ...] [--skip-rt | --skip-sst2] [--rt-epochs 20]
    python bench/sentiment.py --latency-of RUN_DIR    # TFLite latency of a trained run, alone

Targets (issue 2): SST-2 trained in at most 15 minutes on 2 CPU cores, at least 84% on the
labelled sentence-level test.tsv (1,821 sentences). rt-polarity (8,530 training sentences, an
eighth of SST-2's phrases) gets a larger epoch budget; early stopping still picks the epoch.
Writes bench/results/sentiment.json (sentiment_rt_polarity.json with --skip-sst2).
"""

import argparse
import json
import os
import tempfile
import time

import common
import numpy as np


def tfidf_baseline(splits) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
    features = vectorizer.fit_transform(splits.train["text"])
    classifier = LogisticRegression(max_iter=2000, C=4.0).fit(features, splits.train["label"])
    return float((classifier.predict(vectorizer.transform(splits.test["text"])) == splits.test["label"]).mean())


def tflite_latency_ms(run_dir, repeats=300) -> dict:
    from export import exporter, tflite
    from rnn_apps.run import Run

    root = tempfile.mkdtemp(prefix="bench_export_")
    entry = exporter.export_run(Run(run_dir), root, echo=lambda *_: None)
    artefact = next(a for a in entry["artefacts"] if a["kind"] == "tflite")
    length = artefact["signatures"]["serving_default"]["inputs"]["token_ids"]["shape"][1]
    runner = tflite.interpreter(f"{root}/{artefact['path']}").get_signature_runner("serving_default")
    ids = np.random.default_rng(0).integers(2, 1000, size=(1, length)).astype(np.int32)
    for _ in range(20):
        runner(token_ids=ids)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner(token_ids=ids)
        times.append((time.perf_counter() - start) * 1000)
    return {"input_tokens": int(length), "median_ms": round(float(np.median(times)), 3),
            "p90_ms": round(float(np.percentile(times, 90)), 3),
            "tflite_bytes": os.path.getsize(f"{root}/{artefact['path']}"),
            "parity": entry["parity"]["cases"][0]["tflite"]["probabilities"]["max_abs_diff"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="assignments", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--skip-rt", action="store_true")
    parser.add_argument("--skip-sst2", action="store_true", help="rt-polarity only")
    parser.add_argument("--rt-epochs", type=int, default=20)
    parser.add_argument("--latency-of", metavar="RUN_DIR", help="only export RUN_DIR and time its TFLite model")
    args = parser.parse_args()
    if args.latency_of:
        print(json.dumps(tflite_latency_ms(args.latency_of), indent=2))
        return
    from pipelines import text_classification
    from rnn_apps.config import parse_assignments

    overrides = parse_assignments(args.assignments)
    result = {"overrides": overrides}
    if not args.skip_sst2:
        sst2 = common.train_and_evaluate("sentiment", "sst2", overrides, args.seed)
        print(sst2, flush=True)
        # Whole-run throughput: the per-epoch validation pass and checkpointing are included.
        sst2["train_examples_per_second"] = round(sst2["train_examples"] * sst2["epochs_run"] / sst2["train_seconds"],
                                                  1)
        result.update(sst2=sst2, sst2_tfidf_logreg_test_accuracy=tfidf_baseline(
            text_classification.load("sst2", common.DATA_ROOT, 0)), tflite_batch1=tflite_latency_ms(sst2["run_dir"]))
    if not args.skip_rt:
        rt_overrides = {**overrides, "epochs": args.rt_epochs}
        result["rt_polarity"] = common.train_and_evaluate("sentiment", "rt_polarity", rt_overrides, args.seed)
        result["rt_polarity_tfidf_logreg_test_accuracy"] = tfidf_baseline(
            text_classification.load("rt_polarity", common.DATA_ROOT, args.seed))
    # rt-polarity alone goes to its own file, so it does not replace an SST-2 result.
    common.write("sentiment_rt_polarity" if args.skip_sst2 else "sentiment", result)


if __name__ == "__main__":
    main()
