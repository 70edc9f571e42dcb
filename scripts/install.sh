#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project with its test extra from setup.cfg.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing rnn_apps and its dependencies into .venv (TensorFlow, JAX, LiteRT: several minutes the first time)"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
echo "== building the SimpleRNN training kernel (C++, about a minute the first time; cached after)"
# The SimpleRNN recurrence's C++ op (rnn_apps/kernels), built now rather than in the first training step.
.venv/bin/python -m rnn_apps.kernels || echo "SimpleRNN training will run TensorFlow's loops (slower); the tests skip the kernel's own checks."
echo "== installing LiteRT.js for the browser page (npm ci in export/web; rnn-apps demo copies it)"
if [ -f export/web/node_modules/@litertjs/core/dist/index.js ]; then
  echo "LiteRT.js already installed"
elif command -v npm > /dev/null; then
  (cd export/web && npm ci --no-audit --no-fund --loglevel=error) || echo "npm ci failed: rnn-apps demo will try again"
else
  echo "npm is missing: rnn-apps demo needs Node.js with npm; the browser test will skip and say so"
fi
