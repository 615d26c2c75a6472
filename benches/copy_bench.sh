#!/usr/bin/env bash
# Copy benchmark: N rows (default 1,000,000) through the fdi engine (release build, real
# connectors) versus the plain client pipes, route by route, side by side in the same run.
#   engine:   crates/fdi-engine/examples/copy_bench.rs
#   baseline: psql \copy (select ...) to stdout | psql \copy ... from stdin     (PG -> PG)
#             mariadb --batch --quick | psql \copy ... from stdin               (MySQL -> PG)
#             mariadb --batch --quick | mariadb LOAD DATA LOCAL INFILE          (MySQL -> MySQL)
#
# Usage: benches/copy_bench.sh [rows]
#   env RUNS=2                        runs per route and side; the best (fastest) one is reported
#   env ROUTES="pg-pg pg-pg:stream mysql-pg mysql-mysql mysql-mysql:stream pg-pg:upsert pg-pg:upsert-stream pg-pg:wide-stream mysql-pg:wide"
#                                     (:stream = same-server shortcut off; :upsert = into 1M rows, half changed;
#                                      :wide = WIDE_ROWS rows (default 1000) of a 1 MB text column, for peak RSS)
#   env CARGO_TARGET_DIR=...          where the release example is built (default: target/)
#   env SKIP_BUILD=1 / SKIP_PREPARE=1 reuse the built example / the existing bench_src tables
#   env OVERHEAD=1                    instead: the metrics overhead (issue 11), see "OVERHEAD=1" below
# Needs PostgreSQL (127.0.0.1:5432, user postgres, db test) and MariaDB/MySQL (127.0.0.1:3306,
# root, db test, local_infile allowed) plus psql, mariadb and bc.
#
# Every run (engine or baseline) starts from an empty bench_dst and is verified afterwards: row
# count, count(distinct id), sum(amount), sum(qty), a sum over md5(name|email|note) and a sum over
# both timestamps must equal the source's. Any mismatch or failed run aborts the script.
set -euo pipefail
ROWS=${1:-1000000}
RUNS=${RUNS:-2}
ROUTES=${ROUTES:-"pg-pg pg-pg:stream mysql-pg mysql-mysql mysql-mysql:stream pg-pg:upsert pg-pg:upsert-stream pg-pg:wide-stream mysql-pg:wide"}
WIDE_ROWS=${WIDE_ROWS:-1000}
TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-$(dirname "$0")/../target}")
cd "$(dirname "$0")/.."
export PGCONNECT_TIMEOUT=10
PSQL=(psql -X -h 127.0.0.1 -U postgres -d test -q -v ON_ERROR_STOP=1)
MY=(mariadb -h 127.0.0.1 -u root test)

