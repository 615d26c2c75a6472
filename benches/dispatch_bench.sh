#!/usr/bin/env bash
# Dispatch benchmark (issue: scheduler): dispatch lag p50/p99, double dispatches with two nodes,
# idle CPU with many enabled plans. Each fire is a real run (a one-row PostgreSQL copy).
#   engine side: crates/fdi-scheduler/examples/dispatch_bench.rs
# Usage: benches/dispatch_bench.sh [plans] [secs]     (needs PostgreSQL on 127.0.0.1, db `test`)
set -euo pipefail
PLANS=${1:-10000}
SECS=${2:-75}
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
echo "building release example..." >&2
cargo build --release -p fdi-scheduler --example dispatch_bench >&2
BIN=$TARGET/release/examples/dispatch_bench
PSQL=(psql -h 127.0.0.1 -U postgres -q -v ON_ERROR_STOP=1)

fresh_pg() {
  "${PSQL[@]}" -d test -c "DROP DATABASE IF EXISTS fdi_bench" -c "CREATE DATABASE fdi_bench" >/dev/null
}
fresh_sqlite() { rm -rf /tmp/fdi-dispatch-bench-sqlite; mkdir -p /tmp/fdi-dispatch-bench-sqlite; }

run() { # label args...
  local label=$1; shift
  echo "running: $label ($*)" >&2
  local out
  out=$(RUST_LOG=warn "$BIN" "$@" 2>/dev/null | tail -1)
  echo "$label $out"
}

results=()
fresh_sqlite
results+=("$(BENCH_DIR=/tmp/fdi-dispatch-bench-sqlite run "sqlite/1-node/every-minute" --store sqlite:///tmp/fdi-dispatch-bench-sqlite/fdi.db --plans "$PLANS" --mode minute --secs "$SECS" --nodes 1)")
fresh_pg
results+=("$(run "postgres/1-node/every-minute" --store postgres://postgres@127.0.0.1:5432/fdi_bench --plans "$PLANS" --mode minute --secs "$SECS" --nodes 1)")
fresh_pg
results+=("$(run "postgres/2-nodes/every-minute" --store postgres://postgres@127.0.0.1:5432/fdi_bench --plans "$PLANS" --mode minute --secs "$SECS" --nodes 2)")
fresh_pg
results+=("$(run "postgres/2-nodes/every-second(200)" --store postgres://postgres@127.0.0.1:5432/fdi_bench --plans 200 --mode second --secs 30 --nodes 2)")

printf '\n%-36s %8s %8s %6s %7s %9s %9s %9s %9s %9s\n' route fires success 914 double p50_ms p99_ms max_ms idle_cpu% busy_cpu%
for r in "${results[@]}"; do
  label=${r%% *}
  get() { echo "$r" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2; }
  printf '%-36s %8s %8s %6s %7s %9s %9s %9s %9s %9s\n' "$label" "$(get fires)" "$(get success)" "$(get rejected_914)" "$(get double)" \
    "$(get lag_p50_ms)" "$(get lag_p99_ms)" "$(get lag_max_ms)" "$(get idle_cpu_pct)" "$(get busy_cpu_pct)"
done
"${PSQL[@]}" -d test -c "DROP DATABASE IF EXISTS fdi_bench" >/dev/null
