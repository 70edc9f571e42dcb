"""Export of a trained run: a SavedModel in TF Serving's layout, builtin-op TFLite models beside it,
a parity check that Keras, the SavedModel (in a separate process) and TFLite agree, and a manifest.

Every app goes through the same code: the app only says which functions to export
(`App.serving`, `App.tflite_models`) and which inputs to compare (`App.parity_cases`).
"""

# `rnn-apps export --quantize`: float32 weights and math (the parity-checked reference); int8
# weights, float activations (dynamic range); float16 weights; int8 weights and activations
# calibrated on recorded inputs of every signature (float kept where an op has no int8 kernel, so
# inputs and outputs stay as they are). Here, not in tflite.py: the CLI reads it without TensorFlow.
QUANTIZE_MODES = ("none", "dynamic", "float16", "int8")