log() { echo "[$(date +%T)] $*" >&2; }
# shellcheck source=benches/bench_pg.sh
source benches/bench_pg.sh
die() { log "FAILED: $*"; exit 1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---- OVERHEAD=1: metrics on vs off (issue 11) ------------------------------------------------
# The PG -> PG copy of $ROWS rows (bench_src -> bench_dst) as a task of the release `fdi` server:
# two servers, one with --metrics on, one with --metrics off (each its own data dir / SQLite
# store), OVERHEAD_RUNS runs each (default 5), alternating on/off/on/off... so that both sides
# see the same machine load. Every run starts from an empty bench_dst and is verified against
# bench_src. Prints per side the median and best wall time of the run (the monitor log's
# end_time - start_time) and the client's POST run -> SUCCESS time, and the ratios on/off.
# Bar: on/off under 1.03.
#   OVERHEAD=1 benches/copy_bench.sh [rows]   (env OVERHEAD_RUNS=5, SKIP_BUILD=1, SKIP_PREPARE=1, FDI_BIN=path)
overhead_server() { # name metrics-mode -> sets <name>_PORT, <name>_PID, <name>_DIR
  local dir port
  dir=$(mktemp -d /tmp/fdi-overhead-$1.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$FDI_BIN" serve --listen "127.0.0.1:$port" --data-dir "$dir" --auth-tokens bench-token \
    --metrics "$2" 2>"$dir/server.log" >/dev/null &
  printf -v "$1_PID" %s $!
  printf -v "$1_PORT" %s "$port"
  printf -v "$1_DIR" %s "$dir"
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && return; sleep 0.1; done
  die "fdi ($1) did not start: $(cat "$dir/server.log")"
}
overhead_api() { # port method path [json]
  curl -sf -X "$2" -H 'X-Auth-Token: bench-token' -H 'Content-Type: application/json' \
    "http://127.0.0.1:$1$3" ${4:+-d "$4"} || die "$2 $3 failed"
}
overhead_task() { # port -> prints the task id of a bench_src -> bench_dst task
  local fdi=/v2/bench/fdi/instances/bench app ds detail
  app=$(overhead_api "$1" POST /v2/bench/instances/bench/apps '{"name":"overhead","remark":"bench"}' | jq -r .id)
  ds=$(overhead_api "$1" POST $fdi/datasources "$(jq -nc --arg app "$app" '{datasource_name:"pg", datasource_type:"POSTGRESQL", app_id:$app,
    content:{host:"127.0.0.1", port:"5432", database_name:"test", user_name:"postgres", password:"bench"}}')" | jq -r .datasource_id)
  detail=$(jq -nc '{sourceSelectedDatasource:{sourceTable:"bench_src"}, targetSelectedDatasource:{targetTable:"bench_dst", isSupportInServerCopy:false}}')
  overhead_api "$1" POST $fdi/tasks "$(jq -nc --arg ds "$ds" --arg d "$detail" '{task:{task_name:"overhead", task_type:"TIMING",
    source_datasource_id:$ds, target_datasource_id:$ds}, task_detail:$d}')" | jq -r .task.task_id
}
overhead_run() { # port task -> sets O_RUN_S (start->end of the run) and O_CLIENT_S (POST -> SUCCESS)
  local fdi=/v2/bench/fdi/instances/bench t0 run status
  "${PSQL[@]}" -c "TRUNCATE bench_dst"
  t0=$(now)
  overhead_api "$1" POST "$fdi/tasks/$2/run" '{}' >/dev/null
  while :; do
    run=$(overhead_api "$1" GET "$fdi/tasks/$2/monitor-logs?limit=1" | jq -c '.entities[0]')
    status=$(jq -r .execute_status <<<"$run")
    case "$status" in SUCCESS) break ;; ERROR|CANCELLED) die "run ended $status: $run" ;; esac
    sleep 0.05
  done
  O_CLIENT_S=$(echo "$(now) - $t0" | bc -l)
  O_RUN_S=$(jq -r '(.end_time - .start_time) / 1000' <<<"$run")
  [ "$(check_pg bench_dst)" = "$SRC_PG" ] || die "bench_dst differs from bench_src after a run"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
