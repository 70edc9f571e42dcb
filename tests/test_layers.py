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
