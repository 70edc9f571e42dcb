"""Export of a trained run: a SavedModel in TF Serving's layout, builtin-op TFLite models beside it,
a parity check that Keras, the SavedModel (in a separate process) and TFLite agree, and a manifest.

Every app goes through the same code: the app only says which functions to export
(`App.serving`, `App.tflite_models`) and which inputs to compare (`App.parity_cases`).
"""
