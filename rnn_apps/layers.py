"""Building blocks shared by the app models: the SimpleRNN stack, masked pooling, and the loss.

SimpleRNN is the lecture's vanilla RNN, h_t = tanh(W_xh x_t + W_hh h_(t-1) + b), same weights
at every step. `unroll=True` builds the same math as plain ops for a fixed length: that is the
form TFLite converts to builtin ops (a dynamic loop becomes tensor-list ops it cannot lower).
"""

import keras
from keras import layers, ops

from foundation import internals


@keras.saving.register_keras_serializable(package="rnn_apps")
class FastSimpleRNN(layers.SimpleRNN):
    """keras.layers.SimpleRNN, computed with less work per step. Stock Keras computes x_t W_xh
    inside every step and lets autodiff record each step's four products for the backward pass.
    Here x_t W_xh + b for every step is one matrix product over the whole sequence before the loop;
    the loop carries only h_t = tanh(that + h_(t-1) W_hh) (one small product a step); and the
    backward pass is written out (`tanh_recurrence`): one small product a step through time, the
    weight gradients as one large product over all steps after it.

    Same cell, same weights and names (`simple_rnn_cell/kernel`, `recurrent_kernel`, `bias`), so
    weights move between the two both ways; same masks, directions, states and input dropout (one
    mask for every step, as the cell draws it); outputs and gradients equal within float rounding
    (tests/test_layers.py). `unroll=True` (what TFLite converts) unrolls the hoisted form; a cell
    with recurrent dropout or another activation, or a backend other than TensorFlow or JAX, takes
    the stock path.

    Every app's recurrent layers are this one (`simple_rnn_stack`, the translate and caption
    decoders). Issue 13's training steps (bench/RESULTS.md, "Performance"), reference / character-LM
    size: on 2 CPU cores 1.6-2.0x / 1.5-2.0x the stock layer (the C++ recurrence of rnn_apps/kernels,
    or XLA), 8.7-10x / 1.2-1.5x PyTorch's nn.RNN; on an H200 with JAX (its lax.scan loops) 3.5x / 2.8x
    the stock layer and 1.65x / 5.5x PyTorch's cuDNN RNN."""

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if ((cell.recurrent_dropout > 0 and training) or cell.activation is not keras.activations.tanh
                or keras.backend.backend() not in ("tensorflow", "jax")):
            return super().inner_loop(sequences, initial_state, mask, training)
        if training and cell.dropout > 0:
            sequences = sequences * ops.expand_dims(cell.get_dropout_mask(sequences[:, 0]), 1)
        projected = ops.matmul(sequences, cell.kernel)
        if cell.bias is not None:
            projected = projected + cell.bias
        state = initial_state[0] if isinstance(initial_state, (list, tuple)) else initial_state
        if self.unroll:
            def step(x_projected, states):
                output = ops.tanh(x_projected + ops.matmul(states[0], cell.recurrent_kernel))
                return output, [output]

            return internals.keras_rnn(step, projected, [state], go_backwards=self.go_backwards, mask=mask,
                                       unroll=True, input_length=sequences.shape[1],
                                       zero_output_for_mask=self.zero_output_for_mask,
                                       return_all_outputs=self.return_sequences)
        kernel = ops.cast(cell.recurrent_kernel, projected.dtype)
        outputs, last_output, state = tanh_recurrence(projected, state, kernel, mask, self.go_backwards,
                                                      self.zero_output_for_mask, training=bool(training),
                                                      return_sequences=self.return_sequences)
        if not self.return_sequences:
            outputs = ops.expand_dims(last_output, 1)
        return last_output, outputs, [state]


