#!/usr/bin/env bash
# A local Argilla server for the review notebook, the live tests and the benchmark:
# argilla-server 2.8.0 on SQLite, with noida-db standing in for Elasticsearch 8 and Redis, all on 127.0.0.1.
#
#   bash scripts/argilla.sh start    # install (first time) and start; waits until healthy, prints the start-up time
#   bash scripts/argilla.sh stop     # stop what `start` started (by PID)
#   bash scripts/argilla.sh status   # what runs, and whether the API answers (exit 0 when healthy)
#   eval "$(bash scripts/argilla.sh env)"   # export ARGILLA_API_URL and ARGILLA_API_KEY for the SDK
#
# The server lives in its own virtual environment (.argilla-venv: its pins differ from the project's), its
# data in .argilla/ (SQLite database, search index, logs, PID files, and a local API key and owner password
# generated on first start, readable only by you). Both are git-ignored. `start` and `stop` are idempotent.
# Settings (environment): NOTUS_ARGILLA_DIR, NOTUS_ARGILLA_VENV, NOTUS_ARGILLA_PORT (6900),
# NOTUS_ES_PORT (9200), NOTUS_REDIS_PORT (6379), NOTUS_ARGILLA_TIMEOUT (seconds to wait, 180), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${NOTUS_ARGILLA_VENV:-$ROOT/.argilla-venv}
DIR=${NOTUS_ARGILLA_DIR:-$ROOT/.argilla}
HOST=127.0.0.1
PORT=${NOTUS_ARGILLA_PORT:-6900}
ES_PORT=${NOTUS_ES_PORT:-9200}
REDIS_PORT=${NOTUS_REDIS_PORT:-6379}
TIMEOUT=${NOTUS_ARGILLA_TIMEOUT:-180}
PINS=("argilla-server==2.8.0" "click<8.2" "noida-db==0.2.3")
URL="http://$HOST:$PORT"
COMPONENTS=(noida server worker)

say() { echo "argilla: $*" >&2; }
die() { say "$*"; exit 1; }

install() {
  local want; want=$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-16)
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.notus-installed" 2>/dev/null)" = "$want" ]; then return; fi
  say "installing ${PINS[*]} into $VENV (first start only)"
  [ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}" >"$DIR/install.log" 2>&1 \
    || { tail -n 20 "$DIR/install.log" >&2; die "installing the server failed (log: $DIR/install.log)"; }
  echo "$want" > "$VENV/.notus-installed"
}

secrets() {
  # A local development key and owner password, generated once, readable only by the owner of the checkout.
  ( umask 077
    for f in api_key password; do
      [ -s "$DIR/$f" ] || "$VENV/bin/python" -c "import secrets; print('notus-' + secrets.token_hex(20))" > "$DIR/$f"
    done )
  KEY=$(cat "$DIR/api_key")
}

# A PID file's process, if it is still the one we started (guards against a reused PID).
alive() {
  local f="$DIR/$1.pid" pid
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qE 'noida-db|argilla_server' || return 1
}

port_busy() { "${VENV}/bin/python" -c "import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(0 if s.connect_ex(('$HOST', $1)) == 0 else 1)"; }

# GET /api/v1/me with the key sent from a file, so that it never appears in a process list.
healthy() {
  [ -s "$DIR/api_key" ] && [ -x "$VENV/bin/python" ] || return 1
  "$VENV/bin/python" - "$URL" "$DIR/api_key" <<'EOF' 2>/dev/null
import sys, urllib.request
url, keyfile = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url + '/api/v1/me', headers={'X-Argilla-Api-Key': open(keyfile).read().strip()})
try: sys.exit(0 if urllib.request.urlopen(req, timeout=2).status == 200 else 1)
except Exception: sys.exit(1)
EOF
}

wait_for() { # seconds, description, command...
  local limit=$1 what=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@"; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.3
  done
}

launch() { # name, command... : start in its own session (so `stop` ends it and its children), log, record the PID
  local name=$1; shift
  setsid "$@" >>"$DIR/$name.log" 2>&1 < /dev/null &
  echo $! > "$DIR/$name.pid"
}

