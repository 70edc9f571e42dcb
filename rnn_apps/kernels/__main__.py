"""python -m rnn_apps.kernels [--rebuild]: builds the C++ op now (scripts/install.sh), not in the first
training step, and says in one line how (compiler and flags) or why not (the compiler's first error
line; exit status 1). --rebuild tries again where a failed build is remembered."""

import sys

from rnn_apps import kernels

record = kernels.build(rebuild="--rebuild" in sys.argv[1:])
print("SimpleRNN kernel:", kernels.describe(record))
sys.exit(1 if "error" in record else 0)
