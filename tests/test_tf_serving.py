"""The TF Serving model repository every export writes (export/serving.py), checked without the
server binary: models.config parses as TF Serving's proto and keeps every model's entry, the
warmup records cover every signature (the export replays them in a fresh process, or publishes
nothing), the REST examples read as TF Serving reads JSON give their stored responses, and
saved_model_cli shows and runs the SavedModel."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from export import serving
from rnn_apps import registry
from tests.test_cli import assert_one_line_error, invoke

APPS = registry.names()


def parse_config(path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    return text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())


def close(got, expected) -> bool:
    """JSON values equal, numbers within 1e-4 (they were rounded to 6 decimals when written)."""
    if isinstance(expected, dict):
        return isinstance(got, dict) and got.keys() == expected.keys() and all(close(got[k], v)
                                                                               for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(map(close, got, expected))
    if isinstance(expected, float) or isinstance(got, float):
        return abs(got - expected) <= 1e-4
    return got == expected


@pytest.mark.parametrize("name", APPS)
def test_every_signature_has_warmup_records_and_rest_examples_that_reproduce(name, tiny_export):
    root, entry = tiny_export(name)
    saved_model = root / name / "1"
    signatures = entry["artefacts"][0]["signatures"]
    config = parse_config(root / serving.CONFIG_FILE).model_config_list.config
    assert [(c.name, c.base_path, c.model_version_policy.latest.num_versions) for c in config] == \
        [(name, f"/models/{name}", 1)]
    warmup = serving.read_warmup(saved_model)
    assert sorted(signature for signature, _ in warmup) == sorted(signatures)
    assert entry["artefacts"][0]["tf_serving"]["warmup_requests"] == len(signatures)
    examples = json.loads((saved_model / "assets.extra" / serving.REST_FILE).read_text(encoding="utf-8"))
    assert sorted(e["signature_name"] for e in examples) == sorted(signatures)
    loaded = tf.saved_model.load(str(saved_model))
    for example in examples:
        specs = signatures[example["signature_name"]]["inputs"]
        for form, response in (("inputs", "outputs_response"), ("instances", "predictions_response")):
            body = example[f"{form}_request"]
            if body is None:  # a scalar option (charlm's length) has no row form
                assert form == "instances" and example["why_no_instances"]
                continue
            assert body["signature_name"] == example["signature_name"]
            # the same body, ready for `curl -d @file`
            posted = saved_model / "assets.extra" / serving.REQUESTS_DIR / f"{example['signature_name']}.{form}.json"
            assert json.loads(posted.read_text(encoding="utf-8")) == body
            inputs = serving.decode_request(json.loads(json.dumps(body)), specs)
            outputs = loaded.signatures[example["signature_name"]](
                **{k: tf.constant(v, dtype=specs[k]["dtype"]) for k, v in inputs.items()})
            got = serving.encode_response({k: v.numpy() for k, v in outputs.items()}, form)
            assert close(got, example[response]), (example["signature_name"], form)
    # every app's serving_default takes TF Serving's row form (`instances`) and batches: each input batched
    default = next(e for e in examples if e["signature_name"] == "serving_default")
    assert default["instances_request"] is not None and all(
        spec["shape"] and spec["shape"][0] == -1 for spec in signatures["serving_default"]["inputs"].values())
    client = (saved_model / "assets.extra" / serving.GRPC_FILE).read_text()
    compile(client, serving.GRPC_FILE, "exec")
    assert f"request.model_spec.name, request.model_spec.signature_name = {name!r}, 'serving_default'" in client


def test_models_config_lists_every_model_of_the_manifest_once(tmp_path):
    """The exporter rewrites models.config from the whole manifest under its lock: re-exporting one
    model keeps the others' entries."""
    manifest = {"exports": [{"model_name": "digits", "version": 1}, {"model_name": "sentiment", "version": 1},
                            {"model_name": "digits", "version": 2}]}
    serving.write_server_files(tmp_path, manifest, 256)
    config = parse_config(tmp_path / serving.CONFIG_FILE).model_config_list.config
    assert [(c.name, c.base_path) for c in config] == [("digits", "/models/digits"), ("sentiment", "/models/sentiment")]
    assert not list(tmp_path.glob("*.tmp"))


def test_rest_json_reads_bytes_and_text_as_tf_serving_does():
    image = bytes(range(256))
    body = {"instances": [{"image_bytes": {"b64": "AAE="}, "text": "héllo"}, {"image_bytes": {"b64": ""}, "text": ""}]}
    specs = {"image_bytes": {"dtype": "string"}, "text": {"dtype": "string"}}
    inputs = serving.decode_request(body, specs)
    assert inputs["image_bytes"].tolist() == [b"\x00\x01", b""] and inputs["text"].tolist() == ["héllo".encode(), b""]
    assert serving.to_json(np.array([image], dtype=object), binary=False) == [{"b64": serving.base64.b64encode(
        image).decode()}]  # not UTF-8: base64 even where text is expected
    columnar = serving.decode_request({"inputs": {"pixels": [[1.5, 2.0]]}}, {"pixels": {"dtype": "float32"}})
    assert columnar["pixels"].dtype == np.float32 and columnar["pixels"].shape == (1, 2)


