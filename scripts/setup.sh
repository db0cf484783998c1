#!/usr/bin/env bash
# Create .venv and install notus with the exact tested versions of constraints.txt (CPU torch first). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
. .venv/bin/activate
stamp=.venv/.notus-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python -m pip install -q -U pip
  # torch first: a bare torch requirement with nothing installed pulls a multi-GB CUDA build.
  python -c "import torch" 2>/dev/null || python -m pip install -q -c constraints.txt "torch==2.13.0"
  python -m pip install -q -c constraints.txt -e ".[dev]"
  python -m ipykernel install --sys-prefix --name python3 >/dev/null 2>&1 || true
  echo "$want" > "$stamp"
fi
