"""rnn_apps: one SimpleRNN app per cs231n RNN topology, from public data to TF Serving and LiteRT.

Apps live in `rnn_apps/apps/<name>.py`, each exposing `APP`; see `rnn_apps.registry`.
"""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) buries the CLI's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"
