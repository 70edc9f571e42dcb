"""SavedModel for TF Serving: named signatures built with Keras's ExportArchive.

`model.export()` would name the input `keras_tensor` and the output `output_0`; TF Serving
clients address inputs and outputs by name, so each app's Endpoint sets both.
"""

import keras
import tensorflow as tf


def write(path, endpoints):
    archive = keras.export.ExportArchive()
    for endpoint in endpoints:
        for obj in endpoint.track:
            archive.track(obj)
        archive.add_endpoint(endpoint.name, endpoint.fn, input_signature=endpoint.input_signature)
    archive.write_out(str(path), verbose=False)


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
