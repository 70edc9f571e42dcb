"""Shared model layers: masked pooling ignores padding, in every mode; the tied output layer and the
smoothed, padding-aware loss; FastSimpleRNN equals the stock SimpleRNN."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from rnn_apps.layers import FrozenTailEmbedding, MaskedPooling1D, SparseCrossentropy

# Two sequences of 3 steps, 2 features; the second has only its first step unmasked.
STEPS = np.array([[[1.0, -4.0], [3.0, -2.0], [-5.0, 0.0]],
                  [[-1.0, -2.0], [9.0, 9.0], [9.0, 9.0]]], dtype="float32")
MASK = np.array([[True, True, True], [True, False, False]])


@pytest.mark.parametrize("mode, expected", [
    ("max", [[3.0, 0.0], [-1.0, -2.0]]),
    ("mean", [[-1 / 3, -2.0], [-1.0, -2.0]]),
    ("max_mean", [[3.0, 0.0, -1 / 3, -2.0], [-1.0, -2.0, -1.0, -2.0]]),
])
def test_pooling_skips_masked_steps(mode, expected):
    pooled = MaskedPooling1D(mode)(STEPS, mask=MASK)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pooled), expected, rtol=1e-6)


def test_a_sequence_with_no_step_left_pools_to_zeros():
    empty = np.array([[False, False, False], [True, False, False]])
    pooled = keras.ops.convert_to_numpy(MaskedPooling1D("max_mean")(STEPS, mask=empty))
    np.testing.assert_array_equal(pooled[0], np.zeros(4))


def test_reversible_embedding_scores_vectors_against_its_own_table(tmp_path):
    ids = keras.Input((None,), dtype="int32")
    embedding = FrozenTailEmbedding(6, 3, reversible=True, name="tied")
    vectors = embedding(ids)
    logits = embedding(keras.layers.Dense(3, name="project")(vectors), reverse=True)
    model = keras.Model(ids, logits)
    table = np.arange(18, dtype="float32").reshape(6, 3) / 10
    embedding.set_table(table)
    embedding.output_bias.assign(np.array([0, 1, 2, 3, 4, 5], "float32"))
    batch = np.array([[2, 5, 0]])
    project = model.get_layer("project")
    expected = (table[batch] @ project.kernel.numpy() + project.bias.numpy()) @ table.T + np.arange(6)
    np.testing.assert_allclose(model(batch).numpy(), expected, rtol=1e-5)
    # Logits carry no mask (Keras would weight the loss by it), ids keep theirs.
    assert getattr(model(batch), "_keras_mask", None) is None
    np.testing.assert_array_equal(embedding.compute_mask(batch), [[True, True, False]])
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "m.keras")(batch).numpy(), expected, rtol=1e-5)


def test_smoothed_loss_from_logits_skips_padding_as_keras_does():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 7)).astype("float32")
    targets = np.array([[4, 2, 0, 0], [1, 6, 3, 5], [2, 0, 0, 0]])
    stock = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)(targets, logits)
    np.testing.assert_allclose(float(SparseCrossentropy(0.0, from_logits=True, ignore_class=0)(targets, logits)),
                               float(stock), rtol=1e-6)
    smoothed = np.eye(7)[targets] * 0.9 + 0.1 / 7
    per_step = keras.losses.categorical_crossentropy(smoothed, logits, from_logits=True).numpy()
    np.testing.assert_allclose(float(SparseCrossentropy(0.1, from_logits=True, ignore_class=0)(targets, logits)),
                               per_step[targets != 0].mean(), rtol=1e-5)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="max_mean"):
        MaskedPooling1D("median")


# FastSimpleRNN against keras.layers.SimpleRNN: the same weights give the same outputs, states and
# gradients (inputs, initial state, every weight), masked or not, in both directions, stacked.
RNN_OPTIONS = [{}, {"return_sequences": True}, {"go_backwards": True, "return_sequences": True},
               {"return_state": True, "return_sequences": True},
               {"zero_output_for_mask": True, "return_sequences": True},
               {"unroll": True, "return_sequences": True}]


def _loss(outputs):
    # weights every output position differently, so a misplaced gradient shows
    return sum(keras.ops.sum(keras.ops.sin(o * (1.0 + 0.1 * k))) for k, o in enumerate(outputs))


def _outputs_and_gradients(layers_, x, mask, initial_state, training=False):
    """The stack's outputs, and the loss's gradients for x, the initial state and every weight."""
    if keras.backend.backend() == "jax":
        import jax

        def loss_and_outputs(x, initial_state, weights):
            y, first, used = x, True, 0
            for layer in layers_:
                own = len(layer.trainable_variables)
                y, _ = layer.stateless_call(weights[used:used + own], [v.value for v in layer.non_trainable_variables],
                                            y, mask=mask, initial_state=[initial_state] if first else None)
                used, first = used + own, False
            outputs = keras.tree.flatten(y)
            return _loss(outputs), outputs

        weights = [w.value for layer in layers_ for w in layer.trainable_variables]
        (_, outputs), grads = jax.value_and_grad(loss_and_outputs, argnums=(0, 1, 2), has_aux=True)(
            x, initial_state, weights)
        return [np.asarray(o) for o in outputs], [np.asarray(g) for g in (grads[0], grads[1], *grads[2])]
    import tensorflow as tf

    x, initial_state = tf.constant(x), tf.constant(initial_state)
    with tf.GradientTape() as tape:
        tape.watch([x, initial_state])
        y, first = x, True
        for layer in layers_:
            y = layer(y, mask=mask, initial_state=[initial_state] if first else None, training=training)
            first = False
        outputs = keras.tree.flatten(y)
        loss = _loss(outputs)
    weights = [w for layer in layers_ for w in layer.trainable_weights]
    return [o.numpy() for o in outputs], [g.numpy() for g in tape.gradient(loss, [x, initial_state, *weights])]


def _stacks(options, units=6, batch=4):
    """A stock SimpleRNN stack and the same stack of FastSimpleRNN, built on the test inputs."""
    from keras import layers

    from rnn_apps.layers import FastSimpleRNN

    stacked = options.get("return_sequences") and not options.get("return_state")
    stock = [layers.SimpleRNN(units, **options)] + ([layers.SimpleRNN(units)] if stacked else [])
    fast = [FastSimpleRNN(units, **options)] + ([FastSimpleRNN(units)] if stacked else [])
    x, _, initial_state = _inputs(False, units, batch)
    for layer_stack in (stock, fast):
        y, first = x, True
        for layer in layer_stack:
            y = layer(y, initial_state=[initial_state] if first else None)
            y, first = keras.tree.flatten(y)[0], False
    return stock, fast


def _inputs(masked, units=6, batch=4):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 7, 5)).astype("float32")
    mask = np.ones((batch, 7), bool)
    mask[1::4, 4:], mask[2::4, 1:], mask[3::4, :2] = False, False, False  # right, almost all, and left padding
    return x, mask if masked else None, rng.normal(size=(batch, units)).astype("float32")


def _stock_and_fast(options, masked, weights=None, units=6, batch=4, training=False):
    """(the stock layers' weights, keras.layers.SimpleRNN's outputs and gradients, FastSimpleRNN's
    with the same weights). Given `weights`, the stock stack is not run: its outputs are None."""
    stock, fast = _stacks(options, units, batch)
    expected = None
    if weights is None:
        weights = [layer.get_weights() for layer in stock]
        expected = sum(_outputs_and_gradients(stock, *_inputs(masked, units, batch)), [])
    for a, b, layer_weights in zip(stock, fast, weights, strict=True):
        b.set_weights(layer_weights)
        assert [w.path.split("/", 1)[1] for w in b.weights] == [w.path.split("/", 1)[1] for w in a.weights]
    return weights, expected, sum(_outputs_and_gradients(fast, *_inputs(masked, units, batch), training), [])


@pytest.mark.parametrize("options", RNN_OPTIONS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("chunk", [3, 8])  # 7 steps: one single step then two chunks; the remainder loop alone
def test_fast_simple_rnn_equals_the_stock_layer(options, masked, chunk, monkeypatch):
    from rnn_apps import layers as our_layers

    monkeypatch.setattr(our_layers, "CHUNK", chunk)
    _, expected, got = _stock_and_fast(options, masked)
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_allclose(have, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("options", RNN_OPTIONS)
@pytest.mark.parametrize("masked", [False, True])
# 6 units: Eigen's product; 64: the kernel's own tiles (6-row blocks and single rows), 14 rows on 2 threads
@pytest.mark.parametrize("units", [6, 64])
def test_the_compiled_kernel_equals_the_stock_layer(options, masked, units, monkeypatch):
    """Training steps on TensorFlow run the recurrence as the C++ op of rnn_apps/kernels where it
    builds; where it cannot (no compiler, another OS: tests/test_kernels.py checks the build itself
    for several CPU targets), training keeps TensorFlow's loops, tested below."""
    from rnn_apps import kernels
    from rnn_apps import layers as our_layers

    record = kernels.build()
    if "error" in record:
        pytest.skip(f"SimpleRNN kernel {kernels.describe(record)}")
    assert kernels.load() is not None
    calls = []
    monkeypatch.setattr(our_layers, "_compiled_recurrence",
                        lambda *args, real=our_layers._compiled_recurrence: calls.append(1) or real(*args))
    _, expected, got = _stock_and_fast(options, masked, units=units, batch=28, training=True)
    assert calls  # (with unroll=True, by the second layer of the stack)
    for want, have in zip(expected, got, strict=True):
        # 1e-5 of each array's scale: the weight gradients sum 196 terms of up to ~10 each here, in
        # another order than the stock layer's (the TensorFlow loops also differ by ~1e-6 of it)
        np.testing.assert_allclose(have, want, atol=1e-5 * max(1.0, np.abs(want).max()), rtol=1e-5)