def tanh_recurrence(inputs, state, kernel, mask=None, go_backwards=False, zero_output_for_mask=False,
                    training=False, return_sequences=True):
    """h_t = tanh(inputs_t + h_(t-1) kernel) over [batch, time, units], with Keras's masking
    (a masked step keeps the state; its output is zeros or the previous output) ->
    (outputs [batch, time, units] in the order read, last output, final state). With
    `return_sequences=False` the outputs may be None (the caller uses the last output only).

    The backward pass is written out: da_t = (dh_t + da_(t+1) kernel^T) (1 - h_t^2), one small
    product a step, and d kernel = sum_t h_(t-1)^T da_t, one large product after the loop. On
    TensorFlow a training step outside XLA runs each loop as one call of a C++ op
    (`_compiled_recurrence`, where it builds: rnn_apps/kernels); otherwise both loops run `CHUNK`
    steps per iteration of a while loop (`_chunked_recurrence`); on JAX SCAN_UNROLL per iteration
    of lax.scan (`_scanned_recurrence`)."""
    steps = None if mask is None else ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
    if go_backwards:
        inputs = ops.flip(inputs, 1)
        steps = None if steps is None else ops.flip(steps, 1)
    if keras.backend.backend() == "tensorflow":
        op = _compiled_kernel(inputs.dtype) if training else None
        if op is not None:
            return _compiled_recurrence(op, inputs, state, kernel, steps, zero_output_for_mask, return_sequences)
        return _chunked_recurrence(inputs, state, kernel, steps, zero_output_for_mask)
    return _scanned_recurrence(inputs, state, kernel, steps, zero_output_for_mask)


# Where TensorFlow training steps run the recurrence as the C++ op of rnn_apps/kernels: "auto" (float32
# steps outside XLA, where the op builds) or "off" (the while loops of `_chunked_recurrence`).
CPU_KERNEL = "auto"


def _compiled_kernel(dtype):
    """The C++ op where this step may run it, else None. Only in training steps: a SavedModel is traced
    without `training`, so what TF Serving loads holds stock ops only (a custom op would need a server
    built with it). Not inside XLA (`jit_compile=True`), which compiles only ops it knows."""
    if CPU_KERNEL == "off" or keras.backend.standardize_dtype(dtype) != "float32":
        return None
    if internals.in_xla_context():
        return None
    from rnn_apps import kernels

    return kernels.load()


def _compiled_recurrence(op, inputs, state, kernel, steps, zero_output_for_mask, return_sequences):
    """`_chunked_recurrence`'s math, each loop one call of the C++ op (batch-major, as Keras lays it out;
    the backward op also sums the kernel's gradient). Without `return_sequences` the outputs are not
    returned, so no gradient array of zeros is made for them: an empty one says so."""
    import tensorflow as tf

    empty = tf.zeros([0])
    mask = empty if steps is None else steps[..., 0]  # empty: no mask
    options = {"zero_output_for_mask": zero_output_for_mask}

    @tf.custom_gradient
    def run(inputs, state, kernel):
        outputs, last, final = op.tanh_recurrence(inputs, state, kernel, mask, **options)

        def grad(*d_results):
            d_outputs, d_last, d_final = d_results if return_sequences else (empty, *d_results)
            return op.tanh_recurrence_grad(d_outputs, d_last, d_final, outputs, state, kernel, mask, **options)

        return ((outputs, last, final) if return_sequences else (last, final)), grad

    results = run(inputs, state, kernel)
    return results if return_sequences else (None, *results)


# Steps of the recurrence per iteration of TensorFlow's while loop: each iteration costs the loop's
# own bookkeeping, so unrolling a few steps into one iteration spreads it. Lengths that are not a
# multiple run their remainder one step an iteration first. 2 and 8 train equally fast, but XLA
# compiles each new length (every length bucket, every ensemble member) in 1 s with 2 against 2.5 s
# with 8, as long as the stock layer takes (issue 13 measurements in bench/RESULTS.md).
CHUNK = 2
# Steps per iteration of lax.scan on JAX: on a GPU each iteration also waits for the host to read
# the loop's condition (H200, reference step: 1 step 5.5 ms, 8 steps 3.6 ms, 32 steps 3.6 ms).
SCAN_UNROLL = 8