overhead_bench() {
  local runs=${OVERHEAD_RUNS:-5} side i on_run=() off_run=() on_client=() off_client=()
  FDI_BIN=${FDI_BIN:-$TARGET_DIR/release/fdi}
  if [ -z "${SKIP_BUILD:-}" ]; then
    log "building the release fdi binary (target dir $TARGET_DIR)..."
    CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q --bin fdi >&2
  fi
  [ -x "$FDI_BIN" ] || die "$FDI_BIN not built"
  if [ -z "${SKIP_PREPARE:-}" ]; then
    log "preparing $ROWS rows in PostgreSQL..."
    prepare_pg_bench_src "$ROWS"
  fi
  SRC_PG=$(check_pg bench_src)
  [ "${SRC_PG%% *}" = "$ROWS" ] || die "PostgreSQL bench_src has ${SRC_PG%% *} rows, expected $ROWS"
  overhead_server ON on
  overhead_server OFF off
  trap 'kill $ON_PID $OFF_PID 2>/dev/null; wait $ON_PID $OFF_PID 2>/dev/null; rm -rf "$ON_DIR" "$OFF_DIR"' EXIT
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$OFF_PORT/metrics")" = 404 ] || die "--metrics off still serves /metrics"
  local on_task off_task
  on_task=$(overhead_task "$ON_PORT"); off_task=$(overhead_task "$OFF_PORT")
  local load_start; load_start=$(loadavg)
  for i in $(seq 1 "$runs"); do
    for side in on off; do
      if [ "$side" = on ]; then overhead_run "$ON_PORT" "$on_task"; on_run+=("$O_RUN_S"); on_client+=("$O_CLIENT_S")
      else overhead_run "$OFF_PORT" "$off_task"; off_run+=("$O_RUN_S"); off_client+=("$O_CLIENT_S"); fi
      log "  run $i/$runs metrics $side: run ${O_RUN_S}s, client ${O_CLIENT_S}s (load $(loadavg))"
    done
  done
  local scraped; scraped=$(curl -sf "http://127.0.0.1:$ON_PORT/metrics" | grep -c '^fdi_') || die "no fdi_ series on /metrics"
  local m_on m_off c_on c_off b_on b_off
  m_on=$(printf '%s\n' "${on_run[@]}" | median); m_off=$(printf '%s\n' "${off_run[@]}" | median)
  c_on=$(printf '%s\n' "${on_client[@]}" | median); c_off=$(printf '%s\n' "${off_client[@]}" | median)
  b_on=$(printf '%s\n' "${on_run[@]}" | sort -g | head -1); b_off=$(printf '%s\n' "${off_run[@]}" | sort -g | head -1)
  echo
  echo "metrics overhead: PG -> PG $ROWS rows through the fdi server, $runs runs per side alternating on/off; $(nproc) cores; load avg at start $load_start, at end $(loadavg)"
  printf "%-8s %14s %12s %17s\n" metrics "run median s" "run best s" "client median s"
  printf "%-8s %14.3f %12.3f %17.3f\n" on "$m_on" "$b_on" "$c_on"
  printf "%-8s %14.3f %12.3f %17.3f\n" off "$m_off" "$b_off" "$c_off"
  printf "ratio on/off: run median %.4f, run best %.4f, client median %.4f (bar: < 1.03)\n" \
    "$(echo "$m_on / $m_off" | bc -l)" "$(echo "$b_on / $b_off" | bc -l)" "$(echo "$c_on / $c_off" | bc -l)"
  echo "verified: every run left bench_dst equal to bench_src; /metrics of the 'on' server had $scraped fdi_ samples; the 'off' server answered 404"
}
now() { date +%s.%N; }
if [ -n "${OVERHEAD:-}" ]; then
  overhead_bench
  exit 0
fi
# ---- end of OVERHEAD=1 -----------------------------------------------------------------------

if [ -z "${SKIP_BUILD:-}" ]; then
  log "building release example (target dir $TARGET_DIR)..."
  CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q -p fdi-engine --example copy_bench >&2
fi
BIN=$TARGET_DIR/release/examples/copy_bench
[ -x "$BIN" ] || die "$BIN not built"

COLS="id, name, email, amount, qty, created_at, updated_at, note"
if [ -z "${SKIP_PREPARE:-}" ]; then
  log "preparing $ROWS rows in PostgreSQL..."
  prepare_pg_bench_src "$ROWS"
  log "preparing $ROWS rows in MariaDB..."
  "${MY[@]}" >/dev/null <<SQL
DROP TABLE IF EXISTS bench_src, bench_dst;
CREATE TABLE bench_src (id bigint PRIMARY KEY, name varchar(64), email varchar(128), amount decimal(12,2), qty int,
  created_at datetime(6), updated_at datetime(6), note text) DEFAULT CHARSET=utf8mb4;
CREATE TABLE bench_dst LIKE bench_src;
INSERT INTO bench_src SELECT seq, CONCAT('name ', seq), CONCAT('user', seq, '@example.com'), (seq % 100000) / 100.0 + 0.01, seq % 1000,
  TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND, TIMESTAMP'2024-06-01 12:00:00.123456' + INTERVAL seq SECOND,
  RPAD(CONCAT('note ', MD5(seq)), 100, 'x')
