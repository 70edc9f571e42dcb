"""Data for rnn_apps: sources read datasets from disk or TFDS into raw examples (`Splits`);
`batching` turns those into tf.data input pipelines.

What changes the data on disk belongs to a source module; what happens while reading belongs to
the pipeline (TFDS's rule).
"""