def _chunked_recurrence(inputs, state, kernel, steps, zero_output_for_mask):
    import tensorflow as tf

    def for_steps(count, step, carry):
        """carry = step(t, carry) for t = 0 .. count - 1, CHUNK steps per iteration of the loop."""
        remainder = count % CHUNK
        _, carry = tf.while_loop(lambda i, c: i < remainder, lambda i, c: (i + 1, step(i, c)), (0, carry))

        def body(i, c):
            for k in range(CHUNK):
                c = step(i + k, c)
            return i + CHUNK, c

        _, carry = tf.while_loop(lambda i, c: i < count, body, (remainder, carry))
        return carry

    @tf.custom_gradient
    def run(inputs, state, kernel):
        xs = tf.transpose(inputs, (1, 0, 2))  # time-major: one step is a row
        ms = None if steps is None else tf.transpose(steps, (1, 0, 2))
        count = tf.shape(xs)[0]
        zeros = tf.zeros_like(state)

        def array():
            return tf.TensorArray(inputs.dtype, size=count, element_shape=state.shape)

        def forward(t, carry):
            if ms is None:
                h, outputs = carry
                new = tf.tanh(xs[t] + tf.matmul(h, kernel))
                return new, outputs.write(t, new)
            h, out, outputs, previous = carry
            m = ms[t]  # a masked step keeps the state and repeats (or zeroes) the output
            new = tf.tanh(xs[t] + tf.matmul(h, kernel))
            out = m * new + (1.0 - m) * (zeros if zero_output_for_mask else out)
            return h + m * (new - h), out, outputs.write(t, out), previous.write(t, h)

        # previous: the state each step started from, for the weight gradient.
        if ms is None:
            h, outputs_ta = for_steps(count, forward, (state, array()))
            outputs, last = outputs_ta.stack(), h
            previous = tf.concat([state[None], outputs[:-1]], 0)
        else:
            h, last, outputs_ta, previous_ta = for_steps(count, forward, (state, zeros, array(), array()))
            outputs, previous = outputs_ta.stack(), previous_ta.stack()

        def grad(d_outputs, d_last, d_final):
            d_outputs = tf.transpose(d_outputs, (1, 0, 2))
            d_outputs = tf.concat([d_outputs[:-1], d_outputs[-1:] + d_last[None]], 0)
            transposed = tf.transpose(kernel)
            # tanh' of every step in one op before the loop; zero on masked steps (their d_a is zero).
            derivative = 1.0 - outputs * outputs if ms is None else ms * (1.0 - outputs * outputs)

            def backward(s, carry):
                t = count - 1 - s
                if ms is None:
                    d_h, d_as = carry
                    d_a = (d_outputs[t] + d_h) * derivative[t]
                    return tf.matmul(d_a, transposed), d_as.write(t, d_a)
                d_h, d_out, d_as = carry
                m = ms[t]
                d_output = d_outputs[t] + d_out
                d_a = (d_output + d_h) * derivative[t]
                carried = zeros if zero_output_for_mask else (1.0 - m) * d_output
                return (1.0 - m) * d_h + tf.matmul(d_a, transposed), carried, d_as.write(t, d_a)

            if ms is None:
                d_state, d_as = for_steps(count, backward, (d_final, array()))
            else:
                d_state, _, d_as = for_steps(count, backward, (d_final, zeros, array()))
            d_a = d_as.stack()
            units = kernel.shape[0]
            d_kernel = tf.matmul(tf.reshape(previous, (-1, units)), tf.reshape(d_a, (-1, units)), transpose_a=True)
            return tf.transpose(d_a, (1, 0, 2)), d_state, d_kernel

        return (tf.transpose(outputs, (1, 0, 2)), last, h), grad

    return run(inputs, state, kernel)


