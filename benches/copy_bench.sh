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
#   env ROUTES="pg-pg mysql-pg mysql-mysql"
#   env CARGO_TARGET_DIR=...          where the release example is built (default: target/)
#   env SKIP_BUILD=1 / SKIP_PREPARE=1 reuse the built example / the existing bench_src tables
# Needs PostgreSQL (127.0.0.1:5432, user postgres, db test) and MariaDB/MySQL (127.0.0.1:3306,
# root, db test, local_infile allowed) plus psql, mariadb and bc.
#
# Every run (engine or baseline) starts from an empty bench_dst and is verified afterwards: row
# count, count(distinct id), sum(amount), sum(qty), a sum over md5(name|email|note) and a sum over
# both timestamps must equal the source's. Any mismatch or failed run aborts the script.
set -euo pipefail
ROWS=${1:-1000000}
RUNS=${RUNS:-2}
ROUTES=${ROUTES:-"pg-pg mysql-pg mysql-mysql"}
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

clear_dst() { if [ "$1" = pg ]; then "${PSQL[@]}" -c "TRUNCATE bench_dst"; else "${MY[@]}" -e "TRUNCATE bench_dst"; fi; }
verify_dst() { # who route dst
  local got; got=$(check_"$3" bench_dst)
  [ "$got" = "$SRC_PG" ] || die "$1 $2: bench_dst is [$got], expected [$SRC_PG]"
}
now() { date +%s.%N; }

# Engine run: sets E_SECS E_BYTES E_RSS_KB (wall time of the whole process).
engine() { # src dst
  local t0 t1 line
  t0=$(now)
  line=$("$BIN" "$1" bench_src "$2" bench_dst) || die "engine $1-$2 exited with $?: $line"
  t1=$(now)
  log "  engine   $1-$2: $line"
  [[ "$line" == *"status=SUCCESS"* ]] || die "engine $1-$2 did not succeed: $line"
  local rows; rows=$(sed -E 's/.*rows=([0-9]+).*/\1/' <<<"$line")
  [ "$rows" = "$ROWS" ] || die "engine $1-$2 reported $rows rows, expected $ROWS"
  E_SECS=$(echo "$t1 - $t0" | bc -l)
  E_BYTES=$(sed -E 's/.*bytes=([0-9]+).*/\1/' <<<"$line")
  E_RSS_KB=$(sed -E 's/.*peak_rss_kb=([0-9]+).*/\1/' <<<"$line")
}

# Baseline run: sets B_SECS.
baseline() { # route
  local t0 t1
  t0=$(now)
  case "$1" in
    pg-pg) "${PSQL[@]}" -c "\\copy (SELECT $COLS FROM bench_src) TO STDOUT" \
             | "${PSQL[@]}" -c "\\copy bench_dst ($COLS) FROM STDIN" ;;
    mysql-pg) "${MY[@]}" --batch --quick --skip-column-names -e "SELECT $COLS FROM bench_src" \
             | "${PSQL[@]}" -c "\\copy bench_dst ($COLS) FROM STDIN WITH (NULL 'NULL')" ;;
    mysql-mysql) "${MY[@]}" --batch --quick --skip-column-names -e "SELECT $COLS FROM bench_src" \
             | "${MY[@]}" --local-infile=1 -e "LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE bench_dst ($COLS)" ;;
    *) die "unknown route $1" ;;
  esac
  t1=$(now)
  B_SECS=$(echo "$t1 - $t0" | bc -l)
  log "  baseline $1: ${B_SECS}s"
}

min() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc -l)" = 1 ]; then echo "$2"; else echo "$1"; fi; }

LOAD_START=$(loadavg)
RESULTS=()
for route in $ROUTES; do
  src=${route%-*}; dst=${route#*-}
  best_e=""; best_b=""; bytes=0; rss_kb=0; loads=()
  for run in $(seq 1 "$RUNS"); do
    loads+=("$(loadavg | cut -d' ' -f1)")
    log "$route run $run/$RUNS (load $(loadavg))"
    clear_dst "$dst"
    engine "$src" "$dst"
    verify_dst engine "$route" "$dst"
    [ "$E_BYTES" -gt "$bytes" ] && bytes=$E_BYTES
    [ "$E_RSS_KB" -gt "$rss_kb" ] && rss_kb=$E_RSS_KB
    best_e=$(min "$best_e" "$E_SECS")
    clear_dst "$dst"
    baseline "$route"
    verify_dst baseline "$route" "$dst"
    best_b=$(min "$best_b" "$B_SECS")
  done
  clear_dst "$dst"
  RESULTS+=("$route $best_e $bytes $rss_kb $best_b ${loads[*]}")
done
LOAD_END=$(loadavg)

echo
echo "copy benchmark: $ROWS rows, best of $RUNS runs per side; $(nproc) cores; load avg at start $LOAD_START, at end $LOAD_END"
printf "%-12s %13s %8s %12s %15s %7s %9s %9s  %s\n" route "engine rows/s" "MB/s" "peak RSS MB" "baseline rows/s" ratio "engine s" "base s" "load(1m) per run"
for r in "${RESULTS[@]}"; do
  read -r route es bytes rss bs loads <<<"$r"
  erate=$(echo "$ROWS / $es" | bc -l); brate=$(echo "$ROWS / $bs" | bc -l)
  printf "%-12s %13.0f %8.1f %12.1f %15.0f %7.2f %9.2f %9.2f  %s\n" "$route" "$erate" \
    "$(echo "$bytes / $es / 1048576" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$brate" \
    "$(echo "$erate / $brate" | bc -l)" "$es" "$bs" "$loads"
done
echo "verified: every engine and baseline run left bench_dst equal to bench_src (count, distinct ids, sum(amount), sum(qty), md5 sum, timestamp sum)"
echo "MB/s = bytes the engine's writer sent (COPY payload for PostgreSQL, INSERT value tuples for MySQL) per wall second of the engine process"
