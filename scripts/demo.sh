#!/usr/bin/env bash
# Set up, then run the main job on the bundled UltraFeedback sample (no GPU, no network).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
out=${1:-curate_out}
notus curate --out "$out"
