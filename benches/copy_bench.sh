#!/usr/bin/env bash
# Copy benchmark: 1,000,000 rows through the fdi engine (release build, real connectors) versus
# the plain client pipes, route by route, in the same run.
#   engine:   crates/fdi-engine/examples/copy_bench.rs
#   baseline: psql \copy ... to stdout | psql \copy ... from stdin            (PG -> PG)
#             mariadb --batch --quick | psql \copy ... from stdin             (MySQL -> PG)
#             mariadb --batch --quick | mariadb LOAD DATA LOCAL INFILE        (MySQL -> MySQL)
# Usage: benches/copy_bench.sh [rows]     (needs PostgreSQL and MariaDB on 127.0.0.1, db `test`)
set -euo pipefail
ROWS=${1:-1000000}
cd "$(dirname "$0")/.."
PSQL=(psql -h 127.0.0.1 -U postgres -d test -q -v ON_ERROR_STOP=1)
MY=(mariadb -h 127.0.0.1 -u root test)

echo "building release example..." >&2
cargo build --release -p fdi-engine --example copy_bench >&2
BIN=target/release/examples/copy_bench

COLS="id, name, email, amount, qty, created_at, updated_at, note"
echo "preparing $ROWS rows..." >&2
"${PSQL[@]}" <<SQL
DROP TABLE IF EXISTS bench_src, bench_dst;
CREATE TABLE bench_src (id bigint PRIMARY KEY, name varchar(64), email varchar(128), amount numeric(12,2), qty int,
  created_at timestamp, updated_at timestamp, note text);
CREATE TABLE bench_dst (LIKE bench_src INCLUDING ALL);
INSERT INTO bench_src SELECT g, 'name ' || g, 'user' || g || '@example.com', (g % 100000) / 100.0 + 0.01, g % 1000,
  timestamp '2024-01-01 00:00:00' + g * interval '1 second', timestamp '2024-06-01 12:00:00.123456' + g * interval '1 second',
  rpad('note ' || md5(g::text), 100, 'x')
FROM generate_series(1, $ROWS) g;
ANALYZE bench_src;
SQL
"${MY[@]}" <<SQL
DROP TABLE IF EXISTS bench_src, bench_dst;
CREATE TABLE bench_src (id bigint PRIMARY KEY, name varchar(64), email varchar(128), amount decimal(12,2), qty int,
  created_at datetime(6), updated_at datetime(6), note text) DEFAULT CHARSET=utf8mb4;
CREATE TABLE bench_dst LIKE bench_src;
INSERT INTO bench_src SELECT seq, CONCAT('name ', seq), CONCAT('user', seq, '@example.com'), (seq % 100000) / 100.0 + 0.01, seq % 1000,
  '2024-01-01 00:00:00' + INTERVAL seq SECOND, '2024-06-01 12:00:00.123456' + INTERVAL seq SECOND,
  RPAD(CONCAT('note ', MD5(seq)), 100, 'x')
FROM seq_1_to_${ROWS};
SQL

now() { date +%s.%N; }
clear_pg() { "${PSQL[@]}" -c "TRUNCATE bench_dst"; }
clear_my() { "${MY[@]}" -e "TRUNCATE bench_dst"; }
count_pg() { "${PSQL[@]}" -At -c "SELECT count(*) FROM bench_dst"; }
count_my() { "${MY[@]}" -N -e "SELECT count(*) FROM bench_dst"; }

# Engine run: prints "rows secs bytes rss_kb"
engine() { # src_kind dst_kind
  local line; line=$("$BIN" "$1" bench_src "$2" bench_dst)
  echo "$line" >&2
  [[ "$line" == *"status=SUCCESS"* ]] || { echo "engine run failed: $line" >&2; exit 1; }
  local rows secs bytes rss
  rows=$(sed -E 's/.*rows=([0-9]+).*/\1/' <<<"$line"); secs=$(sed -E 's/.*secs=([0-9.]+).*/\1/' <<<"$line")
  bytes=$(sed -E 's/.*bytes=([0-9]+).*/\1/' <<<"$line"); rss=$(sed -E 's/.*peak_rss_kb=([0-9]+).*/\1/' <<<"$line")
  echo "$rows $secs $bytes $rss"
}

baseline() { # route -> secs
  local t0 t1
  t0=$(now)
  case "$1" in
    pg-pg) "${PSQL[@]}" -c "\\copy (SELECT $COLS FROM bench_src) TO STDOUT" | "${PSQL[@]}" -c "\\copy bench_dst FROM STDIN" ;;
    mysql-pg) "${MY[@]}" --batch --quick --skip-column-names --raw -e "SELECT $COLS FROM bench_src" \
                | "${PSQL[@]}" -c "\\copy bench_dst FROM STDIN WITH (NULL 'NULL')" ;;
    mysql-mysql) "${MY[@]}" --batch --quick --skip-column-names -e "SELECT $COLS FROM bench_src" \
                | "${MY[@]}" --local-infile=1 -e "LOAD DATA LOCAL INFILE '/dev/stdin' INTO TABLE bench_dst" ;;
  esac
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}

printf "%-12s %14s %8s %12s %16s %7s\n" route "engine rows/s" "MB/s" "peak RSS MB" "baseline rows/s" ratio
for route in pg-pg mysql-pg mysql-mysql; do
  src=${route%-*}; dst=${route#*-}
  if [ "$dst" = pg ]; then clear_pg; else clear_my; fi
  read -r rows secs bytes rss < <(engine "$src" "$dst")
  got=$([ "$dst" = pg ] && count_pg || count_my)
  [ "$got" = "$ROWS" ] || { echo "engine $route: target has $got rows, expected $ROWS" >&2; exit 1; }
  if [ "$dst" = pg ]; then clear_pg; else clear_my; fi
  bsecs=$(baseline "$route")
  got=$([ "$dst" = pg ] && count_pg || count_my)
  [ "$got" = "$ROWS" ] || { echo "baseline $route: target has $got rows, expected $ROWS" >&2; exit 1; }
  erate=$(echo "$rows / $secs" | bc -l); brate=$(echo "$ROWS / $bsecs" | bc -l)
  printf "%-12s %14.0f %8.1f %12.1f %16.0f %7.2f\n" "$route" "$erate" "$(echo "$bytes / $secs / 1048576" | bc -l)" \
    "$(echo "$rss / 1024" | bc -l)" "$brate" "$(echo "$erate / $brate" | bc -l)"
done
