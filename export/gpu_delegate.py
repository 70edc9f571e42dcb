"""Which ops keep LiteRT's GPU delegate from taking a .tflite whole, and which runtime a file needs.

The GPU delegate takes the ops it has kernels for and leaves the rest to the CPU, splitting the
graph at each one (every split copies tensors between GPU and CPU memory); a file with none of
them runs on the GPU whole. The rules here are the delegate's own, from TensorFlow Lite's
`tools/versioning/gpu_compatibility.cc` (`CheckGpuDelegateCompatibility`, TensorFlow 2.21): the
ops it has a case for, and their type rules that the project's graphs can meet (int32 GATHER data,
SELECT between non-float values, CAST between other types than bool/float32/int32). Rules on
shapes and options (STRIDED_SLICE's shrink mask, broadcasting) are the delegate's to apply when the
file loads. The Python `Analyzer`'s `gpu_compatibility=True` is not used: it calls ops the delegate
lacks compatible.

The converter's `min_runtime_version` (what the ops' versions need) is read from the file itself.
"""

from pathlib import Path

# Every builtin op with a case in CheckGpuDelegateCompatibility.
SUPPORTED = frozenset("""
ABS ADD ADD_N ATAN2 AVERAGE_POOL_2D BATCH_MATMUL CAST CEIL CONCATENATION CONV_2D COS CUMSUM DENSIFY
DEPTH_TO_SPACE DEPTHWISE_CONV_2D DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP FLOOR
FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GELU GREATER GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL
LOG LOGICAL_AND LOGISTIC LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL ONE_HOT PACK PAD
PADV2 POW PRELU QUANTIZE REDUCE_MAX REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR
RESIZE_NEAREST_NEIGHBOR RSQRT SELECT SELECT_V2 SIGN SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V SQRT
SQUARE SQUARED_DIFFERENCE STABLEHLO_CLAMP STRIDED_SLICE SUB SUM TANH TILE TRANSPOSE TRANSPOSE_CONV
""".split())
FLOATS = ("FLOAT32", "FLOAT16")
RULES = ("LiteRT GPU delegate rules of TensorFlow Lite 2.21's tools/versioning/gpu_compatibility.cc: ops "
         "without a GPU kernel, int32 GATHER data, SELECT between non-float values, CAST outside "
         "bool/float32/int32; the ops listed run on the CPU and split the graph there")


def blockers(path) -> list:
    """[{"signature", "op", "why", "count"}] for every op of the file the GPU delegate leaves to the CPU."""
    from export import tflite

    found = {}
    for op in tflite.operators(path):
        why = _why(op["op"], op["inputs"], op["outputs"])
        if why:
            key = (op["signature"], op["op"], why)
            found[key] = found.get(key, 0) + 1
    return [{"signature": s, "op": o, "why": w, "count": n} for (s, o, w), n in sorted(found.items())]


def _why(name: str, inputs: list, outputs: list) -> str | None:
    if name not in SUPPORTED:
        return "no GPU kernel"
    if name == "GATHER" and inputs[0] == "INT32":
        return "int32 data"
    if name in ("SELECT", "SELECT_V2") and not (inputs[0] in ("BOOL", *FLOATS) and inputs[1] in FLOATS
                                                 and inputs[2] in FLOATS):
        return f"selects between {inputs[1].lower()} values"
    if name == "CAST":
        pair, plain = (inputs[0], outputs[0]), ("FLOAT32", "INT32")
        if not (pair[0] == "BOOL" and pair[1] in FLOATS or pair[0] in FLOATS and pair[1] == "BOOL"
                or pair[0] in plain and pair[1] in plain):
            return f"cast {pair[0].lower()} to {pair[1].lower()}"
    return None


def min_runtime_version(path) -> str | None:
    """The converter's `min_runtime_version` metadata: the oldest TensorFlow Lite / LiteRT runtime
    whose kernels have every op version the file uses."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == b"min_runtime_version":
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().rstrip(b"\0").decode("ascii")
    return None


def card_entry(path) -> dict:
    """What a model card says of one file: its runtime and what keeps the GPU delegate from taking it whole."""
    found = blockers(path)
    return {"min_runtime_version": min_runtime_version(path),
            "gpu_delegate": {"whole_file": not found, "ops_left_to_cpu": found, "rules": RULES}}
