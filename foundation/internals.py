"""Every private Keras, TensorFlow (and sacrebleu) API this project uses, in one place (issue 28).

Keras is pinned to the minor versions tested (setup.cfg); tests/test_internals.py checks each of
these against the installed versions and fails by name when an upgrade moves or changes one. Code
elsewhere calls these functions, never `keras.src` or `tensorflow.python` itself. (LiteRT's one
private call, the op list of a .tflite file, sits in export/tflite.py with its own test there.)
"""

# Each function imports what it needs when called: the CLI imports this module (through
# rnn_apps/distribute.py) and must answer --help and argument errors without loading Keras or TensorFlow.


def keras_rnn(step, inputs, initial_states, **options):
    """keras.src.backend.rnn: the loop the stock RNN layers run on every backend (FastSimpleRNN's
    `unroll=True` path: the unrolled graphs that convert to builtin TFLite ops)."""
    from keras.src import backend

    return backend.rnn(step, inputs, initial_states, **options)


def set_keras_mask(tensor, mask) -> None:
    """Attach a mask that Keras's loss reduction honours (a padding-aware loss averages over the
    valid targets only)."""
    from keras.src import backend

    backend.set_keras_mask(tensor, mask)


def in_xla_context() -> bool:
    """Whether the graph being traced is compiled by XLA (`jit_compile=True`), which cannot compile
    the custom C++ op."""
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.ops import control_flow_util

    return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))


def forget_distribute_strategy(model) -> None:
    """keras-team/keras#20585: a multi-worker fit whose first-batch build is skipped must find the
    strategy in the scope, not on the model (rnn_apps/distribute.py)."""
    model._distribute_strategy = None  # noqa: SLF001


def patch_multi_worker_metric_reduction() -> None:
    """Reduce the per-step metrics of a multi-worker fit over no axis (they are scalars), as the
    mean over workers, instead of Keras 3.15's MEAN over axis 0, which fails on a scalar."""
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "patched_by_rnn_apps", False):
        return
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):  # noqa: SLF001
            import tensorflow as tf

            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.patched_by_rnn_apps = True
    trainer.reduce_per_replica = reduce_per_replica


def save_each_variable_once(archive) -> None:
    """Keras 3.15's ExportArchive saves every weight twice in a SavedModel: as the Keras variables
    that `track()` lists (`variables/...`) and as the TensorFlow variables its endpoints capture
    (`_all_variables/...`): twice the disk and twice the memory TF Serving loads. The endpoints
    need only the second; this empties the first lists before `write_out`. `loaded.variables` is
    then gone from the reloaded SavedModel (`loaded._all_variables` holds them)."""
    trackable = archive._tf_trackable  # noqa: SLF001
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        if not isinstance(getattr(trackable, name, None), list):
            raise AttributeError(f"ExportArchive._tf_trackable.{name} is no longer a list: see foundation/internals.py")
        setattr(trackable, name, [])


def tflite_metadata_schema():
    """The TFLite Metadata schema's generated flatbuffer classes (metadata_schema.fbs), as the
    `mediapipe` 1.x wheel ships them in mediapipe/tasks/metadata/. Loaded from that file alone:
    importing the `mediapipe` package runs its whole start-up (OpenCV and more, seconds), and its
    own metadata writers do not import in 1.x. The module needs only `flatbuffers`."""
    import importlib.util
    import os
    import sys

    name = "rnn_apps_tflite_metadata_schema"
    if name not in sys.modules:
        found = importlib.util.find_spec("mediapipe")
        if found is None or found.origin is None:
            raise ImportError("mediapipe is not installed: the TFLite Metadata schema comes from its wheel")
        path = os.path.join(os.path.dirname(found.origin), "tasks", "metadata", "metadata_schema_py_generated.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def bleu_statistics(hypotheses: list, references: list, tokenize: str) -> list:
    """sacrebleu's sufficient statistics of each sentence (lengths, matched and total n-grams):
    corpus BLEU is a function of their sums, so a bootstrap resamples sentences and sums."""
    from sacrebleu.metrics import BLEU

    return [[int(v) for v in row] for row in BLEU(tokenize=tokenize)._extract_corpus_statistics(
        list(hypotheses), [list(references)])]


def bleu_from_statistics(summed: list, tokenize: str) -> float:
    """Corpus BLEU (0..100) from summed sentence statistics, as sacrebleu.corpus_bleu computes it."""
    from sacrebleu.metrics import BLEU

    return float(BLEU(tokenize=tokenize)._compute_score_from_stats([float(v) for v in summed]).score)
