"""python -m rnn_apps.kernels: builds the C++ op now (scripts/install.sh), not in the first training step."""

from rnn_apps import kernels

print("SimpleRNN kernel:", "built" if kernels.load() is not None else "not built (see the warning above)")
