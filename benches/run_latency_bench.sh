#!/usr/bin/env bash
# One-row run latency (issue 10's per-run fixed cost): a 1-row PostgreSQL -> PostgreSQL task run
# RUNS times through the HTTP API of the release `fdi` binary on its embedded default store,
# POST run -> SUCCESS as a client sees it, side by side with the psql \copy pipe over the same row.
#
# Usage: benches/run_latency_bench.sh   (env RUNS=20, CARGO_TARGET_DIR=..., SKIP_BUILD=1, FDI_BIN=path)
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, db test), psql and python3.
set -euo pipefail
RUNS=${RUNS:-20}
TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$(dirname "$0")/../target}")
cd "$(dirname "$0")/.."
log() { echo "[$(date +%T)] $*" >&2; }

if [ -z "${SKIP_BUILD:-}" ]; then
  log "building the release fdi binary (target dir $TARGET_DIR)..."
  CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q --bin fdi >&2
fi
BIN=${FDI_BIN:-$TARGET_DIR/release/fdi}
[ -x "$BIN" ] || { log "$BIN not built"; exit 1; }

DATA=$(mktemp -d /tmp/fdi-latency.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOKEN=bench-token
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --auth-tokens "$TOKEN" 2>"$DATA/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  sleep 0.1
done
log "server up on $PORT; $RUNS runs"
python3 benches/run_latency.py "$PORT" "$TOKEN" "$RUNS"
