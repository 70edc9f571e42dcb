"""The private Keras, TensorFlow and LiteRT APIs this project relies on (foundation/internals.py and
export/tflite.op_names), checked against the installed versions: an upgrade that moves or changes
one fails here, by name, before it fails somewhere inside training or export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from foundation import internals


def test_keras_rnn_runs_a_step_function_over_time():
    def step(x, states):
        total = states[0] + x
        return total, [total]

    inputs = np.arange(12, dtype="float32").reshape(2, 3, 2)
    last, outputs, states = internals.keras_rnn(step, inputs, [np.zeros((2, 2), "float32")], unroll=True,
                                                input_length=3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs), np.cumsum(inputs, axis=1))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(last), inputs.sum(axis=1))


def test_a_set_keras_mask_weights_the_loss_reduction():
    losses = tf.constant([[1.0, 5.0], [3.0, 7.0]])
    internals.set_keras_mask(losses, tf.constant([[True, False], [True, False]]))
    # what Keras's loss reduction reads (no public reader: the attribute is the interface)
    np.testing.assert_array_equal(losses._keras_mask.numpy(), [[True, False], [True, False]])  # noqa: SLF001
    from keras.src.losses.loss import reduce_weighted_values

    reduced = reduce_weighted_values(losses, sample_weight=None, mask=losses._keras_mask,  # noqa: SLF001
                                     reduction="sum_over_batch_size")
    assert float(reduced) == 2.0  # (1 + 3) / 2: the masked 5 and 7 left out


def test_the_xla_context_is_seen_only_inside_jit_compiled_functions():
    seen = {}

    @tf.function(jit_compile=True)
    def compiled(x):
        seen["compiled"] = internals.in_xla_context()
        return x + 1

    @tf.function
    def plain(x):
        seen["plain"] = internals.in_xla_context()
        return x + 1

    compiled(tf.constant(1.0)), plain(tf.constant(1.0))
    assert seen == {"compiled": True, "plain": False} and internals.in_xla_context() is False


def test_the_multi_worker_pieces_of_keras_are_where_the_patch_expects_them():
    from keras.src.backend.tensorflow import trainer

    assert callable(trainer._collective_all_reduce_multi_worker)  # noqa: SLF001
    internals.patch_multi_worker_metric_reduction()
    internals.patch_multi_worker_metric_reduction()  # once only
    assert trainer.reduce_per_replica.patched_by_rnn_apps
    # one replica, no cluster: the stock reduction still runs, unchanged
    strategy = tf.distribute.get_strategy()
    assert float(trainer.reduce_per_replica(tf.constant(2.0), strategy, "auto")) == 2.0
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert hasattr(model, "_distribute_strategy")
    internals.forget_distribute_strategy(model)
    assert model._distribute_strategy is None  # noqa: SLF001


def test_litert_lists_a_models_ops(tmp_path):
    from export import tflite

    model = keras.Sequential([keras.Input((3,), batch_size=1), keras.layers.Dense(2, activation="tanh")])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    assert {"FULLY_CONNECTED", "TANH"} <= set(tflite.op_names(converter.convert()))


def test_a_saved_model_keeps_each_weight_once(tmp_path):
    """Keras 3.15's ExportArchive would save every weight twice (`variables/` and `_all_variables/`);
    export/savedmodel.py drops the first copy, and the reloaded model answers the same."""
    import keras
    import numpy as np
    import tensorflow as tf

    from export import savedmodel
    from rnn_apps.app import Endpoint

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1000), keras.layers.Dense(2)])
    weights = sum(w.size for w in model.get_weights()) * 4
    endpoint = Endpoint("serving_default", lambda x: {"y": model(x)}, [tf.TensorSpec([None, 3], tf.float32, name="x")],
                        track=[model])
    savedmodel.write(tmp_path / "once", [endpoint])
    stored = tf.train.load_checkpoint(str(tmp_path / "once" / "variables" / "variables"))
    assert {key.split("/")[0] for key in stored.get_variable_to_shape_map()} == {"_all_variables",
                                                                                 "_CHECKPOINTABLE_OBJECT_GRAPH"}
    size = sum(p.stat().st_size for p in (tmp_path / "once" / "variables").iterdir())
    assert weights <= size < 1.2 * weights  # once, not twice
    x = np.ones((2, 3), np.float32)
    served = tf.saved_model.load(str(tmp_path / "once")).signatures["serving_default"](x=tf.constant(x))["y"]
    np.testing.assert_allclose(served.numpy(), model(x).numpy(), rtol=1e-6)


def test_the_tflite_metadata_schema_loads_from_the_mediapipe_wheel():
    schema = internals.tflite_metadata_schema()
    meta = schema.ModelMetadataT()
    meta.name = "x"
    assert {"AssociatedFileT", "TensorMetadataT", "SubGraphMetadataT"} <= set(dir(schema))
    assert schema.AssociatedFileType.TENSOR_AXIS_LABELS != schema.AssociatedFileType.VOCABULARY


def test_sacrebleus_sentence_statistics_sum_to_its_corpus_bleu():
    import sacrebleu

    from foundation import internals

    hypotheses = ["the cat sat on the mat", "a dog", "hello there friend", ""]
    references = ["the cat is on the mat", "the dog", "hello there my friend", "nothing"]
    for tokenize in ("13a", "char"):
        stats = internals.bleu_statistics(hypotheses, references, tokenize)
        assert len(stats) == len(hypotheses)
        summed = [sum(column) for column in zip(*stats, strict=True)]
        expected = sacrebleu.corpus_bleu(hypotheses, [references], tokenize=tokenize).score
        assert internals.bleu_from_statistics(summed, tokenize) == pytest.approx(expected, abs=1e-9)