def _scanned_recurrence(inputs, state, kernel, steps, zero_output_for_mask):
    """tanh_recurrence on JAX: the same two loops as `_chunked_recurrence`, as lax.scan with
    SCAN_UNROLL steps unrolled per iteration and jax.custom_vjp for the written-out backward pass.
    (A Pallas kernel per loop, W_hh held on chip, was 2.4x faster a step on one H200 at 128 units;
    removed on 2026-12-07 by issue 28's rule: a second recurrence stays only where it is 1.3x
    faster on the whole training run on two CPU or GPU families, and it was measured on one.)"""
    import jax
    import jax.numpy as jnp

    def forward(xs, state, kernel, ms):
        zeros = jnp.zeros_like(state)

        def step(carry, item):
            h, out = carry
            x, m = item
            new = jnp.tanh(x + h @ kernel)
            if m is None:
                return (new, new), (new, h)
            # a masked step keeps the state and repeats (or zeroes) the output
            out = m * new + (1 - m) * (zeros if zero_output_for_mask else out)
            return (h + m * (new - h), out), (out, h)

        (h, last), (outputs, previous) = jax.lax.scan(step, (state, zeros), (xs, ms), unroll=SCAN_UNROLL)
        return (outputs, last, h), previous  # previous: the state each step started from

    @jax.custom_vjp
    def run(xs, state, kernel, ms):
        return forward(xs, state, kernel, ms)[0]

    def run_forward(xs, state, kernel, ms):
        result, previous = forward(xs, state, kernel, ms)
        return result, (result[0], previous, kernel, ms)

    def backward_loop(d_outputs, outputs, kernel, ms, d_final):
        """-> (d_a at every step, the initial state's gradient)."""
        transposed = kernel.T
        zeros = jnp.zeros_like(d_final)

        def step(carry, item):
            d_h, d_out = carry
            d_output, output, m = item
            d_output = d_output + d_out
            # On a real step the output is that step's tanh; a masked step's d_a is zero anyway.
            d_a = (d_output + d_h) * (1 - output * output)
            if m is None:
                return (d_a @ transposed, d_out), d_a
            d_a = m * d_a
            carried = zeros if zero_output_for_mask else (1 - m) * d_output
            return ((1 - m) * d_h + d_a @ transposed, carried), d_a

        (d_state, _), d_a = jax.lax.scan(step, (d_final, zeros), (d_outputs, outputs, ms), reverse=True,
                                         unroll=SCAN_UNROLL)
        return d_a, d_state

    def run_backward(residuals, cotangents):
        outputs, previous, kernel, ms = residuals
        d_outputs, d_last, d_final = cotangents
        d_a, d_state = backward_loop(d_outputs.at[-1].add(d_last), outputs, kernel, ms, d_final)
        d_kernel = jnp.einsum("tbi,tbj->ij", previous, d_a)
        return d_a, d_state, d_kernel, None if ms is None else jnp.zeros_like(ms)

    run.defvjp(run_forward, run_backward)
    ms = None if steps is None else jnp.swapaxes(steps, 0, 1)
    outputs, last, h = run(jnp.swapaxes(inputs, 0, 1), state, kernel, ms)  # time-major: one step is a row
    return jnp.swapaxes(outputs, 0, 1), last, h


