#!/usr/bin/env bash
# The main job (README): install, train the sentiment app on real public data, evaluate, export
# (SavedModel for TF Serving + TFLite, parity-checked), then predict through the exported models.
#
# Data: SST-2 from $RNN_APPS_DATA_ROOT (default ../shared/data) when present, otherwise TFDS
# imdb_reviews (downloaded; needs a network). `rnn-apps train` prints which, which split, from where.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export RNN_APPS_DATA_ROOT="${RNN_APPS_DATA_ROOT:-$(cd .. && pwd)/shared/data}"
run_dir="runs/sentiment-$(date +%Y%m%d-%H%M%S)"
rnn=.venv/bin/rnn-apps

echo "== train (data root: $RNN_APPS_DATA_ROOT)"
$rnn train sentiment --out "$run_dir" "$@"
echo "== evaluate on the test split"
$rnn evaluate "$run_dir"
echo "== export to exports/ (SavedModel + TFLite, parity-checked)"
$rnn export "$run_dir" --out exports
echo "== predict through the exported SavedModel and TFLite model"
$rnn query exports --name sentiment \
  "a gorgeous , witty , seductive movie ." \
  "the plot is nothing but boilerplate clichés from start to finish ." \
  "It isn't the worst film of the year, but it's close." \
  "an utterly charming and hilarious film that reminded me why i love movies"
echo "== the browser page: the same .tflite in LiteRT.js (open it as printed; needs npm, else skipped)"
$rnn demo exports --out demo || echo "no browser page (see the line above); the exports are complete"
echo "== done: run folder $run_dir, exports in exports/ (see exports/manifest.json), page in demo/"
