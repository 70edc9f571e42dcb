"""Topology families: what the apps of one topology share, written once.

- `classify.ClassifierApp` — one-to-one and many-to-one: an input in, one label out (`digits`);
  `classify.TextClassifierApp`, one of raw text, writes the tokens' path too (`sentiment`).
- `label_steps.LabelSteps` — many-to-many, one output per step, over pieces of text (`tagger`, and
  `tests/app_running_parity.py`, an app defined in one file).
- `label_frames.LabelFrames` — the same topology over frames of float features or pixels (`frames`):
  the phone streams them through a `step` signature with the states (or reads a whole clip).
- `generate.GeneratingApp` — every app that writes a sequence: the phone's greedy loop (a start
  from one input, then the step signature token by token) and query's rows, once.
- `language_model.LanguageModelApp(GeneratingApp)` — many-to-many while training, one-to-many while
  writing, over characters, with no encoder: its prime is read through `step`; generate (sampling),
  score, evaluate over whole splits, the .tflite's `step` and its card, parity, phone quality
  (`charlm`).
- `encode_decode.EncoderDecoderApp(GeneratingApp)` — one-to-many and many-to-many encoder-decoder:
  an encoder reads the input once, a decoder step writes a sentence (`translate`, `caption`):
  decoding in the graph, the SavedModel signatures, the .tflite's encode + decode_step and its card,
  the phone start, parity and phone quality.

An app subclasses its family's class and writes what is its own: its data, its preprocessing, its
Keras model and its phone client (`rnn_apps/app.py` lists the hooks).
"""
