"""A TF Serving model repository: `models.config`, warmup requests, and REST and gRPC examples.

    EXPORT_ROOT/
      models.config                               model_config_list: one entry per model name
      <model>/<version>/                          the SavedModel
      <model>/<version>/assets.extra/
        tf_serving_warmup_requests                PredictionLogs (TFRecord) TF Serving replays on load
        rest_examples.json                        a :predict request per signature, in the row
                                                  (`instances`) and columnar (`inputs`) forms, and
                                                  the responses TF Serving gives them
        grpc_client.py                            the same request over gRPC (tensorflow-serving-api)

Every request is built from real test inputs of the app (those parity checks), so the warmup
exercises the graph a client will, and the REST examples are what a client sends. The protos are
tensorflow-serving-api's; JSON follows TF Serving's REST API: binary strings as {"b64": ...}
(inputs whose name ends in `_bytes` always), others as UTF-8; outputs named `*_bytes` come back
as {"b64": ...}.
"""

import base64
import json
from pathlib import Path

import numpy as np

from foundation.files import write_text

CONFIG_FILE = "models.config"
WARMUP_FILE = "tf_serving_warmup_requests"
REST_FILE, GRPC_FILE = "rest_examples.json", "grpc_client.py"
REQUESTS_DIR = "requests"  # one request body per signature and form, as curl posts it
EXAMPLES = 2  # rows per request
DOCKER_ROOT = "/models"  # where `docker run -v EXPORT_ROOT:/models tensorflow/serving` sees the root


# --- models.config -------------------------------------------------------------------------------

