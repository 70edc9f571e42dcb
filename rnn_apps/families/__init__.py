"""Topology families: what the apps of one topology share, written once.

- `classify.ClassifierApp` — one-to-one and many-to-one: an input in, one label out (`digits`,
  `sentiment`).
- `label_steps.LabelSteps` — many-to-many, one output per step, over pieces of text (`tagger`, and
  `tests/app_running_parity.py`, an app defined in one file).
- Generating apps (`translate`, `caption`, `charlm`) share their decoding loops rather than a base
  class so far: `rnn_apps/decoding.py` (greedy and beam search over a model's step, in the graph) and
  `export/step_loop.py` (the same loops over a .tflite's step signature: what a phone runs).
  `frames` labels every frame but of float features, with its own streaming step signature.

An app subclasses its family's class and writes what is its own: its data, its preprocessing, its
Keras model and its phone client (`rnn_apps/app.py` lists the hooks).
"""
