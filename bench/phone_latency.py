"""Batch-1 latency of the sentiment phone model (one member, 64 tokens) in the forms a SimpleRNN
can take on a phone (issue 13), single thread, side by side:

  unrolled  what `rnn-apps export` writes: the SimpleRNN unrolled over its 64 steps (plain ops)
  while     the TFLite converter's own output for the stock layer at static shapes: a WHILE loop
  onnx      ONNX Runtime running the unrolled model, converted from that .tflite by tf2onnx

each through LiteRT with and without its default XNNPACK delegate, outputs checked against Keras.

    python bench/phone_latency.py [--run RUN_DIR] [--member best] [--repeats 2000]

Without --run it trains a one-member sentiment model of the default architecture on 4,000 SST-2
phrases for one epoch (latency does not depend on how well it is trained). ONNX Runtime and
tf2onnx are optional (`pip install onnxruntime tf2onnx onnx`); without them that row says so.
Writes bench/results/phone_latency.json.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import common
import numpy as np


def median_ms(call, repeats: int) -> dict:
    for _ in range(50):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"median_ms": round(statistics.median(times), 4), "p90_ms": round(times[int(0.9 * len(times))], 4)}


def while_loop_form(app, run, length: int):
    """The unrolled twin with its SimpleRNN layers left as loops: what the converter makes of the stock layer."""
    import keras
    import tensorflow as tf

    from rnn_apps.app import Endpoint
    from rnn_apps.families.classify import phone_outputs

    twin = app.unrolled_twin(run, length)
    for layer in twin._flatten_layers():  # noqa: SLF001 -- the SimpleRNNs inside Bidirectional too
        if isinstance(layer, keras.layers.SimpleRNN):
            layer.unroll = False
    # A dynamic batch does not convert to builtin ops (the brief's verified facts): batch 1, static.
    return [Endpoint("serving_default", lambda token_ids: phone_outputs(twin(token_ids, training=False)),
                     [tf.TensorSpec([1, length], tf.int32, name="token_ids")], track=[twin])]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", help="a trained sentiment run (default: train a small one-member run)")
    parser.add_argument("--member", default="best", help="the ensemble member to export: its index or 'best'")
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()

    from export import tflite
    from pipelines import text
    from rnn_apps import registry
    from rnn_apps.run import Run
    from rnn_apps.train import train

    app = registry.get("sentiment")
    if args.run:
        run = Run(args.run)
    else:
        out = Path(tempfile.mkdtemp()) / "run"
        config = app.resolve_config(None, {"members": 1, "epochs": 1, "max_examples": 4000, "max_train_minutes": 0.0})
        run = train(app, config, "sst2", common.DATA_ROOT, out, {}, echo=print)
    if run.config["members"] > 1:
        run = run.member(int(args.member) if args.member.isdigit() else args.member)
    length = run.config["max_length"]

    forms = {"unrolled": tflite.convert(app.tflite_models(run)[0].endpoints),
             "while": tflite.convert(while_loop_form(app, run, length))}
    rng = np.random.default_rng(0)
    ids = np.zeros((1, length), np.int32)
    ids[0, :40] = rng.integers(2, len(text.load_vocabulary(run.dir)), 40)  # a 40-word sentence, padded
    expected = run.model(ids, training=False)
    expected = np.asarray(expected[0] if isinstance(expected, (list, tuple)) else expected)

    rows = {}
    for form, content in forms.items():
        for xnnpack in (True, False):
            interpreter = tflite.interpreter(content, num_threads=1, xnnpack=xnnpack)
            runner = interpreter.get_signature_runner("serving_default")
            probabilities = runner(token_ids=ids)["probabilities"]
            name = f"{form}, LiteRT" + (" + XNNPACK" if xnnpack else " builtin kernels")
            rows[name] = {"bytes": len(content), "ops": len(interpreter._get_ops_details()),  # noqa: SLF001
                          "max_difference_from_keras": float(np.abs(probabilities - expected).max()),
                          **median_ms(lambda r=runner: r(token_ids=ids), args.repeats)}
            print(name, rows[name], flush=True)
    rows["onnx"] = onnx_row(forms["unrolled"], ids, expected, args.repeats)
    print("onnx", rows["onnx"], flush=True)

    baseline = rows["while, LiteRT + XNNPACK"]["median_ms"]
    common.write("phone_latency", {"tokens": length, "threads": 1, "forms": rows,
                                   "speedup_unrolled_over_while": round(
                                       baseline / rows["unrolled, LiteRT + XNNPACK"]["median_ms"], 2)})


def onnx_row(tflite_content: bytes, ids, expected, repeats: int) -> dict:
    try:
        import onnxruntime
        import tf2onnx
    except ImportError as e:
        return {"not_available": f"{e.name} is not installed (pip install onnxruntime tf2onnx onnx)"}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "model.tflite"
        source.write_bytes(tflite_content)
        model, _ = tf2onnx.convert.from_tflite(str(source), opset=17, output_path=str(Path(tmp) / "model.onnx"))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(Path(tmp) / "model.onnx"), options,
                                               providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: ids}
    names = [o.name for o in session.get_outputs()]
    outputs = session.run(None, feed)
    probabilities = next(o for o in outputs if o.ndim == 2)
    return {"versions": f"onnxruntime {onnxruntime.__version__}, tf2onnx {tf2onnx.__version__}", "outputs": names,
            "max_difference_from_keras": float(np.abs(probabilities - expected).max()),
            **median_ms(lambda: session.run(None, feed), repeats)}


if __name__ == "__main__":
    main()