def models_config(manifest: dict) -> str:
    """model_config_list for every model of the manifest, served from DOCKER_ROOT/<name>: its newest
    version; where versions carry labels (`rnn-apps export --label`, `rnn-apps label`), the newest and
    every labelled one, with `version_labels` so that a client can ask for `stable` or `canary`."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    finished = [e for e in manifest["exports"] if not e.get("pending")]
    for name in sorted({e["model_name"] for e in finished}):
        entry = config.model_config_list.config.add()
        entry.name, entry.base_path, entry.model_platform = name, f"{DOCKER_ROOT}/{name}", "tensorflow"
        labels = manifest.get("labels", {}).get(name, {})
        if not labels:
            entry.model_version_policy.latest.num_versions = 1
            continue
        newest = max(e["version"] for e in finished if e["model_name"] == name)
        entry.model_version_policy.specific.versions.extend(sorted({newest, *labels.values()}))
        for label, version in sorted(labels.items()):
            entry.version_labels[label] = version
    return text_format.MessageToString(config)


BATCHING_FILE = "batching_parameters.txt"


def batching_parameters(max_batch: int) -> str:
    """TF Serving's BatchingParameters (--enable_batching --batching_parameters_file): batches up to
    `max_batch` examples (the signatures' own chunk: one batch, one pass of the chunk loop), padded to
    an allowed size that includes the warmup requests' EXAMPLES rows, so warmup compiles what traffic
    runs; variable-length inputs padded (frames with their `lengths`; see docs/deployment.md for
    `tag_tokens`)."""
    sizes = sorted({EXAMPLES, 8, 32, 128, max_batch})
    return (f"max_batch_size {{ value: {max_batch} }}\n"
            "batch_timeout_micros { value: 2000 }\n"
            "max_enqueued_batches { value: 100 }\n"
            "num_batch_threads { value: 2 }\n"
            + "".join(f"allowed_batch_sizes: {size}\n" for size in sizes)
            + "pad_variable_length_inputs: true\n")


def write_server_files(root: Path, manifest: dict, max_batch: int):
    """ROOT/models.config for every model the manifest lists, and ROOT/batching_parameters.txt
    (written atomically, under the exporter's lock, so re-exporting one model keeps the others)."""
    write_text(Path(root) / CONFIG_FILE, models_config(manifest))
    write_text(Path(root) / BATCHING_FILE, batching_parameters(max_batch))


# --- requests ------------------------------------------------------------------------------------

def requests_from(cases, signatures: dict) -> list:
    """[(signature, inputs)] for every SavedModel signature: the first EXAMPLES rows of the inputs
    a parity case gives it, or of a case whose signature takes the same inputs (beam_search and
    serving_default); `signatures` is signature -> {input name: spec} as saved."""
    given = {}
    for case in cases:
        signature, inputs = case.saved_model
        given.setdefault(signature, {k: np.asarray(v)[:EXAMPLES] if np.ndim(v) else v for k, v in inputs.items()})
    requests = []
    for signature, specs in sorted(signatures.items(), key=lambda item: (item[0] != "serving_default", item[0])):
        inputs = given.get(signature) or next(
            (v for s, v in given.items() if _same_inputs(signatures.get(s, {}), specs)), None)
        if inputs is None:
            raise ValueError(f"no example inputs for the SavedModel signature {signature!r}: add a parity case "
                             "that calls it, or one for a signature with the same inputs")
        requests.append((signature, inputs))
    return requests


def _same_inputs(a: dict, b: dict) -> bool:
    return {k: v["dtype"] for k, v in a.items()} == {k: v["dtype"] for k, v in b.items()}


def warmup_records(model_name: str, requests: list) -> list:
    """Serialized PredictionLogs, one per request."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    records = []
    for signature, inputs in requests:
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = model_name, signature
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(_tensor_value(value)))
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        records.append(log.SerializeToString())
    return records


def _tensor_value(value):
    value = np.asarray(value)
    return value.astype(object) if value.dtype.kind in "SUO" else value


def write_warmup(saved_model_dir: Path, model_name: str, requests: list):
    """SAVED_MODEL/assets.extra/tf_serving_warmup_requests: a TFRecord of PredictionLogs."""
    import tensorflow as tf

    extra = Path(saved_model_dir) / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(extra / WARMUP_FILE)) as writer:
        for record in warmup_records(model_name, requests):
            writer.write(record)


def read_warmup(saved_model_dir) -> list:
    """[(signature, inputs)] of every warmup record, read back with the protos as TF Serving reads them."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    out = []
    for record in tf.data.TFRecordDataset(str(Path(saved_model_dir) / "assets.extra" / WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        out.append((request.model_spec.signature_name,
                    {name: tf.make_ndarray(tensor) for name, tensor in request.inputs.items()}))
    return out


def write_examples(saved_model_dir: Path, model_name: str, requests: list, responses: list):
    """The REST examples with their responses, and the gRPC client, into SAVED_MODEL/assets.extra."""
    extra = Path(saved_model_dir) / "assets.extra"
    examples = [rest_example(model_name, signature, inputs, outputs)
                for (signature, inputs), outputs in zip(requests, responses, strict=True)]
    (extra / REST_FILE).write_text(json.dumps(examples, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    # Each request body as a client posts it (`curl -d @requests/serving_default.instances.json URL`):
    # no wrapper to take apart first.
    (extra / REQUESTS_DIR).mkdir(exist_ok=True)
    for example in examples:
        for form in ("instances", "inputs"):
            if example[f"{form}_request"] is not None:
                (extra / REQUESTS_DIR / f"{example['signature_name']}.{form}.json").write_text(
                    json.dumps(example[f"{form}_request"], ensure_ascii=False) + "\n", encoding="utf-8")
    signature, inputs = requests[0]
    (extra / GRPC_FILE).write_text(grpc_client(model_name, signature, inputs), encoding="utf-8")


# --- REST: what TF Serving's JSON looks like -----------------------------------------------------

def to_json(value, binary: bool):
    """A numpy value as TF Serving writes it in JSON: lists of numbers, strings as UTF-8 text or,
    if `binary` (or not valid UTF-8), {"b64": ...}."""
    value = np.asarray(value)
    if value.dtype.kind in "SO":
        def one(x):
            x = x if isinstance(x, bytes) else str(x).encode("utf-8")
            if not binary:
                try:
                    return x.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return {"b64": base64.b64encode(x).decode("ascii")}

        return np.vectorize(one, otypes=[object])(value).tolist() if value.ndim else one(value.item())
    if value.dtype.kind == "U":
        return value.tolist()
    if value.dtype.kind == "f":
        return np.round(value.astype(np.float64), 6).tolist()
    return value.tolist()


def from_json(value, dtype: str) -> np.ndarray:
    """A JSON value as TF Serving reads it into a tensor of `dtype` ({"b64": ...} -> bytes)."""
    def one(x):
        if isinstance(x, dict):
            return base64.b64decode(x["b64"])
        return x.encode("utf-8") if isinstance(x, str) else x

    if dtype == "string":
        out = np.empty(_shape(value), dtype=object)
        out.reshape(-1)[:] = [one(x) for x in _flatten(value)]
        return out
    return np.asarray(value, dtype=dtype)


def _shape(value) -> tuple:
    """The shape of nested JSON lists ({"b64": ...} objects are leaves, which np.shape misreads)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return tuple(shape)


def _flatten(value):
    if isinstance(value, list):
        for x in value:
            yield from _flatten(x)
    else:
        yield value


def rest_example(model_name: str, signature: str, inputs: dict, outputs: dict) -> dict:
    """One :predict example in both forms, with the response TF Serving gives each."""
    columnar_request = {"signature_name": signature,
                        "inputs": {k: to_json(v, k.endswith("_bytes")) for k, v in inputs.items()}}
    example = {"url": f"http://localhost:8501/v1/models/{model_name}:predict", "signature_name": signature,
               "inputs_request": columnar_request, "outputs_response": encode_response(outputs, "inputs")}
    if all(np.ndim(v) >= 1 for v in inputs.values()):  # the row form needs every input batched
        rows = len(next(iter(inputs.values())))
        example["instances_request"] = {"signature_name": signature, "instances": [
            {k: to_json(np.asarray(v)[i], k.endswith("_bytes")) for k, v in inputs.items()} for i in range(rows)]}
        example["predictions_response"] = encode_response(outputs, "instances")
    else:
        example["instances_request"] = None
        example["why_no_instances"] = "an input is a scalar (one value for the whole request): only the columnar form"
    return example


def encode_response(outputs: dict, form: str) -> dict:
    """Named output arrays -> TF Serving's response body: {"predictions": [one object per row]}
    for a request in the `instances` form, {"outputs": {name: values}} for the `inputs` form."""
    if form == "inputs":
        return {"outputs": {k: to_json(v, k.endswith("_bytes")) for k, v in outputs.items()}}
    rows = len(next(iter(outputs.values())))
    return {"predictions": [{k: to_json(np.asarray(v)[i], k.endswith("_bytes")) for k, v in outputs.items()}
                            for i in range(rows)]}


def decode_request(body: dict, input_specs: dict) -> dict:
    """A REST :predict body -> named input arrays, as TF Serving reads it (both forms)."""
    if "instances" in body:
        rows = body["instances"]
        return {name: from_json([row[name] for row in rows], spec["dtype"]) for name, spec in input_specs.items()}
    return {name: from_json(body["inputs"][name], spec["dtype"]) for name, spec in input_specs.items()}


# --- gRPC ----------------------------------------------------------------------------------------

def grpc_client(model_name: str, signature: str, inputs: dict) -> str:
    """A runnable Python client for TF Serving's gRPC API (port 8500) with this request."""
    literals = {k: to_json(v, True) for k, v in inputs.items()}
    dtypes = {k: "string" if np.asarray(v).dtype.kind in "SUO" else str(np.asarray(v).dtype) for k, v in inputs.items()}
    return f'''"""gRPC client for the TF Serving model {model_name!r} (signature {signature!r}).

    pip install tensorflow-serving-api grpcio
    python grpc_client.py [HOST:PORT]      # default localhost:8500

The request holds real test inputs of the app ({{"b64": ...}} marks raw bytes).
"""

import base64
import sys

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

INPUTS = {json.dumps(literals, ensure_ascii=False)}
DTYPES = {json.dumps(dtypes)}


def value(x, dtype):
    if dtype != "string":
        return np.asarray(x, dtype=dtype)
    unpack = lambda v: [unpack(i) for i in v] if isinstance(v, list) else (
        base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode("utf-8"))
    return np.array(unpack(x), dtype=object)


def main(target="localhost:8500"):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = {model_name!r}, {signature!r}
    for name, x in INPUTS.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value(x, DTYPES[name])))
    response = stub.Predict(request, timeout=30.0)
    for name, tensor in sorted(response.outputs.items()):
        print(name, tf.make_ndarray(tensor))


if __name__ == "__main__":
    main(*sys.argv[1:2])
'''