FROM seq_1_to_${ROWS};
ANALYZE TABLE bench_src;
SQL
fi

# The wide tables: WIDE_ROWS rows whose note is 1 MB of text (32,768 times the md5 of the id).
if [ -z "${SKIP_PREPARE:-}" ] && [[ "$ROUTES" == *wide* ]]; then
  log "preparing $WIDE_ROWS rows of 1 MB in PostgreSQL and MariaDB..."
  PGOPTIONS="-c client_min_messages=warning" "${PSQL[@]}" <<SQL
DROP TABLE IF EXISTS bench_wide_src, bench_wide_dst;
CREATE TABLE bench_wide_src (id bigint PRIMARY KEY, note text);
CREATE TABLE bench_wide_dst (LIKE bench_wide_src INCLUDING ALL);
INSERT INTO bench_wide_src SELECT g, repeat(md5(g::text), 32768) FROM generate_series(1, $WIDE_ROWS) g;
VACUUM ANALYZE bench_wide_src;
SQL
  "${MY[@]}" >/dev/null <<SQL
DROP TABLE IF EXISTS bench_wide_src, bench_wide_dst;
CREATE TABLE bench_wide_src (id bigint PRIMARY KEY, note longtext) DEFAULT CHARSET=utf8mb4;
CREATE TABLE bench_wide_dst LIKE bench_wide_src;
INSERT INTO bench_wide_src SELECT seq, REPEAT(MD5(seq), 32768) FROM seq_1_to_${WIDE_ROWS};
ANALYZE TABLE bench_wide_src;
SQL
fi
check_wide_pg() {
  "${PSQL[@]}" -At -F' ' -c "SELECT count(*), sum(id), sum(length(note)),
    sum(('x' || substr(md5(note), 1, 15))::bit(60)::bigint) FROM $1"
}
check_wide_mysql() {
  "${MY[@]}" -N -e "SELECT count(*), sum(id), sum(length(note)),
    sum(CAST(CONV(SUBSTR(MD5(note), 1, 15), 16, 10) AS UNSIGNED)) FROM $1" | tr '\t' ' '
}

# One line per table (check_pg is in bench_pg.sh; this is its MariaDB twin).
check_mysql() {
  "${MY[@]}" -N -e "SELECT count(*), count(DISTINCT id), sum(amount), sum(qty),
    sum(CAST(CONV(SUBSTR(MD5(CONCAT_WS('|', name, email, note)), 1, 15), 16, 10) AS UNSIGNED)),
    sum(TIMESTAMPDIFF(MICROSECOND, '2024-01-01', created_at) + TIMESTAMPDIFF(MICROSECOND, '2024-01-01', updated_at))
    FROM $1" | tr '\t' ' '
}
SRC_PG=$(check_pg bench_src)
SRC_MY=$(check_mysql bench_src)
log "source pg:    $SRC_PG"
log "source mysql: $SRC_MY"
[ "${SRC_PG%% *}" = "$ROWS" ] || die "PostgreSQL bench_src has ${SRC_PG%% *} rows, expected $ROWS"
[ "$SRC_PG" = "$SRC_MY" ] || die "the PostgreSQL and MariaDB sources differ"
if [[ "$ROUTES" == *wide* ]]; then
  WIDE_PG=$(check_wide_pg bench_wide_src)
  [ "${WIDE_PG%% *}" = "$WIDE_ROWS" ] || die "PostgreSQL bench_wide_src has ${WIDE_PG%% *} rows, expected $WIDE_ROWS"
  [ "$(check_wide_mysql bench_wide_src)" = "$WIDE_PG" ] || die "the wide PostgreSQL and MariaDB sources differ"
fi
# What a route copies (the wide routes switch these).
T_SRC=bench_src; T_DST=bench_dst; T_ROWS=$ROWS; T_CHECK=check; T_WANT=$SRC_PG; T_COLS="id, name, email, amount, qty, created_at, updated_at, note"

