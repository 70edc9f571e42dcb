"""FastSimpleRNN against keras.layers.SimpleRNN on this machine's default device, at the sizes the
benchmarks train: outputs and every gradient, masked or not, both directions (on a GPU, its
lax.scan loops as the device runs them).

    KERAS_BACKEND=jax python bench/fast_rnn_check.py     (results: bench/results/fast_rnn_check.json)

Products at full float32 precision (jax_default_matmul_precision=highest), so differences are
float rounding, not TF32's. The initial state is zeros: Keras's own JAX SimpleRNN outputs the
initial state at leading masked steps, where TensorFlow's and this project's layer output zeros.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import common  # noqa: E402
import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from rnn_apps.layers import FastSimpleRNN  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")


def largest_differences(units: int, masked: bool, options: dict) -> dict:
    rng = np.random.default_rng(units)
    x = rng.normal(size=(64, 50, 32)).astype("float32")
    lengths = rng.integers(1, 51, 64)
    mask = np.arange(50)[None] < lengths[:, None] if masked else None
    stock = keras.layers.SimpleRNN(units, return_sequences=True, **options)
    fast = FastSimpleRNN(units, return_sequences=True, **options)
    stock(x), fast(x)
    fast.set_weights(stock.get_weights())

    def loss(weights, layer, x):
        y, _ = layer.stateless_call(weights, [v.value for v in layer.non_trainable_variables], x, mask=mask)
        return keras.ops.sum(keras.ops.sin(y * np.linspace(0.5, 1.5, units, dtype="float32"))), y

    found = {}
    for name, layer in (("stock", stock), ("fast", fast)):
        (_, y), grads = jax.value_and_grad(loss, argnums=(0, 2), has_aux=True)(
            [w.value for w in layer.trainable_variables], layer, x)
        found[name] = [np.asarray(y), np.asarray(grads[1]), *(np.asarray(g) for g in grads[0])]
    names = ["outputs", "d_inputs", "d_kernel", "d_recurrent_kernel", "d_bias"]
    return {**{n: float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(a)))))
               for n, a, b in zip(names, found["stock"], found["fast"], strict=True)}}


def main():
    results = {"device": jax.devices()[0].device_kind, "cases": []}
    for units in (128, 512):
        for masked in (False, True):
            for options in ({}, {"go_backwards": True}):
                case = {"units": units, "masked": masked, **options, **largest_differences(units, masked, options)}
                print(case, flush=True)
                results["cases"].append(case)
    worst = max(v for case in results["cases"] for k, v in case.items() if k.startswith(("outputs", "d_")))
    results["largest_relative_difference"] = worst
    common.write("fast_rnn_check", results)
    if worst > 1e-4:
        raise SystemExit(f"FastSimpleRNN differs from the stock layer by {worst:.2e}")


if __name__ == "__main__":
    main()
