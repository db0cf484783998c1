#!/usr/bin/env bash
# Set up, then run the main job on the bundled UltraFeedback sample (no GPU, no network).
# Usage: bash scripts/demo.sh [OUTPUT_FOLDER]   (default: curate_out)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
out=${1:-curate_out}
notus curate --output "$out"     # prints the files it wrote and the next steps
for f in "$out/train_prefs.parquet" "$out/test_prefs.parquet" "$out/report.md" "$out/analysis/report.html"; do
  [ -e "$f" ] || { echo "demo: $f was not written" >&2; exit 1; }
done
echo
echo "Open $out/report.md (what was kept, dropped and changed, and why)"
echo " and $out/analysis/report.html (the data: ratings, scores, the overall_score mismatch, with plots)."
echo "Run the next steps above in the project's environment: . .venv/bin/activate   (notus --help lists every verb)"
