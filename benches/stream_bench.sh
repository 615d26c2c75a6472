#!/usr/bin/env bash
# Stream benchmark: the engine between PostgreSQL and a Kafka-protocol broker, against the
# engine's own PostgreSQL -> PostgreSQL copy of the same rows in the same run.
#   engine: crates/fdi-engine/examples/stream_bench.rs (release build, real connectors)
#   pg-pg:    bench_src -> bench_dst                       (the baseline of the ratios)
#   pg-kafka: bench_src -> a new 3-partition topic          (one JSON message per row)
#   kafka-pg: that topic (ROWS messages) -> bench_dst       (a fresh consumer group per run)
#   consume:  a bare rdkafka consumer reading that topic and dropping the messages: the broker's
#             own ceiling, which no Kafka -> anything pipeline on this broker can pass
#   lag:      a realtime run follows a topic produced at LAG_RATE msgs/s for LAG_SECS s; lag of a
#             message = when its row became visible in PostgreSQL (polled every 20 ms) - when it
#             was produced.
#
# Usage: benches/stream_bench.sh [rows]
#   env RUNS=2 (best of), LAG_RATE=10000, LAG_SECS=60, SKIP_BUILD=1, SKIP_PREPARE=1,
#   CARGO_TARGET_DIR=... (where the release example is built; default target/)
# Needs PostgreSQL (127.0.0.1:5432, postgres, db test), the broker of `scripts/services.sh up
# kafka` (127.0.0.1:9092), psql and bc. Every pg-pg and kafka-pg run is verified: bench_dst must
# equal bench_src (count, distinct ids, sums, md5 sum, timestamp sum); pg-kafka must report ROWS.
set -euo pipefail
ROWS=${1:-1000000}
RUNS=${RUNS:-2}
LAG_RATE=${LAG_RATE:-10000}
LAG_SECS=${LAG_SECS:-60}
TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$(dirname "$0")/../target}")
cd "$(dirname "$0")/.."
export PGCONNECT_TIMEOUT=10
PSQL=(psql -X -h 127.0.0.1 -U postgres -d test -q -v ON_ERROR_STOP=1)

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# shellcheck source=benches/bench_pg.sh
source benches/bench_pg.sh

if [ -z "${SKIP_BUILD:-}" ]; then
  log "building release example (target dir $TARGET_DIR)..."
  CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q -p fdi-engine --example stream_bench >&2
fi
BIN=$TARGET_DIR/release/examples/stream_bench
[ -x "$BIN" ] || die "$BIN not built"

if [ -z "${SKIP_PREPARE:-}" ]; then
  log "preparing $ROWS rows in PostgreSQL..."
  prepare_pg_bench_src "$ROWS"
fi
SRC=$(check_pg bench_src)
[ "${SRC%% *}" = "$ROWS" ] || die "bench_src has ${SRC%% *} rows, expected $ROWS"

field() { sed -E "s/(.*[^_a-z])?$1=([0-9.]+).*/\\2/" <<<" $2"; }
min() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc -l)" = 1 ]; then echo "$2"; else echo "$1"; fi; }

# copy SRC_KIND SRC DST_KIND DST -> sets SECS CPU RSS_KB (the engine's own timing of the run and
# the CPU its process used).
copy() {
  local line
  line=$("$BIN" copy "$@") || die "stream_bench copy $* exited with $?: $line"
  log "  $1->$3: $line"
  [[ "$line" == *"status=SUCCESS"* ]] || die "$1->$3 did not succeed: $line"
  [ "$(field rows "$line")" = "$ROWS" ] || die "$1->$3 reported $(field rows "$line") rows, expected $ROWS"
  SECS=$(field secs "$line"); CPU=$(field cpu_secs "$line"); RSS_KB=$(field peak_rss_kb "$line")
}
verify() { local got; got=$(check_pg bench_dst); [ "$got" = "$SRC" ] || die "$1: bench_dst is [$got], expected [$SRC]"; }