@pytest.mark.parametrize("name", ["caption"])  # bytes (JPEG) in: the hardest input to hand the CLI
def test_saved_model_cli_shows_and_runs_the_export(name, tiny_export, tmp_path):
    root, entry = tiny_export(name)
    saved_model = root / name / "1"
    cli = [sys.executable, "-c", "from tensorflow.python.tools.saved_model_cli import main; main()"]
    shown = subprocess.run([*cli, "show", "--all", "--dir", str(saved_model)], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "signature_def['serving_default']" in shown.stdout
    example = next(e for e in json.loads((saved_model / "assets.extra" / serving.REST_FILE).read_text())
                   if e["signature_name"] == "serving_default")
    specs = entry["artefacts"][0]["signatures"]["serving_default"]["inputs"]
    inputs = serving.decode_request(example["inputs_request"], specs)
    files = []
    for key, value in inputs.items():  # binary strings (JPEG bytes) as .npy files: --input_exprs splits on ";"
        np.save(tmp_path / f"{key}.npy", value, allow_pickle=True)
        files.append(f"{key}={tmp_path / key}.npy")
    ran = subprocess.run([*cli, "run", "--dir", str(saved_model), "--tag_set", "serve", "--signature_def",
                          "serving_default", "--inputs", ";".join(files)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr[-2000:]
    first_output = sorted(example["outputs_response"]["outputs"])[0]
    assert f"Result for output key {first_output}" in ran.stdout


def test_version_labels_serve_every_labelled_version_by_name(tiny_run, tmp_path):
    """`export --label canary` and `rnn-apps label` give models.config version_labels (read back with
    tensorflow-serving-api's ModelServerConfig) and a version policy that loads each labelled version,
    so TF Serving needs no --allow_version_labels_for_unavailable_models."""
    root = tmp_path / "exports"
    for extra in (["--label", "stable"], []):  # version 2, unlabelled, is the newest
        result = invoke("export", tiny_run("digits").dir, "--out", root, *extra)
        assert result.exit_code == 0, result.output
    config = parse_config(root / serving.CONFIG_FILE).model_config_list.config[0]
    assert dict(config.version_labels) == {"stable": 1}
    assert list(config.model_version_policy.specific.versions) == [1, 2]
    canary = invoke("label", root, "canary", "--name", "digits", "--version", "2")
    assert canary.exit_code == 0 and "canary -> version 2, stable -> version 1" in canary.output
    promoted = invoke("label", root, "stable", "--name", "digits", "--version", "2")
    assert promoted.exit_code == 0 and "stable -> version 2" in promoted.output
    config = parse_config(root / serving.CONFIG_FILE).model_config_list.config[0]
    assert dict(config.version_labels) == {"stable": 2, "canary": 2}
    assert list(config.model_version_policy.specific.versions) == [2]
    assert_one_line_error(invoke("label", root, "stable", "--name", "digits", "--version", "9"),
                          "lists no finished version 9 of 'digits'")
    assert_one_line_error(invoke("label", root, "Stable!", "--name", "digits", "--version", "1"), "a label is")


def test_batching_parameters_parse_as_tf_servings_batching_parameters(tmp_path):
    """batching_parameters.txt, read with BatchingParameters' fields as session_bundle_config.proto
    declares them (that proto is not in tensorflow-serving-api's wheel, so its fields are declared
    here): batches up to the signatures' chunk, sizes that include the warmup's."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

    from export import exporter

    proto = descriptor_pb2.FileDescriptorProto(name="batching_check.proto", package="check",
                                               dependency=["google/protobuf/wrappers.proto"])
    message = proto.message_type.add(name="BatchingParameters")
    for number, (name, kind) in enumerate([("max_batch_size", "Int64Value"), ("batch_timeout_micros", "Int64Value"),
                                           ("thread_pool_name", "StringValue"), ("num_batch_threads", "Int64Value"),
                                           ("max_enqueued_batches", "Int64Value")], 1):
        message.field.add(name=name, number=number, type=11, type_name=f".google.protobuf.{kind}", label=1)
    message.field.add(name="allowed_batch_sizes", number=6, type=3, label=3)
    message.field.add(name="pad_variable_length_inputs", number=7, type=8, label=1)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(proto)
    parameters = message_factory.GetMessageClass(pool.FindMessageTypeByName("check.BatchingParameters"))()
    serving.write_server_files(tmp_path, {"exports": []}, exporter.SERVING_CHUNK)
    text_format.Parse((tmp_path / serving.BATCHING_FILE).read_text(), parameters)
    assert parameters.max_batch_size.value == exporter.SERVING_CHUNK
    assert list(parameters.allowed_batch_sizes)[-1] == exporter.SERVING_CHUNK  # TF Serving requires it last
    assert serving.EXAMPLES in parameters.allowed_batch_sizes and parameters.pad_variable_length_inputs
