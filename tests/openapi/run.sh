#!/usr/bin/env bash
# Fuzzes a live fdi server against its own OpenAPI document (GET /v2/openapi.json) with
# schemathesis: every operation, checks not_a_server_error, status_code_conformance,
# content_type_conformance, response_schema_conformance and response_headers_conformance.
# Any finding fails the run (exit 1).
#
#   cargo build --bin fdi && tests/openapi/run.sh              # the real run
#   tests/openapi/run.sh --self-test                           # the harness can fail
#
# --self-test serves schemathesis a copy of the document with three deliberate lies (a response
# schema, an undocumented status, the schema of the run events' data; tests/openapi/harness.py)
# and passes only when schemathesis reports all three.
#
# The server runs on the embedded default (SQLite store in a temp data dir) on a free port, with
# a token; an app, two SQLite datasources, a task and a run are created first and the path
# parameters pinned to them, so requests reach the handlers; with the PostgreSQL of .ci/run
# (FDI_OPENAPI_PG, default 127.0.0.1:5432, database test) a combination task too (without it the
# multi-tasks operations only meet "not found", and the seed says so).
#
# Bounded: MAX_EXAMPLES per operation (default 100; ~70 s here), REQUEST_TIMEOUT seconds per
# request (default 10; a request that takes longer is a failure), MAX_TIME seconds for
# schemathesis in all (default 270, then it is killed and the run fails). One worker: with two,
# Python 3.11's ast.parse (inside Hypothesis) raised "AST constructor recursion depth mismatch".
#
# FDI_BIN     the binary to test (default target/debug/fdi)
# REPORT_DIR  when set, schemathesis writes a HAR file of every request and response there
# SEED        schemathesis's random seed (default 11: the same cases every run)
# PYTHON      interpreter used to create the venv (default python3)
set -euo pipefail
cd "$(dirname "$0")/../.."

MODE=run
case "${1:-}" in
  "") ;;
  --self-test) MODE=self-test ;;
  *) echo "usage: $0 [--self-test]" >&2; exit 2 ;;
esac

log() { echo "[openapi] $*"; }

# shellcheck source=tests/python_venv.sh
source tests/python_venv.sh
VENV=target/openapi-venv
PYTHON=${PYTHON:-python3}
python_venv "$VENV" tests/openapi/requirements.txt openapi
fdi_bin openapi

MAX_EXAMPLES=${MAX_EXAMPLES:-100}
REQUEST_TIMEOUT=${REQUEST_TIMEOUT:-10}
MAX_TIME=${MAX_TIME:-270}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fdi-openapi.XXXXXX")
SERVER_PID=
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
TOKEN="openapi-$RANDOM$RANDOM"
mkdir -p "$WORK/data/files"
"$FDI_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --auth-tokens "$TOKEN" \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "$BASE/health" >/dev/null 2>&1 && break
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "the server exited:"; cat "$WORK/server.log"; exit 1
  fi
  sleep 0.2
done
curl -fsS "$BASE/health" >/dev/null || { log "the server did not come up"; cat "$WORK/server.log"; exit 1; }
log "server $BASE (pid $SERVER_PID), data dir $WORK/data"

"$VENV/bin/python" tests/openapi/harness.py seed "$BASE" "$TOKEN" "$WORK/data/files" "$WORK/schemathesis.toml"

CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
st() {
  timeout --kill-after=10 "$MAX_TIME" "$VENV/bin/schemathesis" --no-color --config-file "$WORK/schemathesis.toml" run "$@" \
    --checks "$CHECKS" \
    --header "X-Auth-Token: $TOKEN" \
    --max-examples "$MAX_EXAMPLES" \
    --request-timeout "$REQUEST_TIMEOUT" \
    --max-response-time "$REQUEST_TIMEOUT" \
    --phases examples,coverage,fuzzing \
    --seed "${SEED:-11}" \
    --generation-database none \
    ${REPORT_DIR:+--report har --report-dir "$REPORT_DIR"} \
    --suppress-health-check all \
    --workers 1
}

server_alive() {
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "the server died during the run:"; tail -50 "$WORK/server.log"; return 1
  fi
}

if [[ "$MODE" == self-test ]]; then
  curl -fsS "$BASE/v2/openapi.json" -o "$WORK/doc.json"
  "$VENV/bin/python" tests/openapi/harness.py break "$WORK/doc.json" "$WORK/broken.json"
  set +e
  st "$WORK/broken.json" --url "$BASE" \
    --include-operation-id health --include-operation-id apps_list \
    --include-operation-id monitor_log_events >"$WORK/self-test.log" 2>&1
  rc=$?
  set -e
  server_alive
  ok=1
  if [[ $rc -eq 0 ]]; then log "self-test: schemathesis passed a broken document"; ok=0; fi
  for want in "Response violates schema" "Undocumented status code" "SSE event payload violates content schema"; do
    if ! grep -q "$want" "$WORK/self-test.log"; then log "self-test: no \"$want\" reported"; ok=0; fi
  done
  if [[ $ok -ne 1 ]]; then cat "$WORK/self-test.log"; exit 1; fi
  log "self-test passed: schemathesis failed the broken document (exit $rc) with all three findings"
  exit 0
fi

start=$(date +%s)
set +e
st "$BASE/v2/openapi.json" 2>&1 | tee "$WORK/run.log"
rc=${PIPESTATUS[0]}
set -e
server_alive
log "schemathesis exit $rc after $(( $(date +%s) - start )) s"
if [[ $rc -ne 0 ]]; then
  log "server log (last 40 lines):"; tail -40 "$WORK/server.log"
  exit 1
fi
