"""TFLite conversion with builtin ops only, and running a model in LiteRT.

Keras 3 RNNs only convert to builtin ops when unrolled over a fixed length (a dynamic loop
becomes tensor-list ops the converter cannot lower), so apps hand us an unrolled twin of the
trained model. The route that works for Keras 3 is ExportArchive -> SavedModel -> converter.
"""

import contextlib
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from export import savedmodel
from foundation.errors import ExportError

# Ops a phone's stock LiteRT runtime lacks (Flex = select TensorFlow ops, CUSTOM), and the
# resource-variable ops that mean state kept inside the interpreter between calls (a dropout seed,
# an unfrozen variable): a model with any of them is not published.
FORBIDDEN_OPS = ("CUSTOM", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")


def forbidden_ops(ops) -> list:
    """The ops of `ops` (names as op_names gives them) that a shipped model must not contain."""
    return [op for op in ops if op.startswith("Flex") or op in FORBIDDEN_OPS]


def convert(endpoints, mode: str = "none", calibration: dict | None = None) -> bytes:
    """Endpoints -> one .tflite holding a signature per endpoint, builtin ops only, quantized as
    `mode` (one of export.QUANTIZE_MODES) says; int8 calibrates on `calibration`:
    {signature: [inputs at batch 1, ...]}."""
    names = [endpoint.name for endpoint in endpoints]
    with tempfile.TemporaryDirectory() as tmp:
        savedmodel.write(tmp, [at_batch_one(endpoint) for endpoint in endpoints])
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=names)
        # Builtins only: select-TF (Flex) ops do not run in ai_edge_litert or on a stock phone runtime.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if mode != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if mode == "int8":
            # The calibrator runs the model in TensorFlow's own (deprecated) interpreter, which warns.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            converter.representative_dataset = lambda: _calibration_samples(names, calibration or {})
        with native_stderr() as log:
            try:
                return converter.convert()
            except Exception as e:
                # Not the user's input: the converter's whole message is what debugging needs; the
                # MLIR passes write theirs to the process's stderr, not into the exception.
                errors = "\n".join(line for line in log() if "error:" in line)
                raise ExportError(f"TFLite conversion of signatures {names} ({mode}) failed:\n{e}\n{errors}") from e


def at_batch_one(endpoint):
    """The endpoint with every batch dimension (a leading None) fixed to 1: a phone runs one example
    at a time, the model cards say [1, ...], and a GPU delegate takes static shapes only."""
    import dataclasses

    specs = [tf.TensorSpec([1, *spec.shape[1:]], spec.dtype, name=spec.name)
             if spec.shape.rank and spec.shape[0] is None else spec for spec in endpoint.input_signature]
    return dataclasses.replace(endpoint, input_signature=specs)


@contextlib.contextmanager
def native_stderr():
    """What C++ code writes to file descriptor 2 meanwhile (the converter's MLIR diagnostics,
    "fully_quantize: ..." notes), kept out of the terminal; yields a function -> its lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)

        def lines():
            sink.seek(0)
            return sink.read().decode("utf-8", "replace").splitlines()

        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _calibration_samples(names: list, calibration: dict):
    """What the converter's representative_dataset yields: the inputs alone for one signature,
    (signature, inputs) pairs for several."""
    for name in names:
        for inputs in calibration.get(name, []):
            yield inputs if len(names) == 1 else (name, inputs)


def interpreter(path_or_bytes, num_threads: int | None = None, xnnpack: bool = True):
    """A LiteRT interpreter; `xnnpack=False` runs the builtin kernels without the XNNPACK delegate
    that LiteRT applies by default (what a phone without it, or with it turned off, runs)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    source = {"model_content": path_or_bytes} if isinstance(path_or_bytes, bytes) else \
        {"model_path": str(path_or_bytes)}
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(**source, num_threads=num_threads, experimental_op_resolver_type=resolver)


def op_names(path_or_bytes) -> list:
    """Every op of the file, in every signature's subgraph (the interpreter's own op list shows the
    first subgraph only: a decoder's decode_step would go unchecked)."""
    return sorted({op["op"] for op in operators(path_or_bytes)})


def operators(path_or_bytes) -> list:
    """[{"subgraph", "signature", "op", "inputs", "outputs"}] for each op of each subgraph, read from
    the flatbuffer: builtin ops by name, custom ones (Flex) by their custom code; inputs and outputs
    are tensor type names ("FLOAT32", "INT32", None for an omitted optional input)."""
    from tensorflow.lite.python import schema_py_generated as schema

    content = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    signatures = {s.subgraphIndex: _text(s.signatureKey) for s in (model.signatureDefs or [])}
    found = []
    for index, subgraph in enumerate(model.subgraphs):
        for op in subgraph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            name = _text(code.customCode) if builtin == schema.BuiltinOperator.CUSTOM else op_names[builtin]
            found.append({"subgraph": index, "signature": signatures.get(index, f"subgraph {index}"), "op": name,
                          "inputs": [type_names[subgraph.tensors[i].type] if i >= 0 else None for i in op.inputs],
                          "outputs": [type_names[subgraph.tensors[i].type] for i in op.outputs]})
    return found


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value or "")


def run_one_by_one(model, signature: str, inputs: dict) -> dict:
    """Run each example as its own batch of 1, as a phone does; stack the outputs. `model` is a
    path, the file's bytes, or an interpreter."""
    if not hasattr(model, "get_signature_runner"):
        model = interpreter(model)
    runner = model.get_signature_runner(signature)
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
