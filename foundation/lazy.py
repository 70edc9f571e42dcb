"""TensorFlow, imported when first used rather than when a module is imported.

The apps' models, decoding steps and layers are Keras (`keras.ops`), so they build and train on any
Keras backend; their exports, input pipelines and serving code are TensorFlow. A module that has
both writes `from foundation.lazy import tensorflow as tf`: on a machine without TensorFlow (the
GPU machine: Keras on JAX, tests/test_backends.py) the model code still imports and runs, and only a
TensorFlow call fails, with Python's own "No module named 'tensorflow'".
"""

import importlib


class LazyModule:
    """A module's attributes, the module imported at the first one asked for."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute):
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self):
        return f"<lazily imported module {self._name!r}>"


tensorflow = LazyModule("tensorflow")
