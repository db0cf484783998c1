#!/usr/bin/env bash
# Set up, then run the whole test suite: every notebook's tests, the integration tests in tests/,
# the export/clean sync checks, the docs build, and the live Argilla tests on a local server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
if [ -x scripts/argilla.sh ] && [ -z "${ARGILLA_API_URL:-}" ] && [ "${NOTUS_NO_ARGILLA:-0}" != 1 ]; then
  if bash scripts/argilla.sh status >/dev/null 2>&1; then
    echo "argilla: using the local server that is already running"
  else
    bash scripts/argilla.sh start
    trap 'bash scripts/argilla.sh stop' EXIT     # only stop what this run started
  fi
  eval "$(bash scripts/argilla.sh env)"
fi
python -m pytest "$@"
