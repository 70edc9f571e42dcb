#!/usr/bin/env bash
# The test command (README, .ci/run): install into .venv, lint with ruff, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
# Two processes, each taking whole test files (session fixtures: each trains the tiny runs it needs);
# --durations: the slowest tests, to keep the suite under 15 minutes.
.venv/bin/python -m pytest -q -n 2 --dist loadfile --durations=15 "$@"