server_env() {
  export ARGILLA_HOME_PATH="$DIR/home" ARGILLA_SEARCH_ENGINE=elasticsearch
  export ARGILLA_ELASTICSEARCH="http://$HOST:$ES_PORT" ARGILLA_REDIS_URL="redis://$HOST:$REDIS_PORT/0"
  export ARGILLA_ENABLE_TELEMETRY=0 HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_OFFLINE=1
  mkdir -p "$ARGILLA_HOME_PATH"
}

failed() { # what failed: show the logs' tails (they hold no secrets), stop what started, exit
  for c in "${COMPONENTS[@]}"; do [ -f "$DIR/$c.log" ] && { echo "--- $DIR/$c.log" >&2; tail -n 15 "$DIR/$c.log" >&2; }; done
  stop_all
  die "$1"
}

start() {
  local t0=$EPOCHREALTIME
  if healthy && alive server; then say "already running at $URL"; return; fi
  mkdir -p "$DIR"; chmod 700 "$DIR"
  install
  secrets
  server_env
  if ! alive noida; then
    port_busy "$ES_PORT" && die "port $ES_PORT is taken by another program: set NOTUS_ES_PORT"
    port_busy "$REDIS_PORT" && die "port $REDIS_PORT is taken by another program: set NOTUS_REDIS_PORT"
    launch noida "$VENV/bin/noida-db" start --only redis,elasticsearch --host "$HOST" --data-dir "$DIR/noida" \
      --redis-port "$REDIS_PORT" --elasticsearch-port "$ES_PORT"
  fi
  wait_for 60 "search engine" port_busy "$ES_PORT" || failed "noida-db did not open port $ES_PORT"
  wait_for 30 "redis" port_busy "$REDIS_PORT" || failed "noida-db did not open port $REDIS_PORT"
  local stamp; stamp=$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-16)
  if [ "$(cat "$DIR/.db-ready" 2>/dev/null)" != "$stamp" ] || [ ! -f "$DIR/home/argilla.db" ]; then
    "$VENV/bin/python" -m argilla_server database migrate >>"$DIR/setup.log" 2>&1 || failed "database migration failed"
    # create_default prints the key: keep its output out of every log.
    "$VENV/bin/python" -m argilla_server database users create_default --api-key "$KEY" \
      --password "$(cat "$DIR/password")" >/dev/null 2>&1 || failed "creating the default owner failed"
    echo "$stamp" > "$DIR/.db-ready"
  fi
  if ! alive server; then
    port_busy "$PORT" && die "port $PORT is taken by another program: set NOTUS_ARGILLA_PORT"
    launch server "$VENV/bin/python" -m argilla_server start --host "$HOST" --port "$PORT"
  fi
  alive worker || launch worker "$VENV/bin/python" -m argilla_server worker
  wait_for "$TIMEOUT" "api" healthy || failed "the server did not answer $URL/api/v1/me within ${TIMEOUT}s"
  local dt; dt=$(awk "BEGIN{printf \"%.1f\", $EPOCHREALTIME - $t0}")
  say "ready at $URL in ${dt} s (owner 'argilla'; password in $DIR/password)"
}

stop_one() {
  local name=$1 pid
  if alive "$name"; then
    pid=$(cat "$DIR/$name.pid")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
    say "stopped $name (pid $pid)"
  fi
  rm -f "$DIR/$name.pid"
}

stop_all() { for c in worker server noida; do stop_one "$c"; done; }

status() {
  local c
  for c in "${COMPONENTS[@]}"; do
    if alive "$c"; then echo "$c: running (pid $(cat "$DIR/$c.pid"))"; else echo "$c: stopped"; fi
  done
  if healthy; then echo "api: healthy at $URL"; else echo "api: not answering at $URL"; return 3; fi
}

env_lines() {
  [ -s "$DIR/api_key" ] || die "no local key yet: run 'bash scripts/argilla.sh start' first"
  echo "export ARGILLA_API_URL=$URL"
  echo "export ARGILLA_API_KEY=$(cat "$DIR/api_key")"
}

case "${1:-}" in
  start) start ;;
  stop) stop_all ;;
  status) status ;;
  env) env_lines ;;
  *) echo "usage: bash scripts/argilla.sh start|stop|status|env" >&2; exit 2 ;;
esac
