#!/usr/bin/env bash
# CDC benchmark: the fdi change pipeline (combination tasks) MariaDB (binlog) -> PostgreSQL and
# PostgreSQL (logical replication) -> PostgreSQL, against PostgreSQL's own logical replication
# (CREATE PUBLICATION / CREATE SUBSCRIPTION) on the same workload in the same run.
#   driver:   crates/fdi-cdc/examples/cdc_bench.rs (release build; real connectors)
#   workload: 10 tables (ROWS rows each to start) and a heartbeat table; WORKERS generator
#             connections commit transactions of 10 changes (60% update, 30% insert, 10% delete)
#             paced to the offered rate, each ending with an update of its worker's heartbeat row
#             to (seq, the source's clock in µs just before COMMIT).
#   lag:      a poller reads the target's heartbeat rows every 10 ms; the lag of a transaction =
#             the first poll that saw its seq (or a later one) - its commit time.
#   applied:  the step's changes / (last transaction seen - first transaction seen) on the target.
#   rows:     each fixed rate (RATES, SECS s each) in a fresh setup and pipeline process; then a
#             search (SEARCH_RATES, STEP_SECS s each, one pipeline run, each step starting caught
#             up) that stops at the first step whose lag did not stay flat (last quarter's p50 more
#             than 250 ms above the first quarter's, or its p99 >= 2 s, or no catch-up within
#             CATCHUP_SECS); "max" is the last flat step.
#   RSS:      the pipeline runs alone in its own process (`cdc_bench pipe`): its VmHWM, snapshot
#             included; the generator and poller run in another (`cdc_bench drive`).
#   verified: after each run every table's count + md5 over its rows in key order equals the
#             source's; a run that does not catch up or does not verify is reported FAILED.
#
# Usage: benches/cdc_bench.sh
#   env SECS=60, RATES="1000 10000", SEARCH_RATES="2000 3000 4500 6500 10000 15000 22000 33000",
#   STEP_SECS=20, ROUTES="mysql-pg pg-pg native", ROWS=10000, WORKERS=8, CATCHUP_SECS=300,
#   SKIP_BUILD=1, CARGO_TARGET_DIR=... (where the release example is built; default target/),
#   BIN=... (another build of the example, e.g. a debug one: no build),
#   PREFIX=cdcb (table / publication / slot names)
# Needs the machine's PostgreSQL (127.0.0.1:5432, db test) as the target and
# `scripts/services.sh up pg-cdc mysql-cdc` (PostgreSQL 5433, MariaDB 3307) as sources.
# Everything it creates (tables, publication, subscription, replication slots) is dropped after
# every run and on exit, also after a failure.
set -euo pipefail
SECS=${SECS:-60}
RATES=${RATES:-"1000 10000"}
SEARCH_RATES=${SEARCH_RATES:-"2000 3000 4500 6500 10000 15000 22000 33000"}
STEP_SECS=${STEP_SECS:-20}
ROUTES=${ROUTES:-"mysql-pg pg-pg native"}
export ROWS=${ROWS:-10000} WORKERS=${WORKERS:-8} CATCHUP_SECS=${CATCHUP_SECS:-300}
TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$(dirname "$0")/../target}")
cd "$(dirname "$0")/.."

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

if [ -z "${SKIP_BUILD:-}" ] && [ -z "${BIN:-}" ]; then
  log "building release example (target dir $TARGET_DIR)..."
  CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q -p fdi-cdc --example cdc_bench >&2
