#!/usr/bin/env bash
# The test command (README, .ci/run): install into .venv, lint with ruff, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check .
# The browser page's test drives a real Chromium: Debian's, installed where missing and apt can (root);
# without one that test skips and says so.
if ! command -v chromium > /dev/null && command -v apt-get > /dev/null && [ "$(id -u)" = 0 ]; then
  echo "== installing Chromium for the browser test (apt, a minute or two)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium > /dev/null 2>&1 \
    || { apt-get update -q > /dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium > /dev/null 2>&1; } \
    || echo "Chromium could not be installed: the browser test will skip and say so"
fi
# Two processes, each taking whole test files (session fixtures: each trains the tiny runs it needs);
# --durations: the slowest tests, to keep the suite under 15 minutes.
.venv/bin/python -m pytest -q -n 2 --dist loadfile --durations=15 "$@"
