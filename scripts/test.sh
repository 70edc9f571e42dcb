#!/usr/bin/env bash
# The test command (README, .ci/run): install into .venv, lint with ruff, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest -q --durations=15 "$@"  # the slowest tests, to keep the suite under 15 minutes