fi
BIN=${BIN:-$TARGET_DIR/release/examples/cdc_bench}
[ -x "$BIN" ] || die "$BIN not built"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cdc_bench.XXXXXX")
PIPE_PID=
stop_pipe() {
  [ -n "$PIPE_PID" ] || return 0
  if kill -0 "$PIPE_PID" 2>/dev/null; then
    kill -TERM "$PIPE_PID" 2>/dev/null || true
    for _ in $(seq 1 700); do kill -0 "$PIPE_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PIPE_PID" 2>/dev/null; then
      log "pipeline $PIPE_PID did not stop within 70 s of SIGTERM: killing it"
      kill -KILL "$PIPE_PID" 2>/dev/null || true
    fi
  fi
  wait "$PIPE_PID" 2>/dev/null || true
  PIPE_PID=
}
on_exit() {
  local rc=$?
  stop_pipe
  "$BIN" cleanup || log "cleanup reported errors (see above)"
  if [ $rc = 0 ]; then rm -rf "$WORK"; else log "logs kept in $WORK"; fi
  exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM

field() { sed -nE "s/(.*[^_a-z])?$1=([^ ]+).*/\\2/p" <<<" $2"; }
fmt() { if [ -z "$2" ]; then echo "-"; else printf "$1" "$2"; fi; }

declare -A OFFERED GEN APPLIED P50 P99 RSS CPU STATUS NOTE
STEPS=""

# record KEY LINE: a drive step line's numbers under KEY (route/label).
record() {
  OFFERED[$1]=$(field rate "$2"); GEN[$1]=$(field gen_rate "$2"); APPLIED[$1]=$(field applied_rate "$2")
  P50[$1]=$(field lag_p50_ms "$2"); P99[$1]=$(field lag_p99_ms "$2")
}

# run_one ROUTE LABEL SECS RATES MODE: one setup, one pipeline (or subscription), one drive.
run_one() {
  local route=$1 label=$2 secs=$3 rates=$4 mode=$5 key="$1/$2" src engine out
  src=pg; [ "$route" = mysql-pg ] && src=mysql
  engine=fdi; [ "$route" = native ] && engine=native
  out="$WORK/${route}_$label"
  log "$route $label: ${rates// /,} changes/s, $secs s (load $(loadavg))"
  STATUS[$key]=ok
  if ! "$BIN" cleanup 2>>"$out.err" || ! "$BIN" setup "$src" "$engine" 2>>"$out.err"; then
    STATUS[$key]="FAILED: setup"; log "  setup failed: $(tail -3 "$out.err")"; return
  fi
  if [ "$engine" = fdi ]; then
    "$BIN" pipe "$src" >"$out.pipe" 2>"$out.pipe.err" &
    PIPE_PID=$!
    for _ in $(seq 1 1200); do
      grep -q '^READY' "$out.pipe.err" && break
      kill -0 "$PIPE_PID" 2>/dev/null || break
      sleep 0.5
    done
    if ! grep -q '^READY' "$out.pipe.err"; then
      STATUS[$key]="FAILED: the pipeline did not finish its copy"
      log "  $(tail -3 "$out.pipe.err")"; stop_pipe; "$BIN" cleanup || true; return
    fi
    log "  pipeline ready: $(grep '^READY' "$out.pipe.err")"
  elif ! "$BIN" native-start 2>>"$out.err"; then
    STATUS[$key]="FAILED: subscription"; log "  $(tail -3 "$out.err")"; "$BIN" cleanup || true; return
  fi
  local rc=0
  "$BIN" drive "$src" "$secs" "${rates// /,}" "$mode" >"$out.drive" 2>>"$out.err" || rc=$?
  while read -r line; do log "  step: $line"; done <"$out.drive"
  if [ $rc != 0 ]; then
    STATUS[$key]="FAILED: $(grep -v '^\[' "$out.err" | tail -1)"
    log "  drive failed; its log ends: $(tail -5 "$out.err")"
  elif ! "$BIN" verify "$src" >"$out.verify" 2>>"$out.err"; then
    STATUS[$key]="FAILED: $(tail -1 "$out.err")"
  else
    log "  $(cat "$out.verify")"
  fi
  if [ "$engine" = fdi ]; then
    stop_pipe
    local p; p=$(cat "$out.pipe")
    log "  pipeline: $p"
    RSS[$key]=$(field peak_rss_kb "$p"); CPU[$key]=$(field cpu_secs "$p")
    [[ "$p" == *"status=CANCELLED"* ]] || STATUS[$key]="FAILED: pipeline ended ${p:-without a result line}"
    grep -q 'Schema drift\|skipped' "$out.pipe.err" && log "  pipeline log: $(grep -m3 'Schema drift\|skipped' "$out.pipe.err")"
  fi
  "$BIN" cleanup 2>>"$out.err" || log "  cleanup: $(tail -1 "$out.err")"
  if [ "$mode" = fixed ]; then
    record "$key" "$(tail -1 "$out.drive")"
  else
    # The flat step with the most changes/s committed at the source (the last one, unless the
    # generator fell short of a higher offered rate and still kept the pipeline flat).
    local best last
    best=$(grep 'flat=1' "$out.drive" | sed -E 's/.* gen_rate=([0-9]+) .*/\1 &/' | sort -n | tail -1 | cut -d' ' -f2- || true)
    last=$(tail -1 "$out.drive")
    [ -n "$best" ] && record "$key" "$best"
    if [ -z "$last" ]; then
      NOTE[$key]="no step finished"
    elif [[ "$last" == *"gen_ok=0"* ]]; then
      NOTE[$key]="the generator reached only $(field gen_rate "$last")/s of $(field rate "$last")/s offered ($([[ "$last" == *flat=1* ]] && echo "lag flat" || echo "lag NOT flat")): source-limited on this machine, the pipeline's ceiling may be higher"
    elif [[ "$last" == *"flat=1"* ]]; then
      NOTE[$key]="kept up at every rate up to $(field rate "$last")/s (the top of SEARCH_RATES)"
    else
      NOTE[$key]="fell behind at $(field rate "$last")/s: applied $(field applied_rate "$last")/s, lag p50 $(field lag_p50_ms "$last") ms, last-quarter p50 $(field last_q_p50_ms "$last") ms"
    fi
    local steps="" l
    while read -r l; do
      steps+="$(field rate "$l")->$(field applied_rate "$l") p99 $(field lag_p99_ms "$l") ms$([[ "$l" == *flat=1* ]] || echo ' (behind)'); "
    done <"$out.drive"
    STEPS+="$route: $steps"$'\n'
  fi
  [ "${STATUS[$key]}" = ok ] || log "  $key: ${STATUS[$key]}"
}

LOAD_START=$(loadavg)
T0=$(date +%s)
for route in $ROUTES; do
  for rate in $RATES; do run_one "$route" "$rate" "$SECS" "$rate" fixed; done
  run_one "$route" max "$STEP_SECS" "$SEARCH_RATES" search
done
LOAD_END=$(loadavg)

echo
echo "CDC benchmark: 10 tables ($ROWS rows each to start) + heartbeat; transactions of 10 changes (60% update / 30% insert / 10% delete) + 1 heartbeat update from $WORKERS connections;"
echo "$SECS s per fixed rate, $STEP_SECS s per search step; $(nproc) cores; load avg at start $LOAD_START, at end $LOAD_END; $(( ($(date +%s) - T0) / 60 )) min"
printf "%-9s %-6s %10s %10s %11s %10s %10s %12s %11s %16s  %s\n" route rate "offered/s" "source/s" "applied/s" "lag p50 ms" "lag p99 ms" "peak RSS MB" "pipe CPU s" "applied/native" status
FAILED=0
for route in $ROUTES; do
  for label in $RATES max; do
    key="$route/$label"
    [ -n "${STATUS[$key]:-}" ] || continue
    ratio="-"
    if [ -n "${APPLIED[$key]:-}" ] && [ -n "${APPLIED[native/$label]:-}" ] && [ "${APPLIED[native/$label]}" != 0 ]; then
      ratio=$(printf "%.2fx" "$(echo "${APPLIED[$key]} / ${APPLIED[native/$label]}" | bc -l)")
    fi
    rss="-"; [ -n "${RSS[$key]:-}" ] && rss=$(printf "%.1f" "$(echo "${RSS[$key]} / 1024" | bc -l)")
    [ "$route" = native ] && rss="n/a"
    printf "%-9s %-6s %10s %10s %11s %10s %10s %12s %11s %16s  %s\n" "$route" "$label" "${OFFERED[$key]:--}" "${GEN[$key]:--}" \
      "${APPLIED[$key]:--}" "${P50[$key]:--}" "${P99[$key]:--}" "$rss" "${CPU[$key]:-n/a}" "$ratio" "${STATUS[$key]}"
    [ "${STATUS[$key]}" = ok ] || FAILED=1
  done
done
echo
for route in $ROUTES; do
  [ -n "${NOTE[$route/max]:-}" ] && echo "max $route: ${NOTE[$route/max]}"
done
printf "search steps (offered->applied, p99 lag):\n%s" "$STEPS"
echo
echo "offered/s = the rate asked of the generator; source/s = what it committed (below offered: the source, not the pipeline, was the limit on this machine)"
echo "applied/native = applied changes/s of the route / applied changes/s of PostgreSQL's logical replication in the same row (higher is faster; max rows: highest flat rates)"
echo "lag = first 10 ms poll of the target that saw the transaction's heartbeat - the source's clock just before its COMMIT; applied/s counts the 10 changes of each transaction (not the heartbeat)"
echo "peak RSS = VmHWM of the pipeline process (its own process: copy of the tables included, generator and poller not); pipe CPU s = its user + system CPU over the whole run"
echo "verified: after every run each table's count + md5 over its rows in key order equal the source's (runs that did not catch up or verify are FAILED)"
echo
bars() { # the issue's bars for the fdi routes
  for route in $ROUTES; do
    [ "$route" = native ] && continue
    local p99=${P99[$route/10000]:-} mx=${APPLIED[$route/max]:-} nmx=${APPLIED[native/max]:-} rss_max=0
    for label in $RATES max; do
      [ -n "${RSS[$route/$label]:-}" ] && [ "${RSS[$route/$label]}" -gt "$rss_max" ] && rss_max=${RSS[$route/$label]}
    done
    local b1="-" b2="-" b3="-"
    [ -n "$p99" ] && b1="$p99 ms $( [ "$(echo "$p99 < 1000" | bc)" = 1 ] && echo PASS || echo FAIL)"
    [ -n "$mx" ] && [ -n "$nmx" ] && b2="$(printf "%.2fx" "$(echo "$mx / $nmx" | bc -l)") $( [ "$(echo "$mx >= 0.8 * $nmx" | bc)" = 1 ] && echo PASS || echo FAIL)"
    if [[ "${NOTE[$route/max]:-}" == *source-limited* ]]; then
      b2+=" (the source, not the pipeline, set this route's max: lag stayed flat at all it produced; compare the sources' rates above)"
    fi
    [ "$rss_max" -gt 0 ] && b3="$(printf "%.1f" "$(echo "$rss_max / 1024" | bc -l)") MB $( [ "$rss_max" -lt 153600 ] && echo PASS || echo FAIL)"
    echo "bars $route: p99 lag at 10,000/s < 1 s: $b1; max sustained >= 0.8x native: $b2; peak RSS < 150 MB: $b3"
  done
}
bars
[ $FAILED = 0 ] || { log "some runs FAILED (see the status column)"; exit 1; }
