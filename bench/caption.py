"""caption (one-to-many) benchmark on coco_captions_mini: 77 training images, 102 test images
(val2017, the other 34 validate). With so few images a model memorises; the bar is that the
pipeline is real end to end and that test BLEU beats a nearest-neighbour baseline.

For each encoder variant (`cnn`: the small CNN trained here; `pretrained`: EfficientNet-Lite0
with ImageNet weights, frozen): training time, BLEU-1..4 and CIDEr-D (pycocoevalcap) on train and
test images side by side, greedy and beam 3, the nearest-neighbour baseline (each test image
gets the consensus caption of the training image with the closest encoder features), then the
export: parity, SavedModel images/s (batch 32, JPEG bytes in), TFLite `encode_image` and per-word
`decode_step` latency at batch 1, file sizes. Also EfficientNet-Lite0's ImageNet top-1 on photos
whose class is plain (a check of the weight port), and the report page rendered in headless
Chromium to a screenshot when `chromium` is installed.

    python bench/caption.py [--variants cnn pretrained] [--keep DIR] [--set key=value ...]

With --keep DIR, runs are kept in DIR/<variant> and a finished one is not trained again.
Writes bench/results/caption.json (and caption_report.png beside it with Chromium).
For real training online: rnn-apps train caption --data coco_captions --preset pretrained --out runs/caption
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import common
import numpy as np

VARIANTS = {"cnn": {}, "pretrained": {"encoder": "efficientnet_lite0", "image_size": 224}}
# coco_captions_mini photos whose main object is one ImageNet class (ids of the ILSVRC-2012
# classes in the usual order): what a correct port of the weights must recognise.
IMAGENET_CHECKS = {
    "000000281789.jpg": ("zebra", {340}),
    "000000252639.jpg": ("trolleybus / bus", {874, 779, 654}),
    "000000121647.jpg": ("pizza", {963}),
    "000000373381.jpg": ("four-poster / bed", {564, 831}),
    "000000113488.jpg": ("passenger car / streetcar / train", {705, 829, 466, 547}),
    "000000174375.jpg": ("ballplayer / tennis racket", {981, 752, 852}),
}


def imagenet_check() -> dict:
    from pipelines import captions
    from rnn_apps import efficientnet_lite

    folder = common.DATA_ROOT / "coco_captions_mini" / "images"
    model = efficientnet_lite.pretrained(classifier=True)
    rows = []
    for name, (what, allowed) in IMAGENET_CHECKS.items():
        path = next(folder.glob(f"*/{name}"), None)
        if path is None:
            continue
        images, _ = captions.decode_images([path.read_bytes()], efficientnet_lite.SIZE)
        probabilities = model.predict(images.numpy(), verbose=0)[0]
        top = [int(i) for i in np.argsort(-probabilities)[:5]]
        rows.append({"image": name, "expected": what, "top_5": top, "top_1_correct": top[0] in allowed,
                     "top_5_correct": bool(set(top) & allowed),
                     "top_1_probability": round(float(probabilities.max()), 3)})
    return {"photos": rows, "top_1_correct": sum(r["top_1_correct"] for r in rows), "of": len(rows),
            "non_contiguous_tensors": efficientnet_lite.non_contiguous(efficientnet_lite.weights_file())}


def serving_figures(run, export_root: Path, encoded: list, keras_ids: np.ndarray) -> dict:
    """Export `run`, then time it on the test images `encoded` and compare the TFLite loop's
    greedy ids with Keras's (`keras_ids`) on every one of them."""
    import tensorflow as tf

    from export import exporter, tflite

    entry = exporter.export_run(run, export_root, echo=print)
    saved_model = export_root / "caption" / str(entry["version"])
    tflite_path = export_root / next(a["path"] for a in entry["artefacts"] if a["kind"] == "tflite")
    signature = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    signature(image_bytes=tf.constant(encoded[:32]))  # warm-up
    start = time.time()
    for i in range(0, len(encoded), 32):
        signature(image_bytes=tf.constant(encoded[i: i + 32]))
    throughput = len(encoded) / (time.time() - start)
    interpreter = tflite.interpreter(tflite_path)
    # Every test image (parity at export checks the first 64): the TFLite reference loop's greedy
    # captions against Keras's, word for word.
    phone_ids = run.app.on_phone(interpreter, *run.app.phone_client_inputs(run, encoded))["token_ids"]
    same = sum(np.array_equal(a[a > 0], b[b > 0]) for a, b in zip(keras_ids, phone_ids, strict=True))
    encode, step = interpreter.get_signature_runner("encode_image"), interpreter.get_signature_runner("decode_step")
    size = run.config["image_size"]
    image = np.full((1, size, size, 3), 120.0, np.float32)
    cache = encode(image=image)
    token = np.array([2], np.int32)
    return {
        "parity": entry["parity"]["ok"], "parity_cases": [c["name"] for c in entry["parity"]["cases"]],
        "tflite_ops": next(a["ops"] for a in entry["artefacts"] if a["kind"] == "tflite"),
        "saved_model_images_per_second_batch_32": round(throughput, 1),
        "tflite_greedy_captions_equal_to_keras": f"{same} of {len(encoded)} test images",
        "tflite_encode_image_batch_1": common.latency_ms(lambda: encode(image=image), 50),
        "tflite_decode_step_batch_1": common.latency_ms(lambda: step(token=token, **cache), 1000),
        "tflite_bytes": tflite_path.stat().st_size,
        "saved_model_bytes": sum(p.stat().st_size for p in saved_model.rglob("*") if p.is_file()),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--set", dest="assignments", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep", help="keep runs in KEEP/<variant> (default: a temporary folder)")
    args = parser.parse_args()
    from rnn_apps import registry
    from rnn_apps import report as report_lib
    from rnn_apps.config import parse_assignments
    from rnn_apps.run import Run

    app = registry.get("caption")
    overrides = parse_assignments(args.assignments)
    keep = Path(args.keep or tempfile.mkdtemp(prefix="bench_caption_"))
    result = {"overrides": overrides, "imagenet_check": imagenet_check(), "variants": {}}
    print(json.dumps(result["imagenet_check"]), flush=True)
    for variant in args.variants:
        out = keep / variant
        seconds = common.train_once(app, "coco_captions_mini", {**VARIANTS[variant], **overrides}, out)
        run = Run(out)
        splits = run.load_data()
        greedy = app.evaluate(run, splits)
        run.update_metrics(test=greedy)
        beam = app.evaluate(run, splits, beam=3)
        encoded = list(splits.test["image"])
        test_captions = app.generate(run, encoded)
        entry = {"config": {k: run.config[k] for k in ("encoder", "image_size", "units", "embedding_dim",
                                                       "vocab_size", "augment")},
                 "train_seconds": round(seconds, 1), "best_epoch": run.metrics().get("best_epoch"),
                 "epochs_run": len(run.metrics().get("history", [])),
                 **{k: greedy[k] for k in ("images", "metrics", "train", "test", "nearest_neighbour_test")},
                 "test_beam_3": beam["test"], "train_beam_3": beam["train"], "samples": greedy["samples"],
                 "distinct_test_captions": len(set(test_captions["caption"])),
                 **serving_figures(run, keep / f"exports_{variant}", encoded, test_captions["token_ids"])}
        page = report_lib.write(run, keep / f"report_{variant}.html")
        entry["report"] = {"html": str(page), "bytes": page.stat().st_size}
        if variant == args.variants[-1]:
            common.RESULTS.mkdir(parents=True, exist_ok=True)
            png = common.RESULTS / "caption_report.png"
            done = report_lib.screenshot(page, png, 1200, 2400)
            entry["report"]["screenshot"] = "no chromium installed (apt install chromium): no screenshot" \
                if done is None else f"{png.name} written by chromium" if png.exists() else \
                f"chromium failed: {done.stderr[-300:]}"
        result["variants"][variant] = entry
        print(variant, json.dumps({k: entry[k] for k in ("train_seconds", "train", "test", "nearest_neighbour_test")}),
              flush=True)
    result["runs_kept_in"] = str(keep)
    common.write("caption", result)


if __name__ == "__main__":
    main()
