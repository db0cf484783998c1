#!/usr/bin/env bash
# Set up, then run the whole test suite: every notebook's tests, the integration tests in tests/,
# the export/clean sync checks, the docs build, and the live Argilla tests on a local server.
# If the local Argilla server cannot start, the suite still runs: the live tests skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# The docs test looks at every page in a headless browser (Debian's chromium-headless-shell); without one it skips.
if ! command -v chromium-headless-shell >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium-headless-shell) >/dev/null 2>&1 \
    || echo "docs: could not install chromium-headless-shell; the browser check will be skipped" >&2
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
if [ -x scripts/argilla.sh ] && [ -z "${ARGILLA_API_URL:-}" ] && [ "${NOTUS_NO_ARGILLA:-0}" != 1 ]; then
  if bash scripts/argilla.sh status >/dev/null 2>&1; then
    echo "argilla: using the local server that is already running"
    eval "$(bash scripts/argilla.sh env)"
  elif bash scripts/argilla.sh start; then
    trap 'bash scripts/argilla.sh stop' EXIT     # only stop what this run started
    eval "$(bash scripts/argilla.sh env)"
  else
    echo "argilla: the local server did not start; the live review tests will be skipped (see .argilla/*.log)" >&2
    trap 'bash scripts/argilla.sh stop >/dev/null 2>&1 || true' EXIT
  fi
fi
python -m pytest "$@"
