"""Training on several devices or machines with tf.distribute: `rnn-apps train ... --strategy`.

    none          one process, TensorFlow's default device placement (the default)
    mirrored      tf.distribute.MirroredStrategy: every local GPU (or the CPU) a replica
    multi-worker  tf.distribute.MultiWorkerMirroredStrategy over the cluster in TF_CONFIG

The batch size of the config is the global batch: tf.distribute splits each batch across the
replicas (with one dataset per worker, auto-sharded by data) and sums the gradients, so N workers
take the same steps as one process with the same batch. Every worker runs the same command with the
same --out, on storage they all see: the chief (worker 0) writes the run (config, vocabularies,
checkpoints, state, logs); the others train in step and write nothing there; `--resume` on every
worker continues from the chief's last checkpoint.

    # on each of two machines, with TF_CONFIG naming both and this one's index:
    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}' \\
        rnn-apps train sentiment --data sst2 --out /shared/runs/sentiment --strategy multi-worker

Keras 3.15's fit() does not run under MultiWorkerMirroredStrategy as shipped (keras-team/keras
#20585, open): it averages the first input batch across workers to build the model, which fails
for integer ids ("Attempt to convert a value (PerReplica...)"), and it reduces each step's scalar
metrics with MEAN over axis 0 ("Invalid reduction dimension 0 for input with 0 dimensions").
`fit_in_scope` works around both (tests/test_distribute.py runs two workers on 127.0.0.1 against
one process): our models are built before fit, so the first is skipped; the second reduces the
metrics over no axis. XLA does not compile the collective all-reduce on CPU, so a multi-worker
run trains without it.
"""

import contextlib
import json
import os

from foundation import internals
from foundation.errors import UserError

STRATEGIES = ("none", "mirrored", "multi-worker")


def make(name: str):
    """The tf.distribute strategy called `name`, or None for `none`."""
    import tensorflow as tf

    if name == "none":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        _check_tf_config()
        internals.patch_multi_worker_metric_reduction()
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def _check_tf_config():
    text = os.environ.get("TF_CONFIG", "")
    try:
        tf_config = json.loads(text) if text else None
        workers = tf_config["cluster"]["worker"]
        index = int(tf_config["task"]["index"])
        valid = isinstance(workers, list) and 0 <= index < len(workers)
    except (ValueError, TypeError, KeyError):
        valid = False
    if not valid:
        example = '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, "task": {"type": "worker", "index": 0}}'
        raise UserError(f"--strategy multi-worker needs TF_CONFIG naming the cluster and this worker, e.g. {example}; "
                        f"got {text[:200]!r}")


def _cluster(strategy) -> tuple:
    """(cluster spec as a dict, this task's type, this task's index); empty without a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is None or not resolver.cluster_spec().as_dict():
        return {}, None, 0
    return resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id


def is_chief(strategy) -> bool:
    """Whether this process writes the run: a `chief` task if the cluster has one, else worker 0."""
    spec, task_type, index = _cluster(strategy)
    if not spec:
        return True
    return task_type == "chief" if "chief" in spec else index == 0


def workers(strategy) -> int:
    """How many processes train together."""
    spec, _, _ = _cluster(strategy)
    return max(1, sum(len(tasks) for tasks in spec.values()))


def scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def fit_in_scope(model, strategy, dataset, **fit_arguments):
    """model.fit under `strategy`. With several workers Keras's first-batch build is skipped (see
    the module docstring): the model is built, and its optimizer is built here, in the strategy's
    scope; Keras then finds the strategy in the scope instead of on the model."""
    if strategy is None:
        return model.fit(dataset, **fit_arguments)
    with strategy.scope():
        if workers(strategy) > 1:
            model.optimizer.build(model.trainable_variables)
            internals.forget_distribute_strategy(model)  # keras-team/keras#20585, see above
        return model.fit(dataset, **fit_arguments)
