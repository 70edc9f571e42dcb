"""An app trained with keras.layers.SimpleRNN in place of this project's FastSimpleRNN, and with
it: seconds per epoch (the first one includes XLA's compilation), seconds inside training steps,
and validation metrics, each variant in a process of its own.

    python bench/layer_ab.py [--app sentiment] [--variants stock_xla,fast_xla] [--set KEY=VALUE ...] [--result NAME]
    (results: bench/results/layer_ab_APP.json, or NAME.json)

Variants: stock (keras.layers.SimpleRNN), fast (FastSimpleRNN), trained with jit_compile=False (where
TensorFlow training steps run FastSimpleRNN's recurrence as the C++ op of rnn_apps/kernels), and
stock_xla, fast_xla with jit_compile=True, whatever the app's default. Default settings: one member,
12,000 SST-2 phrases, 3 epochs, no time budget (results/layer_ab_sentiment.json: stock vs fast,
both with XLA, the apps' default of the time).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time

import common

DEFAULTS = {"members": 1, "max_examples": 12_000, "epochs": 3, "max_train_minutes": 0, "patience": 99}


def train_variant(app_name: str, variant: str, overrides: dict) -> dict:
    import importlib

    import keras

    from rnn_apps import layers as our_layers
    from rnn_apps import registry
    from rnn_apps.train import train

    overrides = {**overrides, "jit_compile": variant.endswith("_xla")}
    if variant.startswith("stock"):  # every place the apps take the layer from
        our_layers.FastSimpleRNN = keras.layers.SimpleRNN
        app_module = importlib.import_module(f"rnn_apps.apps.{app_name}")
        if hasattr(app_module, "FastSimpleRNN"):
            app_module.FastSimpleRNN = keras.layers.SimpleRNN
    epochs = []

    class EpochTimes(keras.callbacks.Callback):
        """Each epoch's wall time, and the time inside its training steps alone (the time between
        steps is the input pipeline's; both swing with this shared machine's load)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.in_steps = time.perf_counter(), 0.0

        def on_train_batch_begin(self, batch, logs=None):
            self.step_start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.in_steps += time.perf_counter() - self.step_start

        def on_epoch_end(self, epoch, logs=None):
            epochs.append({"seconds": round(time.perf_counter() - self.start, 1), "in_steps": round(self.in_steps, 2),
                           **{k: round(float(v), 4) for k, v in (logs or {}).items() if k.startswith("val_")}})

    app = registry.get(app_name)
    config = app.resolve_config(None, {**DEFAULTS, **overrides})
    train(app, config, common.local_data(app_name), common.DATA_ROOT, tempfile.mkdtemp(prefix="layer_ab_"), {},
          echo=lambda *_: None, callbacks=[EpochTimes()])
    return {"variant": variant, "epochs": epochs}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", default="sentiment")
    parser.add_argument("--variants", default="stock_xla,fast_xla", help="stock, fast, stock_xla, fast_xla")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides KEY=VALUE (JSON values)")
    parser.add_argument("--result", help="written to bench/results/RESULT.json (default layer_ab_APP)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # a child: train one variant, print JSON
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.variant:
        print(json.dumps(train_variant(args.app, args.variant, overrides)))
        return
    results = {"app": args.app, "data": common.local_data(args.app), "settings": {**DEFAULTS, **overrides},
               "variants": []}
    for variant in args.variants.split(","):
        child = subprocess.run([sys.executable, __file__, "--app", args.app, "--variant", variant, "--set", *args.set],
                               capture_output=True, text=True)
        if child.returncode != 0:
            raise SystemExit(child.stderr[-3000:])
        results["variants"].append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(results["variants"][-1], flush=True)
    # after the first epoch, which compiles: seconds in training steps, each variant against the last
    steps = {v["variant"]: sum(e["in_steps"] for e in v["epochs"][1:]) for v in results["variants"]}
    last = results["variants"][-1]["variant"]
    if steps[last] > 0:
        results[f"later_epochs_steps_over_{last}"] = {k: round(v / steps[last], 2) for k, v in steps.items()}
    common.write(args.result or f"layer_ab_{args.app}", results)


if __name__ == "__main__":
    main()
