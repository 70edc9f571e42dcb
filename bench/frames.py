"""frames (fall detection) benchmark on UR Fall Detection's per-frame features: 5 seeded 80/20
splits by recording, the causal model (the default export: it labels each frame `lookahead` = 10
frames late; `--set lookahead=0` for the strictly causal one) and the bidirectional one, each with
the default configuration. Target (issue 10): >= 93% frame accuracy and >= 80% recall on
`falling` frames for the causal model, averaged over the splits.

Reports, per split and as mean / std over the splits: frame accuracy, per-class recall, fall events
detected and their delay in frames, false alarms, training seconds; per-frame baselines without
temporal context (logistic regression, random forest) on the same splits; for the causal model of
the first split, the TFLite step's latency per frame, the SavedModel's frames/s and file sizes.

    python bench/frames.py [--splits 0,1,2,3,4] [--variants causal,bidirectional] [--set key=value ...]
        [--name frames]

Writes bench/results/NAME.json (default frames.json).
"""

import argparse
import tempfile
import time
from pathlib import Path

import common
import numpy as np


def per_frame_baselines(splits) -> dict:
    """Each frame on its own, features standardised on the training split: what temporal context adds."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def frames_of(split):
        columns = splits[split]
        n = columns["length"]
        return (np.concatenate([columns["frames"][i, :k] for i, k in enumerate(n)]),
                np.concatenate([columns["labels"][i, :k] for i, k in enumerate(n)]))

    (x, y), (tx, ty) = frames_of("train"), frames_of("test")
    falling = splits.label_names.index("falling")
    out = {}
    for name, model in (("logistic_regression", make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))),
                        ("random_forest", RandomForestClassifier(300, random_state=0, n_jobs=-1))):
        predicted = model.fit(x, y).predict(tx)
        out[name] = {"accuracy": float((predicted == ty).mean()),
                     "falling_recall": float((predicted[ty == falling] == falling).mean())}
    return out


def serving_figures(run, export_root: Path) -> dict:
    import tensorflow as tf

    from export import exporter, step_loop, tflite

    entry = exporter.export_run(run, export_root, echo=print)
    saved_model = export_root / "frames" / str(entry["version"])
    tflite_path = export_root / next(a["path"] for a in entry["artefacts"] if a["kind"] == "tflite")
    test = run.load_data().test
    label = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    frames, lengths = tf.constant(test["frames"]), tf.constant(test["length"])
    label(frames=frames, lengths=lengths)
    start = time.time()
    for _ in range(3):
        label(frames=frames, lengths=lengths)
    frames_per_second = 3 * int(test["length"].sum()) / (time.time() - start)
    interpreter = tflite.interpreter(tflite_path)
    runner = interpreter.get_signature_runner("step")
    state = step_loop.zero_state(interpreter, "step", fed="frame")
    frame = test["frames"][0, :1].astype(np.float32)
    size = sum(p.stat().st_size for p in saved_model.rglob("*") if p.is_file())
    return {"parity": entry["parity"]["ok"], "saved_model_frames_per_second_whole_test_split":
            round(frames_per_second, 1),
            "tflite_step_per_frame": common.latency_ms(lambda: runner(frame=frame, **state), 500),
            "tflite_bytes": tflite_path.stat().st_size, "saved_model_bytes": size}


def summary(runs: list) -> dict:
    keys = {"accuracy": lambda r: r["test"]["accuracy"],
            "falling_recall": lambda r: r["test"]["per_class"]["falling"]["recall"],
            "lying_recall": lambda r: r["test"]["per_class"]["lying"]["recall"],
            "not_lying_recall": lambda r: r["test"]["per_class"]["not_lying"]["recall"],
            "fall_events_detected": lambda r: r["test"]["events"]["falls"]["recall"],
            "fall_delay_frames_median": lambda r: (r["test"]["events"]["falls"]["delay_frames"] or {}).get("median"),
            "false_alarms_per_split": lambda r: sum(r["test"]["events"]["false_alarms"].values()),
            **{f"falling_recall_fifth_{i + 1}_of_event": lambda r, i=i: r["test"]["events"][
                "falling_recall_by_fifth_of_event"][i] for i in range(5)},
            "train_seconds": lambda r: r["train_seconds"]}
    out = {}
    for key, get in keys.items():
        values = [v for v in map(get, runs) if v is not None]
        out[key] = {"mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4)}
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--splits", default="0,1,2,3,4")
    parser.add_argument("--variants", default="causal,bidirectional")
    parser.add_argument("--set", dest="assignments", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--name", default="frames", help="the results file's name")
    args = parser.parse_args()
    from rnn_apps import registry
    from rnn_apps.config import parse_assignments
    from rnn_apps.run import Run

    app = registry.get("frames")
    overrides = parse_assignments(args.assignments)
    root = Path(tempfile.mkdtemp(prefix="bench_frames_"))
    result = {"overrides": overrides, "variants": {}, "baselines": []}
    for variant in args.variants.split(","):
        runs = []
        for split_seed in map(int, args.splits.split(",")):
            out = root / f"{variant}_{split_seed}"
            config = {**overrides, "split_seed": split_seed, "bidirectional": variant == "bidirectional"}
            seconds = common.train_once(app, "ur_fall_features", config, out)
            run = Run(out)
            test = app.evaluate(run, run.load_data())
            runs.append({"split_seed": split_seed, "train_seconds": round(seconds, 1),
                         "best_epoch": run.metrics().get("best_epoch"), "test": test})
            print(variant, split_seed, round(test["accuracy"], 4), test["per_class"]["falling"], flush=True)
        result["variants"][variant] = {"mean_over_splits": summary(runs), "runs": runs}
    for split_seed in map(int, args.splits.split(",")):
        splits = app.load_data("ur_fall_features", common.DATA_ROOT, {**app.config, "split_seed": split_seed}, {})
        result["baselines"].append({"split_seed": split_seed, **per_frame_baselines(splits)})
    result["baselines_mean"] = {name: {k: round(float(np.mean([b[name][k] for b in result["baselines"]])), 4)
                                       for k in ("accuracy", "falling_recall")}
                                for name in ("logistic_regression", "random_forest")}
    if "causal" in result["variants"]:
        first = root / f"causal_{args.splits.split(',')[0]}"
        result["serving"] = serving_figures(Run(first), first / "exports")
        causal = result["variants"]["causal"]["mean_over_splits"]
        result["target"] = {"accuracy >= 0.93": causal["accuracy"]["mean"] >= 0.93,
                            "falling_recall >= 0.80": causal["falling_recall"]["mean"] >= 0.80}
    common.write(args.name, result)


if __name__ == "__main__":
    main()
