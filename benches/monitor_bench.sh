#!/usr/bin/env bash
# Monitor-store benchmark (issue: catalog and monitor store): 1,000 tasks, runs of 10 steps each
# seeded through the store layer; p50/p99 of 200 sequential API calls per endpoint, store size,
# and the latency of one step write while 50 runs are active; at 1,000 and 1,000,000 stored runs
# (one task holding 100,000 of them), on SQLite and on PostgreSQL.
#   engine side: crates/fdi-server/examples/monitor_bench.rs
# Usage: benches/monitor_bench.sh [big_runs]   (default 1000000; needs PostgreSQL on 127.0.0.1)
# Takes ~10 minutes here (seeding 1M runs: ~2 min on SQLite, ~1 min on PostgreSQL).
set -euo pipefail
BIG=${1:-1000000}
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
echo "building release example..." >&2
cargo build --release -p fdi-server --example monitor_bench >&2
BIN=$TARGET/release/examples/monitor_bench
PSQL=(psql -h 127.0.0.1 -U postgres -q -v ON_ERROR_STOP=1)
DIR=/tmp/fdi-monitor-bench

run() { # label runs big_task_runs store
  local label=$1 runs=$2 big=$3 store=$4
  rm -rf "$DIR" && mkdir -p "$DIR"
  if [[ $store == postgres* ]]; then
    "${PSQL[@]}" -d test -c "DROP DATABASE IF EXISTS fdi_monitor_bench" -c "CREATE DATABASE fdi_monitor_bench" >/dev/null
  fi
  echo "running: $label" >&2
  RUST_LOG=warn "$BIN" --store "$store" --data-dir "$DIR" --runs "$runs" --big-task-runs "$big" --calls 200 2>/dev/null | tail -1
}

SQLITE="sqlite://$DIR/fdi.db"
PG="postgres://postgres@127.0.0.1:5432/fdi_monitor_bench"
results=()
results+=("$(run sqlite-1k 1000 100 "$SQLITE")")
results+=("$(run sqlite-${BIG} "$BIG" $((BIG / 10)) "$SQLITE")")
results+=("$(run postgres-1k 1000 100 "$PG")")
results+=("$(run postgres-${BIG} "$BIG" $((BIG / 10)) "$PG")")
"${PSQL[@]}" -d test -c "DROP DATABASE IF EXISTS fdi_monitor_bench" >/dev/null
rm -rf "$DIR"

printf '\n%-10s %9s %7s %15s %15s %15s %15s %15s %15s %15s %8s\n' store runs seed_s "logs?limit=10" "logs/{id}" "monitors?100" statistics "tasks?100" "overview" "step write(50)" size_MB
printf '%-10s %9s %7s %15s %15s %15s %15s %15s %15s %15s %8s\n' "" "" "" "p50/p99 ms" "p50/p99 ms" "p50/p99 ms" "p50/p99 ms" "p50/p99 ms" "p50/p99 ms" "p50/p99 ms" ""
for r in "${results[@]}"; do
  declare -A v=()
  for kv in $r; do v[${kv%%=*}]=${kv#*=}; done
  pair() { echo "${v[${1}_p50_ms]}/${v[${1}_p99_ms]}"; }
  printf '%-10s %9s %7s %15s %15s %15s %15s %15s %15s %15s %8s\n' "${v[store]}" "${v[runs]}" "${v[seed_s]}" \
    "$(pair logs10)" "$(pair log_one)" "$(pair monitors100)" "$(pair stats)" "$(pair tasks100)" "$(pair overview)" "$(pair step_write)" "${v[size_mb]}"
  unset v
done
