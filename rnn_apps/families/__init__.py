"""Topology families: what the apps of one topology share, written once.

- `classify.ClassifierApp` — one-to-one and many-to-one: an input in, one label out (`digits`,
  `sentiment`).
- `label_steps.LabelSteps` — many-to-many, one output per step, over pieces of text (`tagger`, and
  `tests/app_running_parity.py`, an app defined in one file).
- `encode_decode.EncoderDecoderApp` — one-to-many and many-to-many encoder-decoder: an encoder reads
  the input once, a decoder step writes a sentence (`translate`, `caption`): decoding in the graph,
  the SavedModel signatures, the .tflite's encode + decode_step and its card, the phone loop, parity,
  query and phone quality.
- `charlm` (a language model: no encoder, sampling from a prime) and `frames` (a label per frame of
  float features, with its own streaming step signature) are apps of their own so far; they share
  `rnn_apps/decoding.py` and `export/step_loop.py` (the loops in the graph and on a phone).

An app subclasses its family's class and writes what is its own: its data, its preprocessing, its
Keras model and its phone client (`rnn_apps/app.py` lists the hooks).
"""