declare -A BEST RSS BEST_CPU
LOAD_START=$(loadavg)
for run in $(seq 1 "$RUNS"); do
  log "run $run/$RUNS (load $(loadavg))"
  "${PSQL[@]}" -c "TRUNCATE bench_dst"
  copy pg bench_src pg bench_dst; verify pg-pg
  BEST[pg-pg]=$(min "${BEST[pg-pg]:-}" "$SECS"); RSS[pg-pg]=$RSS_KB; BEST_CPU[pg-pg]=$(min "${BEST_CPU[pg-pg]:-}" "$CPU")
  topic="bench_$(date +%s%N)"
  "$BIN" topic "$topic" 3 || die "cannot create topic $topic"
  copy pg bench_src kafka "$topic"
  BEST[pg-kafka]=$(min "${BEST[pg-kafka]:-}" "$SECS"); RSS[pg-kafka]=$RSS_KB; BEST_CPU[pg-kafka]=$(min "${BEST_CPU[pg-kafka]:-}" "$CPU")
  line=$("$BIN" consume "$topic" "$ROWS") || die "consume $topic: $line"
  log "  consume: $line"
  BEST[consume]=$(min "${BEST[consume]:-}" "$(field secs "$line")"); RSS[consume]=0; BEST_CPU[consume]=0
  "${PSQL[@]}" -c "TRUNCATE bench_dst"
  copy kafka "$topic" pg bench_dst; verify kafka-pg
  BEST[kafka-pg]=$(min "${BEST[kafka-pg]:-}" "$SECS"); RSS[kafka-pg]=$RSS_KB; BEST_CPU[kafka-pg]=$(min "${BEST_CPU[kafka-pg]:-}" "$CPU")
done
"${PSQL[@]}" -c "TRUNCATE bench_dst"

log "lag: $LAG_RATE msgs/s for $LAG_SECS s (load $(loadavg))"
lag_topic="bench_lag_$(date +%s%N)"
"$BIN" topic "$lag_topic" 3 || die "cannot create topic $lag_topic"
LAG=$("$BIN" lag "$lag_topic" bench_lag "$LAG_RATE" "$LAG_SECS") || die "lag run failed: $LAG"
log "  lag: $LAG"
[[ "$LAG" == *"status=SUCCESS"* ]] || die "the lag run did not succeed: $LAG"
LOAD_END=$(loadavg)

echo
echo "stream benchmark: $ROWS rows of the copy benchmark's 8 columns, best of $RUNS runs; $(nproc) cores; load avg at start $LOAD_START, at end $LOAD_END"
printf "%-10s %12s %12s %12s %10s %12s %14s\n" route "rows/s" "peak RSS MB" "vs pg-pg" "seconds" "engine CPU s" "rows/CPU-s"
base=$(echo "$ROWS / ${BEST[pg-pg]}" | bc -l)
for route in pg-pg pg-kafka consume kafka-pg; do
  rate=$(echo "$ROWS / ${BEST[$route]}" | bc -l)
  printf "%-10s %12.0f %12.1f %11.2fx %10.2f %12.2f %14.0f\n" "$route" "$rate" "$(echo "${RSS[$route]} / 1024" | bc -l)" \
    "$(echo "$rate / $base" | bc -l)" "${BEST[$route]}" "${BEST_CPU[$route]}" \
    "$( [ "${BEST_CPU[$route]}" = 0 ] && echo 0 || echo "$ROWS / ${BEST_CPU[$route]}" | bc -l)"
done
echo
printf "lag at %s msgs/s for %s s (3 partitions): p50 %s ms, p99 %s ms, max %s ms; %s of %s messages landed; peak RSS %.1f MB\n" \
  "$LAG_RATE" "$LAG_SECS" "$(field lag_p50_ms "$LAG")" "$(field lag_p99_ms "$LAG")" "$(field lag_max_ms "$LAG")" \
  "$(field landed "$LAG")" "$(field msgs "$LAG")" "$(echo "$(field peak_rss_kb "$LAG") / 1024" | bc -l)"
echo "verified: every pg-pg and kafka-pg run left bench_dst equal to bench_src (count, distinct ids, sums, md5 sum, timestamp sum)"
echo "vs pg-pg = rows/s of the route / rows/s of the engine's PostgreSQL -> PostgreSQL copy (higher is faster)"
echo "engine CPU s = user + system CPU of the engine's process for the run; rows/CPU-s = what one core of the engine moves per CPU second (the broker's own CPU not included)"
