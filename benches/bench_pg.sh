# Shared by the copy and stream benchmarks (sourced): the PostgreSQL side of the copy benchmark's
# 8-column table and its checksum. Needs PSQL=(psql ...) and log() from the sourcing script.

# prepare_pg_bench_src ROWS: bench_src with ROWS rows and an empty bench_dst like it.
prepare_pg_bench_src() {
  PGOPTIONS="-c client_min_messages=warning" "${PSQL[@]}" <<SQL
DROP TABLE IF EXISTS bench_src, bench_dst;
CREATE TABLE bench_src (id bigint PRIMARY KEY, name varchar(64), email varchar(128), amount numeric(12,2), qty int,
  created_at timestamp, updated_at timestamp, note text);
CREATE TABLE bench_dst (LIKE bench_src INCLUDING ALL);
INSERT INTO bench_src SELECT g, 'name ' || g, 'user' || g || '@example.com', (g % 100000) / 100.0 + 0.01, g % 1000,
  timestamp '2024-01-01 00:00:00' + g * interval '1 second', timestamp '2024-06-01 12:00:00.123456' + g * interval '1 second',
  rpad('note ' || md5(g::text), 100, 'x')
FROM generate_series(1, $1) g;
VACUUM ANALYZE bench_src;
SQL
}

# check_pg TABLE: count, distinct ids, sum(amount), sum(qty), sum of md5(name|email|note)
# prefixes, sum of both timestamps in microseconds since 2024-01-01 (one line).
check_pg() {
  "${PSQL[@]}" -At -F' ' -c "SELECT count(*), count(DISTINCT id), sum(amount), sum(qty),
    sum(('x' || substr(md5(concat_ws('|', name, email, note)), 1, 15))::bit(60)::bigint),
    sum((extract(epoch FROM created_at - timestamp '2024-01-01') * 1000000)::bigint
      + (extract(epoch FROM updated_at - timestamp '2024-01-01') * 1000000)::bigint)
    FROM $1"
}