clear_dst() { if [ "$1" = pg ]; then "${PSQL[@]}" -c "TRUNCATE $T_DST"; else "${MY[@]}" -e "TRUNCATE $T_DST"; fi; }
# The upsert rows' starting point: bench_dst holds every source row, the odd ids with other values.
half_changed_dst() {
  [ "$1" = pg ] || die "upsert routes are PostgreSQL only"
  PGOPTIONS="-c client_min_messages=warning" "${PSQL[@]}" -c "TRUNCATE bench_dst" \
    -c "INSERT INTO bench_dst SELECT * FROM bench_src" \
    -c "UPDATE bench_dst SET name = name || ' old', amount = amount + 1 WHERE id % 2 = 1" -c "VACUUM ANALYZE bench_dst"
}
verify_dst() { # who route dst
  local got; got=$(${T_CHECK}_"$3" "$T_DST")
  [ "$got" = "$T_WANT" ] || die "$1 $2: $T_DST is [$got], expected [$T_WANT]"
}
now() { date +%s.%N; }

# Engine run: sets E_SECS E_BYTES E_RSS_KB (wall time of the whole process).
engine() { # src dst
  local t0 t1 line
  t0=$(now)
  line=$(FDI_IN_SERVER=${E_IN_SERVER:-1} FDI_UPSERT=${E_UPSERT:-0} "$BIN" "$1" "$T_SRC" "$2" "$T_DST") \
    || die "engine $1-$2 exited with $?: $line"
  t1=$(now)
  log "  engine   $1-$2: $line"
  [[ "$line" == *"status=SUCCESS"* ]] || die "engine $1-$2 did not succeed: $line"
  local rows; rows=$(sed -E 's/.*rows=([0-9]+).*/\1/' <<<"$line")
  [ "$rows" = "$T_ROWS" ] || die "engine $1-$2 reported $rows rows, expected $T_ROWS"
  E_SECS=$(echo "$t1 - $t0" | bc -l)
  E_BYTES=$(sed -E 's/.*bytes=([0-9]+).*/\1/' <<<"$line")
  E_RSS_KB=$(sed -E 's/.*peak_rss_kb=([0-9]+).*/\1/' <<<"$line")
}

# Baseline run: sets B_SECS.
baseline() { # route
  local t0 t1
  t0=$(now)
  case "$1" in
    pg-pg) "${PSQL[@]}" -c "\\copy (SELECT $T_COLS FROM $T_SRC) TO STDOUT" \
             | "${PSQL[@]}" -c "\\copy $T_DST ($T_COLS) FROM STDIN" ;;
    mysql-pg) "${MY[@]}" --batch --quick --skip-column-names -e "SELECT $T_COLS FROM $T_SRC" \
             | "${PSQL[@]}" -c "\\copy $T_DST ($T_COLS) FROM STDIN WITH (NULL 'NULL')" ;;
    mysql-mysql) "${MY[@]}" --batch --quick --skip-column-names -e "SELECT $T_COLS FROM $T_SRC" \
             | "${MY[@]}" --local-infile=1 -e "LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE $T_DST ($T_COLS)" ;;
    # The pipe's upsert: COPY into a session temporary table, then one INSERT ... ON CONFLICT.
    pg-pg-upsert) "${PSQL[@]}" -c "\\copy (SELECT $COLS FROM bench_src) TO STDOUT" \
             | "${PSQL[@]}" -c "CREATE TEMP TABLE s (LIKE bench_dst)" -c "\\copy s ($COLS) FROM STDIN" \
                 -c "INSERT INTO bench_dst SELECT * FROM s ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                     email = excluded.email, amount = excluded.amount, qty = excluded.qty, created_at = excluded.created_at,
                     updated_at = excluded.updated_at, note = excluded.note" ;;
    *) die "unknown route $1" ;;
  esac
  t1=$(now)
  B_SECS=$(echo "$t1 - $t0" | bc -l)
  log "  baseline $1: ${B_SECS}s"
}

min() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc -l)" = 1 ]; then echo "$2"; else echo "$1"; fi; }

LOAD_START=$(loadavg)
RESULTS=()
# A route is SRC-DST with optional variants after a colon: `stream` turns the same-server shortcut
# off (rows go out of the server and back in), `upsert` loads into a bench_dst that already holds
# every row, half of them changed (PostgreSQL only), e.g. pg-pg:upsert-stream.
for route in $ROUTES; do
  base=${route%%:*}; variant=""; [ "$base" != "$route" ] && variant=${route#*:}
  src=${base%-*}; dst=${base#*-}
  E_IN_SERVER=1; E_UPSERT=0; prep=clear_dst; pipe=$base
  [[ "$variant" == *stream* ]] && E_IN_SERVER=0
  [[ "$variant" == *upsert* ]] && { E_UPSERT=1; prep=half_changed_dst; pipe=$base-upsert; }
  if [[ "$variant" == *wide* ]]; then
    T_SRC=bench_wide_src; T_DST=bench_wide_dst; T_ROWS=$WIDE_ROWS; T_CHECK=check_wide; T_WANT=$WIDE_PG; T_COLS="id, note"
  else
    T_SRC=bench_src; T_DST=bench_dst; T_ROWS=$ROWS; T_CHECK=check; T_WANT=$SRC_PG; T_COLS=$COLS
  fi
  best_e=""; best_b=""; bytes=0; rss_kb=0; loads=()
  for run in $(seq 1 "$RUNS"); do
    loads+=("$(loadavg | cut -d' ' -f1)")
    log "$route run $run/$RUNS (load $(loadavg))"
    "$prep" "$dst"
    engine "$src" "$dst"
    verify_dst engine "$route" "$dst"
    [ "$E_BYTES" -gt "$bytes" ] && bytes=$E_BYTES
    [ "$E_RSS_KB" -gt "$rss_kb" ] && rss_kb=$E_RSS_KB
    best_e=$(min "$best_e" "$E_SECS")
    "$prep" "$dst"
    baseline "$pipe"
    verify_dst baseline "$route" "$dst"
    best_b=$(min "$best_b" "$B_SECS")
  done
  clear_dst "$dst"
  RESULTS+=("$route $T_ROWS $best_e $bytes $rss_kb $best_b ${loads[*]}")
done
LOAD_END=$(loadavg)

echo
echo "copy benchmark: $ROWS rows, best of $RUNS runs per side; $(nproc) cores; load avg at start $LOAD_START, at end $LOAD_END"
printf "%-22s %13s %8s %12s %15s %22s %9s %9s  %s\n" route "engine rows/s" "MB/s" "peak RSS MB" "baseline rows/s" "wall ratio (eng/base)" "engine s" "base s" "load(1m) per run"
for r in "${RESULTS[@]}"; do
  read -r route rows es bytes rss bs loads <<<"$r"
  erate=$(echo "$rows / $es" | bc -l); brate=$(echo "$rows / $bs" | bc -l)
  printf "%-22s %13.0f %8.1f %12.1f %15.0f %22.2f %9.2f %9.2f  %s\n" "$route" "$erate" \
    "$(echo "$bytes / $es / 1048576" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$brate" \
    "$(echo "$es / $bs" | bc -l)" "$es" "$bs" "$loads"
done
echo "wall ratio = engine wall / baseline pipe wall: lower is faster (0.5 = twice as fast as the pipe)"
echo "routes without ':stream' take the same-server shortcut where source and target are one server (MB/s then 0: no rows leave the server)"
echo "':wide' routes copy $WIDE_ROWS rows of a 1 MB text column (bench_wide_src), for peak RSS against row width"
echo "verified: every engine and baseline run left bench_dst equal to bench_src (count, distinct ids, sum(amount), sum(qty), md5 sum, timestamp sum)"
echo "MB/s = bytes the engine's writer sent (COPY payload for PostgreSQL, INSERT value tuples for MySQL) per wall second of the engine process"
