"""export/gpu_delegate.py: what a model card says keeps a phone's GPU delegate from taking a file."""

import re

import tensorflow as tf

from export import gpu_delegate, tflite
from rnn_apps.app import Endpoint


def convert(tmp_path, fn, spec) -> str:
    path = tmp_path / f"{fn.__name__}.tflite"
    path.write_bytes(tflite.convert([Endpoint("serving_default", fn, [spec])]))
    return path


def test_a_float_graph_is_taken_whole(tmp_path):
    def floats(x):
        return {"y": tf.tanh(x * 2.0 + 1.0)}

    entry = gpu_delegate.card_entry(convert(tmp_path, floats, tf.TensorSpec([1, 4], tf.float32, name="x")))
    assert entry["gpu_delegate"]["whole_file"] and entry["gpu_delegate"]["ops_left_to_cpu"] == []
    assert re.fullmatch(r"\d+\.\d+\.\d+", entry["min_runtime_version"])


def test_int32_selects_gathers_and_ops_without_a_kernel_are_named(tmp_path):
    table = tf.constant([[5, 6], [7, 8], [9, 10]], tf.int32)

    def ints(ids):
        clamped = tf.where(ids < 0, tf.ones_like(ids), ids)  # SELECT_V2 between int32 values
        rows = tf.gather(table, clamped[0])  # GATHER of int32 data
        return {"rows": rows, "log_p": tf.nn.log_softmax(tf.cast(rows, tf.float32))}

    found = gpu_delegate.blockers(convert(tmp_path, ints, tf.TensorSpec([1, 2], tf.int32, name="ids")))
    reasons = {(b["op"], b["why"]) for b in found}
    assert ("GATHER", "int32 data") in reasons and ("LOG_SOFTMAX", "no GPU kernel") in reasons
    assert any(op.startswith("SELECT") and why == "selects between int32 values" for op, why in reasons)
    assert {b["signature"] for b in found} == {"serving_default"}
    assert not gpu_delegate.card_entry(tmp_path / "ints.tflite")["gpu_delegate"]["whole_file"]