@pytest.mark.parametrize("compiler, says", [("no-such-compiler", "no C\\+\\+ compiler"),
                                            ("false", "not built: false -march=")])
def test_without_a_working_compiler_the_kernel_says_why_and_training_keeps_the_loops(compiler, says, tmp_path,
                                                                                      monkeypatch):
    from rnn_apps import kernels
    from rnn_apps import layers as our_layers

    monkeypatch.setenv("CXX", compiler)
    monkeypatch.setenv("RNN_APPS_CACHE", str(tmp_path))
    with pytest.warns(RuntimeWarning, match=says):
        assert kernels.load.__wrapped__() is None  # uncached: the suite's own op stays loaded
    assert not list(tmp_path.rglob("*.so")) and not list(tmp_path.rglob("*.tmp"))  # nothing half-built left
    # what the layer does with that None: a training step on TensorFlow's loops, equal to the stock layer
    monkeypatch.setattr(kernels, "load", lambda: None)
    monkeypatch.setattr(our_layers, "_compiled_recurrence", None)  # would fail if called
    _, expected, got = _stock_and_fast({"return_sequences": True}, True, training=True)
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_allclose(have, want, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_fast_simple_rnn_on_jax_equals_the_stock_layer_on_tensorflow(tmp_path):
    """The same comparison with FastSimpleRNN on KERAS_BACKEND=jax (lax.scan, jax.custom_vjp), in a
    process of its own, against TensorFlow's stock
    layer: Keras's own JAX SimpleRNN differs from it where a masked step's output is kept (at
    leading masked steps it outputs the initial state, not zeros), and a JAX-trained run is meant
    to predict the same on TensorFlow."""
    # (weights, expected) per (options, masked) case, in RNN_OPTIONS order
    cases = [_stock_and_fast(options, masked)[:2] for options in RNN_OPTIONS for masked in (False, True)]
    (tmp_path / "cases.pickle").write_bytes(pickle.dumps(cases))
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.run([sys.executable, __file__, str(tmp_path / "cases.pickle")], env=env, cwd=root,
                           capture_output=True, text=True)
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.strip().splitlines()[-1] == f"jax: {len(RNN_OPTIONS) * 2} comparisons equal"


def test_fast_simple_rnn_input_dropout_masks_every_step_alike():
    from rnn_apps.layers import FastSimpleRNN

    layer = FastSimpleRNN(3, dropout=0.5, return_sequences=True, seed=1)
    x = np.ones((2, 4, 6), "float32")
    layer.build(x.shape)
    layer.set_weights([np.eye(6, 3, dtype="float32"), np.zeros((3, 3), "float32"), np.zeros(3, "float32")])
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    assert np.allclose(out, out[:, :1]) and (out == 0).any() and (out != 0).any()  # one mask for all steps
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), np.tanh(np.ones((2, 4, 3))), rtol=1e-6)


if __name__ == "__main__":  # the JAX comparison's child process: python tests/test_layers.py CASES.pickle
    from rnn_apps import layers as our_layers

    assert keras.backend.backend() == "jax"
    cases, compared = pickle.loads(Path(sys.argv[1]).read_bytes()), 0
    our_layers.SCAN_UNROLL = 3  # 7 steps: two unrolled chunks and a remainder step (lax.scan's own)
    settings = [(options, masked) for options in RNN_OPTIONS for masked in (False, True)]
    for (options, masked), (weights, expected) in zip(settings, cases, strict=True):
        _, _, got = _stock_and_fast(options, masked, weights)
        for want, have in zip(expected, got, strict=True):
            np.testing.assert_allclose(have, want, atol=1e-5, rtol=1e-5, err_msg=f"{options} {masked}")
        compared += 1
    print(f"jax: {compared} comparisons equal")
