"""SavedModel for TF Serving: named signatures built with Keras's ExportArchive.

`model.export()` would name the input `keras_tensor` and the output `output_0`; TF Serving
clients address inputs and outputs by name, so each app's Endpoint sets both.
"""

import keras
import tensorflow as tf

from foundation import internals


def write(path, endpoints, batch_chunk=None):
    """Endpoints -> SavedModel signatures; with `batch_chunk`, each runs over its batch in chunks."""
    archive = keras.export.ExportArchive()
    for endpoint in endpoints:
        for obj in endpoint.track:
            archive.track(obj)
        fn = endpoint.fn if batch_chunk is None else in_chunks(endpoint.fn, endpoint.input_signature, batch_chunk)
        archive.add_endpoint(endpoint.name, fn, input_signature=endpoint.input_signature)
    internals.save_each_variable_once(archive)  # else every weight is stored (and served) twice
    archive.write_out(str(path), verbose=False)


def in_chunks(fn, input_signature: list, chunk: int):
    """`fn` applied to `chunk` examples at a time, one chunk after another (a tf.while_loop with
    parallel_iterations=1), its outputs concatenated along the batch: the peak memory of a request
    is that of one chunk, whatever the batch. Inputs whose first dimension is the batch (None) are
    sliced; others (a scalar option) are passed whole. Every output must be batch-major."""
    batched = [spec.shape.rank and spec.shape[0] is None for spec in input_signature]
    if not any(batched):
        return fn
    specs = tf.function(fn).get_concrete_function(*input_signature).structured_outputs
    for name, spec in specs.items():
        if not spec.shape.rank:
            raise ValueError(f"output {name!r} has no batch dimension; it cannot be computed in chunks")

    # Outputs sized by their content (a decoder's ids [batch, longest output]) differ from chunk to
    # chunk: each chunk is padded to the widest (with 0, "" or False) before they are joined.
    ragged = [k for k, s in specs.items() if None in s.shape[1:]]

    def chunked(*args):
        size = tf.shape(args[batched.index(True)])[0]

        def body(start, arrays, widest):
            end = tf.minimum(start + chunk, size)
            outputs = fn(*[a[start:end] if b else a for a, b in zip(args, batched, strict=True)])
            widest = {k: tf.maximum(widest[k], tf.shape(outputs[k])[1:]) for k in ragged}
            return end, {k: arrays[k].write(start // chunk, outputs[k]) for k in arrays}, widest

        arrays = {k: _array(s) for k, s in specs.items()}
        widest = {k: tf.zeros([specs[k].shape.rank - 1], tf.int32) for k in ragged}
        _, arrays, widest = tf.while_loop(lambda start, *_: start < size, body, (tf.constant(0), arrays, widest),
                                          parallel_iterations=1)
        arrays.update({k: _padded(arrays[k], widest[k], specs[k]) for k in ragged})
        # An empty batch writes no chunk; its outputs are empty, unknown sizes counted as 0.
        empty = {k: tf.zeros([0] + [d or 0 for d in s.shape[1:]], s.dtype) for k, s in specs.items()}
        return {k: tf.cond(a.size() > 0, a.concat, lambda k=k: empty[k]) for k, a in arrays.items()}

    return chunked


def _array(spec) -> tf.TensorArray:
    return tf.TensorArray(spec.dtype, size=0, dynamic_size=True, infer_shape=False,
                          element_shape=tf.TensorShape([None]).concatenate(spec.shape[1:]))


def _padded(array: tf.TensorArray, widest: tf.Tensor, spec) -> tf.TensorArray:
    """Every element of `array` padded at the end of its non-batch dimensions to `widest`."""

    def body(i, out):
        x = array.read(i)
        pads = tf.stack([tf.zeros_like(widest), widest - tf.shape(x)[1:]], axis=1)
        return i + 1, out.write(i, tf.pad(x, tf.concat([[[0, 0]], pads], 0), constant_values=tf.zeros([], x.dtype)))

    _, out = tf.while_loop(lambda i, _: i < array.size(), body, (tf.constant(0), _array(spec)))
    return out


def signature_specs(path) -> dict:
    """{signature: {"inputs": {name: spec}, "outputs": {name: spec}}} as stored in the SavedModel."""
    loaded = tf.saved_model.load(str(path))
    out = {}
    for name, fn in loaded.signatures.items():
        _, inputs = fn.structured_input_signature
        out[name] = {"inputs": {k: _spec(v) for k, v in inputs.items()},
                     "outputs": {k: _spec(v) for k, v in fn.structured_outputs.items()}}
    return out


def _spec(spec) -> dict:
    return {"dtype": spec.dtype.name, "shape": [d if d is not None else -1 for d in spec.shape.as_list()]}
