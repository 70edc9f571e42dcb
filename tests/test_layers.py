"""Shared model layers: masked pooling ignores padding, in every mode."""

import keras
import numpy as np
import pytest

from rnn_apps.layers import MaskedPooling1D

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


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="max_mean"):
        MaskedPooling1D("median")


# FastSimpleRNN against keras.layers.SimpleRNN: the same weights give the same outputs, states and
# gradients (inputs, initial state, every weight), masked or not, in both directions, stacked.
RNN_OPTIONS = [{}, {"return_sequences": True}, {"go_backwards": True, "return_sequences": True},
               {"return_state": True, "return_sequences": True},
               {"zero_output_for_mask": True, "return_sequences": True},
               {"unroll": True, "return_sequences": True}]


def _outputs_and_gradients(layers_, x, mask, initial_state):
    import tensorflow as tf

    x, initial_state = tf.constant(x), tf.constant(initial_state)
    with tf.GradientTape() as tape:
        tape.watch([x, initial_state])
        y, first = x, True
        for layer in layers_:
            y = layer(y, mask=mask, initial_state=[initial_state] if first else None)
            first = False
        outputs = keras.tree.flatten(y)
        # weights every output position differently, so a misplaced gradient shows
        loss = sum(tf.reduce_sum(tf.sin(o * (1.0 + 0.1 * k))) for k, o in enumerate(outputs))
    weights = [w for layer in layers_ for w in layer.trainable_weights]
    return [o.numpy() for o in outputs], [g.numpy() for g in tape.gradient(loss, [x, initial_state, *weights])]


@pytest.mark.parametrize("options", RNN_OPTIONS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("chunk", [3, 8])  # 7 steps: one single step then two chunks; the remainder loop alone
def test_fast_simple_rnn_equals_the_stock_layer(options, masked, chunk, monkeypatch):
    from keras import layers

    from rnn_apps import layers as our_layers
    from rnn_apps.layers import FastSimpleRNN

    monkeypatch.setattr(our_layers, "CHUNK", chunk)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 7, 5)).astype("float32")
    mask = np.ones((4, 7), bool)
    mask[1, 4:], mask[2, 1:], mask[3, :2] = False, False, False  # right, almost all, and left padding
    initial_state = rng.normal(size=(4, 6)).astype("float32")
    stacked = options.get("return_sequences") and not options.get("return_state")
    stock = [layers.SimpleRNN(6, **options)] + ([layers.SimpleRNN(6)] if stacked else [])
    fast = [FastSimpleRNN(6, **options)] + ([FastSimpleRNN(6)] if stacked else [])
    expected = _outputs_and_gradients(stock, x, mask if masked else None, initial_state)
    _outputs_and_gradients(fast, x, mask if masked else None, initial_state)  # builds the layers
    for a, b in zip(stock, fast, strict=True):
        b.set_weights(a.get_weights())
        assert [w.path.split("/", 1)[1] for w in b.weights] == [w.path.split("/", 1)[1] for w in a.weights]
    got = _outputs_and_gradients(fast, x, mask if masked else None, initial_state)
    for want, have in zip(expected[0] + expected[1], got[0] + got[1], strict=True):
        np.testing.assert_allclose(have, want, atol=1e-5, rtol=1e-5)


def test_fast_simple_rnn_input_dropout_masks_every_step_alike():
    from rnn_apps.layers import FastSimpleRNN

    layer = FastSimpleRNN(3, dropout=0.5, return_sequences=True, seed=1)
    x = np.ones((2, 4, 6), "float32")
    layer.build(x.shape)
    layer.set_weights([np.eye(6, 3, dtype="float32"), np.zeros((3, 3), "float32"), np.zeros(3, "float32")])
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    assert np.allclose(out, out[:, :1]) and (out == 0).any() and (out != 0).any()  # one mask for all steps
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), np.tanh(np.ones((2, 4, 3))), rtol=1e-6)
