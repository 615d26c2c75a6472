#!/usr/bin/env python3
"""One-row run latency: POST tasks/{id}/run -> the run's monitor log says SUCCESS, over N runs of
a 1-row PostgreSQL -> PostgreSQL task on a running fdi server (embedded SQLite store), side by side
with the baseline pipe `psql \\copy (select ...) to stdout | psql \\copy ... from stdin` over the
same rows. Run by benches/run_latency_bench.sh, which builds and starts the server.

The client keeps one HTTP connection and polls the run every 2 ms, so the printed time is the
wall time a caller sees (within ~2 ms). The server-side span (the run's end_time - start_time)
is printed too. Every run is checked: SUCCESS with data_count 1, and the target row equal to the
source's.
"""
import http.client
import json
import os
import statistics
import subprocess
import sys
import time

BASE = "/v2/bench/fdi/instances/bench"
PSQL = ["psql", "-X", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q", "-v", "ON_ERROR_STOP=1"]


class Api:
    def __init__(self, port, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.headers = {"X-Auth-Token": token, "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=self.headers)
        r = self.conn.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if data else None)


def psql(sql):
    return subprocess.run(PSQL + ["-Atc", sql], check=True, capture_output=True, text=True).stdout.strip()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    port, token, runs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    psql("DROP TABLE IF EXISTS lat_src, lat_dst; "
         "CREATE TABLE lat_src (id bigint PRIMARY KEY, name text, amount numeric(12,2), at timestamp); "
         "CREATE TABLE lat_dst (LIKE lat_src INCLUDING ALL); "
         "INSERT INTO lat_src VALUES (1, 'one row', 12.34, '2024-01-01 10:00:00.123456')")
    api = Api(port, token)
    st, app = api.call("POST", "/v2/bench/instances/bench/apps", {"name": f"lat_{os.getpid()}"})
    assert st in (200, 201), (st, app)
    app_id = app["id"]
    # The datasource as a user writes it (TLS preferred: the local server has ssl=on).
    content = {"host": "127.0.0.1", "port": "5432", "database_name": "test", "user_name": "postgres", "password": "x"}
    st, ds = api.call("POST", f"{BASE}/datasources", {"datasource_name": f"lat_{os.getpid()}", "datasource_type": "POSTGRESQL", "app_id": app_id, "content": content})
    assert st == 201, (st, ds)
    ds_id = ds["datasource_id"]
    def make_task(name, in_server):
        detail = {"sourceSelectedDatasource": {"sourceTable": "lat_src"},
                  "targetSelectedDatasource": {"targetTable": "lat_dst", "isSupportInServerCopy": in_server}}
        st, task = api.call("POST", f"{BASE}/tasks", {"task": {"task_name": f"lat_{name}_{os.getpid()}", "task_type": "TIMING", "source_datasource_id": ds_id, "target_datasource_id": ds_id}, "task_detail": json.dumps(detail)})
        assert st in (200, 201), (st, task)
        return task["task"]["task_id"]

    def measure(task_id):
        wall, server = [], []
        for i in range(runs):
            psql("TRUNCATE lat_dst")
            t0 = time.perf_counter()
            st, r = api.call("POST", f"{BASE}/tasks/{task_id}/run")
            assert st == 200, (st, r)
            tracking = r["tracking_id"]
            while True:
                st, log = api.call("GET", f"{BASE}/tasks/{task_id}/monitor-logs/{tracking}")
                if st == 200 and log.get("execute_status") not in ("RUNNING", "WAITING", None):
                    break
                time.sleep(0.002)
            t1 = time.perf_counter()
            # The run's counts and times are in the task's monitor-log list.
            st, page = api.call("GET", f"{BASE}/tasks/{task_id}/monitor-logs?limit=5")
            log = next(e for e in page["entities"] if e["id"] == tracking)
            assert log["execute_status"] == "SUCCESS" and log["data_count"] == 1, log
            assert psql("SELECT count(*) FROM lat_dst d JOIN lat_src s USING (id, name, amount, at)") == "1"
            wall.append((t1 - t0) * 1000)
            server.append(log["end_time"] - log["start_time"])
        return wall, server

    streamed, streamed_server = measure(make_task("stream", False))
    wall, server = measure(make_task("in_server", True))

    pipe = []
    for i in range(runs):
        psql("TRUNCATE lat_dst")
        t0 = time.perf_counter()
        subprocess.run("psql -X -h 127.0.0.1 -U postgres -d test -q -c '\\copy (select * from lat_src) to stdout' "
                       "| psql -X -h 127.0.0.1 -U postgres -d test -q -c '\\copy lat_dst from stdin'",
                       shell=True, check=True)
        pipe.append((time.perf_counter() - t0) * 1000)
        assert psql("SELECT count(*) FROM lat_dst") == "1"

    print(f"| 1-row PG->PG run, {runs} runs | p50 ms | p90 ms | max ms | min ms |")
    print("|---|---:|---:|---:|---:|")
    for name, xs in (("engine, rows streamed: POST run -> SUCCESS seen by the client", streamed),
                     ("engine, rows streamed: run start_time -> end_time (server)", streamed_server),
                     ("engine, rows streamed: first run only (new connections)", streamed[:1]),
                     ("engine, same-server shortcut: POST run -> SUCCESS", wall),
                     ("engine, same-server shortcut: start_time -> end_time", server),
                     ("baseline: psql \\copy | psql \\copy (TLS)", pipe)):
        print(f"| {name} | {pct(xs, 50):.1f} | {pct(xs, 90):.1f} | {max(xs):.1f} | {min(xs):.1f} |")
    print(f"| wall ratio engine/pipe p50, streamed (lower is faster) | {statistics.median(streamed) / statistics.median(pipe):.2f} | | | |")
    print(f"| wall ratio engine/pipe p50, shortcut (lower is faster) | {statistics.median(wall) / statistics.median(pipe):.2f} | | | |")


if __name__ == "__main__":
    main()