@keras.saving.register_keras_serializable(package="rnn_apps")
class MaskedPooling1D(layers.Layer):
    """Max or mean over the unmasked time steps, or both side by side (`max_mean`); a sequence
    with no step left pools to zeros."""

    def __init__(self, mode="max", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "mean", "max_mean"):
            raise ValueError(f"pooling mode must be 'max', 'mean' or 'max_mean', got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, x, mask=None):
        if mask is None:
            mask = ops.ones(ops.shape(x)[:2], dtype="bool")
        keep = ops.expand_dims(ops.cast(mask, x.dtype), -1)
        steps = ops.sum(keep, axis=1)
        mean = ops.sum(x * keep, axis=1) / ops.maximum(steps, 1.0)
        # Masked steps get a large negative value; an empty sequence is zeroed afterwards.
        max_ = ops.max(x * keep - (1.0 - keep) * 1e9, axis=1) * ops.minimum(steps, 1.0)
        return {"max": max_, "mean": mean, "max_mean": ops.concatenate([max_, mean], axis=-1)}[self.mode]

    def compute_mask(self, x, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        features = input_shape[2] * 2 if self.mode == "max_mean" and input_shape[2] else input_shape[2]
        return (input_shape[0], features)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="rnn_apps")
class FrozenTailEmbedding(layers.Layer):
    """An Embedding (id 0 = padding, masked) whose last `frozen_rows` rows are not trained.

    They hold words outside the training vocabulary, which the app sets after training; leaving
    them out of the optimizer spares it dense updates of rows that training is not meant to change
    (with XLA, an embedding's gradient and its AdamW update cover the whole table).

    `reversible=True` ties an output layer to the table, as keras-hub's ReversibleEmbedding does:
    `layer(vectors, reverse=True)` -> float32 logits vectors . table^T + output_bias, one per row."""

    def __init__(self, input_dim, output_dim, frozen_rows=0, unknown_id=1, mask_zero=True, reversible=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.output_dim, self.frozen_rows = input_dim, output_dim, frozen_rows
        self.unknown_id, self.mask_zero, self.reversible = unknown_id, mask_zero, reversible
        self.supports_masking = True

    def build(self, input_shape=None):
        self.trained = self.add_weight((self.input_dim - self.frozen_rows, self.output_dim),
                                       initializer="uniform", name="embeddings")
        self.frozen = self.add_weight((self.frozen_rows, self.output_dim), initializer="zeros",
                                      trainable=False, name="frozen_embeddings") if self.frozen_rows else None
        self.output_bias = self.add_weight((self.input_dim,), initializer="zeros",
                                           name="output_bias") if self.reversible else None

    def table(self):
        return self.trained if self.frozen is None else ops.concatenate([self.trained, self.frozen], axis=0)

    def set_table(self, matrix):
        """All input_dim rows at once, trained ones first."""
        self.trained.assign(matrix[: self.input_dim - self.frozen_rows])
        if self.frozen is not None:
            self.frozen.assign(matrix[self.input_dim - self.frozen_rows:])

    def call(self, ids, reverse=False):
        if reverse:
            logits = ops.matmul(ids, ops.transpose(ops.cast(self.table(), ids.dtype)))
            return ops.cast(logits, "float32") + self.output_bias
        ids = ops.cast(ids, "int32")
        # An id outside [0, input_dim) (a client's off-by-one, a vocabulary from another run) reads
        # as the unknown word: a gather would otherwise index from the end (TFLite, negative ids)
        # or fail (TensorFlow), and either would pass unnoticed on a phone. Computed in float32
        # (exact below 2**24 ids) rather than as an int32 select, which a phone's GPU delegate lacks.
        valid = ops.cast(ops.logical_and(ids >= 0, ids < self.input_dim), "float32")
        ids = ops.cast(ops.cast(ids, "float32") * valid + self.unknown_id * (1.0 - valid), "int32")
        if self.frozen is None:
            return rows(self.trained, ids)
        # Two lookups rather than one in the joined table: joining copies the whole table every
        # step, and its gradient would be as large (slower training steps: bench/RESULTS.md).
        trained_rows = self.input_dim - self.frozen_rows
        return ops.where(ops.expand_dims(ids < trained_rows, -1),
                         rows(self.trained, ops.minimum(ids, trained_rows - 1)),
                         rows(self.frozen, ops.maximum(ids - trained_rows, 0)))

    def compute_mask(self, ids, mask=None):
        # Vectors in (reverse): logits carry no mask (Keras would weight the loss by it).
        return ops.not_equal(ids, 0) if self.mask_zero and keras.backend.is_int_dtype(ids.dtype) else None

    def compute_output_spec(self, ids, reverse=False):
        if reverse:
            return keras.KerasTensor((*ids.shape[:-1], self.input_dim), dtype="float32")
        return keras.KerasTensor((*ids.shape, self.output_dim), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "frozen_rows": self.frozen_rows, "unknown_id": self.unknown_id, "mask_zero": self.mask_zero,
                "reversible": self.reversible}


def rows(table, ids):
    """table[ids] for ids already in range: on TensorFlow a plain GATHER (keras.ops.take adds an
    int32 select for negative ids, which a phone's GPU delegate lacks), elsewhere keras.ops.take."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.gather(table, ids)
    return ops.take(table, ids, axis=0)


def find_layers(model, kind) -> list:
    """The layers of type `kind` in `model`, nested models (ensemble members) included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, kind):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += find_layers(layer, kind)
    return found


def simple_rnn_stack(x, config: dict, unroll: bool = False, return_sequences: bool = True,
                     return_state: bool = False, recurrent_initializer="orthogonal", dtype=None, mask=None):
    """`depth` SimpleRNN layers of `units`, optionally bidirectional, with input dropout. With
    `return_state`: (outputs, the last layer's final state; both directions' side by side). `mask`
    [batch, time] marks real steps where `x` carries no mask of its own (inputs that are not ids)."""
    for i in range(config["depth"]):
        last = i == config["depth"] - 1
        rnn = FastSimpleRNN(
            config["units"], return_sequences=return_sequences or not last, unroll=unroll,
            return_state=return_state and last, dropout=config["dropout"], name=f"simple_rnn_{i}",
            recurrent_initializer=recurrent_initializer, dtype=dtype,
        )
        if config["bidirectional"]:
            rnn = layers.Bidirectional(rnn, name=f"bidirectional_{i}")
            if unroll:
                # Keras 3.15's unrolled backward pass zeroes masked outputs with the mask in the
                # wrong time order, wiping the real steps. Keeping masked outputs instead changes
                # only the masked positions, which pooling and later layers ignore.
                rnn.forward_layer.zero_output_for_mask = False
                rnn.backward_layer.zero_output_for_mask = False
        x = rnn(x) if mask is None or i else rnn(x, mask=mask)  # later layers get it from the first
    if return_state:
        x, *states = x
        return x, states[0] if len(states) == 1 else layers.Concatenate(name="final_state")(states)
    return x


@keras.saving.register_keras_serializable(package="rnn_apps")
class LuongAttention(layers.Layer):
    """Luong's "general" attention for a decoder over encoder outputs:
    scores = (h_t W) . s_j / sqrt(d) over the unmasked source steps j, context c_t = sum_j a_tj s_j,
    output tanh(W_c [c_t; h_t]). The 1/sqrt(d) matters: unscaled scores saturate the softmax early
    and attention never engages (measured, issue 7). Works on a whole teacher-forced sequence
    [batch, time, units] and on one step [batch, 1, units] alike, with the same weights."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True  # masks come in as source_mask; the output carries none

    def compute_mask(self, *args, **kwargs):
        return None

    def build(self, decoder_states_shape, encoder_outputs_shape, source_mask_shape):
        # The sublayers compute in this layer's dtype policy (bfloat16 under mixed precision).
        self.query = layers.Dense(encoder_outputs_shape[-1], use_bias=False, name="query", dtype=self.dtype_policy)
        self.query.build(decoder_states_shape)
        self.combine = layers.Dense(self.units, activation="tanh", name="combine", dtype=self.dtype_policy)
        self.combine.build((*decoder_states_shape[:-1], encoder_outputs_shape[-1] + decoder_states_shape[-1]))

    def call(self, decoder_states, encoder_outputs, source_mask):
        """source_mask [batch, source_time]: 1.0 for real steps, 0.0 for padding."""
        scale = ops.sqrt(ops.cast(ops.shape(encoder_outputs)[-1], decoder_states.dtype))
        scores = ops.matmul(self.query(decoder_states), ops.transpose(encoder_outputs, (0, 2, 1))) / scale
        scores = ops.where(ops.expand_dims(source_mask, 1) > 0.5, scores, -1e9)
        context = ops.matmul(ops.softmax(scores, axis=-1), encoder_outputs)
        return self.combine(ops.concatenate([context, decoder_states], axis=-1))

    def compute_output_shape(self, decoder_states_shape, encoder_outputs_shape, source_mask_shape):
        return (*decoder_states_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def rnn_layers(model) -> list:
    """The SimpleRNN layers of a unidirectional stack, bottom first (simple_rnn_0, simple_rnn_1, ...)."""
    return sorted((layer for layer in model.layers if isinstance(layer, layers.SimpleRNN)), key=lambda r: r.name)


@keras.saving.register_keras_serializable(package="rnn_apps")
class FiniteClip(layers.Layer):
    """Values clipped to [-limit, limit], NaN to 0: a defined output for any float input (a sensor's
    NaN or inf, a feature far outside training's range). Written with builtin TFLite ops only
    (x == x is false only for NaN), so a phone computes the same."""

    def __init__(self, limit=10.0, **kwargs):
        super().__init__(**kwargs)
        self.limit = limit

    def call(self, x):
        clipped = ops.clip(x, -self.limit, self.limit)
        return ops.where(ops.equal(clipped, clipped), clipped, ops.zeros_like(clipped))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "limit": self.limit}


@keras.saving.register_keras_serializable(package="rnn_apps")
class StepDifference(layers.Layer):
    """[batch, time, features] -> x_t - x_(t-1), with x_(-1) = 0: how fast each feature changes
    (a fall is a fast change). Causal, so a streaming step computes it from the previous frame."""

    def call(self, x):
        return x - ops.pad(x, [[0, 0], [1, 0], [0, 0]])[:, :-1]

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="rnn_apps")
class PerFrame(layers.Wrapper):
    """`layer` applied to every step of [batch, time, ...] as one batch of batch*time frames.
    Keras 3.15's TimeDistributed loses the time axis inside a traced training step when time is
    unknown (its outputs came back [batch, features, ...]); a reshape does not."""

    def build(self, input_shape):
        self.layer.build((None, *input_shape[2:]))
        self.built = True

    def call(self, x, training=None):
        shape = ops.shape(x)
        y = self.layer(ops.reshape(x, (-1, *x.shape[2:])), training=training)
        return ops.reshape(y, (shape[0], shape[1], *y.shape[1:]))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], *self.layer.compute_output_shape((None, *input_shape[2:]))[1:])


@keras.saving.register_keras_serializable(package="rnn_apps")
class AppendToEveryStep(layers.Layer):
    """(sequence [batch, time, d], vector [batch, e]) -> [batch, time, d + e]: the vector beside
    every step's input (a captioner's image at every word), keeping the sequence's padding mask."""

    def call(self, sequence, vector):
        repeated = ops.repeat(ops.expand_dims(vector, 1), ops.shape(sequence)[1], axis=1)
        return ops.concatenate([sequence, ops.cast(repeated, sequence.dtype)], axis=-1)

    def compute_mask(self, sequence, vector, mask=None):
        return mask[0] if isinstance(mask, (list, tuple)) else mask

    def compute_output_shape(self, sequence_shape, vector_shape):
        return (*sequence_shape[:2], sequence_shape[2] + vector_shape[1])


def optional_dropout(x, rate: float):
    """Dropout only where it does something: a rate-0 layer still carries seed state."""
    return layers.Dropout(rate)(x) if rate > 0 else x


@keras.saving.register_keras_serializable(package="rnn_apps")
class SparseCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy with label smoothing, which Keras only offers for one-hot
    targets. Integer targets of any shape ([batch] or [batch, time]) against probabilities, or
    logits with `from_logits`. `ignore_class` as in Keras's own: those targets (padding) add
    nothing, and the mean is over the others."""

    def __init__(self, label_smoothing=0.0, from_logits=False, ignore_class=None, name="sparse_crossentropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing, self.from_logits, self.ignore_class = label_smoothing, from_logits, ignore_class

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        if not self.label_smoothing:
            return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=self.from_logits,
                                                                ignore_class=self.ignore_class)
        log_p = ops.log_softmax(y_pred, axis=-1) if self.from_logits else ops.log(ops.clip(y_pred, 1e-7, 1.0))
        picked = ops.squeeze(ops.take_along_axis(log_p, ops.expand_dims(ops.maximum(y_true, 0), -1), axis=-1), -1)
        # (1 - e) * one-hot + e / classes, as Keras smooths one-hot targets.
        losses = -(1 - self.label_smoothing) * picked - self.label_smoothing * ops.mean(log_p, axis=-1)
        if self.ignore_class is None:
            return losses
        valid = ops.not_equal(y_true, self.ignore_class)
        losses = ops.where(valid, losses, 0.0)
        internals.set_keras_mask(losses, valid)  # the reduction averages over the valid targets only
        return losses

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "from_logits": self.from_logits,
                "ignore_class": self.ignore_class}
