"""What every layer of the project shares and nothing else: the errors the CLI turns into one line
(`errors`), crash-safe file writes (`files`), the lines a long step prints (`progress`), the
HTML pages' style (`html`) and every private Keras/TensorFlow API the project uses (`internals`).

The layers run one way: `rnn_apps` (apps, CLI) imports `export` and `pipelines`; those two import
only `foundation` (tests/test_architecture.py checks it); `foundation` imports nothing of the project.
"""
