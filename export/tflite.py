"""TFLite conversion with builtin ops only, and running a model in LiteRT.

Keras 3 RNNs only convert to builtin ops when unrolled over a fixed length (a dynamic loop
becomes tensor-list ops the converter cannot lower), so apps hand us an unrolled twin of the
trained model. The route that works for Keras 3 is ExportArchive -> SavedModel -> converter.
"""

import tempfile

import numpy as np
import tensorflow as tf

from export import savedmodel
from rnn_apps.errors import UserError


def convert(endpoint) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        savedmodel.write(tmp, [endpoint])
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[endpoint.name])
        # Builtins only: select-TF (Flex) ops do not run in ai_edge_litert or on a stock phone runtime.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            return converter.convert()
        except Exception as e:
            raise UserError(f"TFLite conversion of {endpoint.name!r} failed: {str(e).splitlines()[0]}") from None


def interpreter(path_or_bytes):
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(path_or_bytes, bytes):
        return Interpreter(model_content=path_or_bytes)
    return Interpreter(model_path=str(path_or_bytes))


def op_names(model_path) -> list:
    return sorted({op["op_name"] for op in interpreter(model_path)._get_ops_details()})


def run_one_by_one(model_path, signature: str, inputs: dict) -> dict:
    """Run each example as its own batch of 1, as a phone does; stack the outputs."""
    runner = interpreter(model_path).get_signature_runner(signature)
    n = len(next(iter(inputs.values())))
    rows = [runner(**{k: np.asarray(v[i : i + 1]) for k, v in inputs.items()}) for i in range(n)]
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def signature_specs(model_path) -> dict:
    it = interpreter(model_path)
    out = {}
    for name in it.get_signature_list():
        runner = it.get_signature_runner(name)
        out[name] = {
            "inputs": {k: _spec(d) for k, d in runner.get_input_details().items()},
            "outputs": {k: _spec(d) for k, d in runner.get_output_details().items()},
        }
    return out


def _spec(detail) -> dict:
    return {"dtype": np.dtype(detail["dtype"]).name, "shape": [int(d) for d in detail["shape_signature"]]}
