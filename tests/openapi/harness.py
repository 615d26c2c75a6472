"""Helpers of tests/openapi/run.sh (standard library only).

  harness.py seed BASE TOKEN FILES_DIR CONFIG_OUT
      Creates an app, two SQLite datasources (a `people` table and an empty `people_copy`), a
      TIMING task between them with a dispatch plan, and one run of it through the API, and writes a
      schemathesis.toml that pins the path parameters to them, so the fuzzing reaches past "not
      found" into the handlers; request bodies name them too (body.app_id, the task's
      datasources, ...), so creates and updates can succeed. DELETE operations get their own app, datasource and task, so
      the others keep theirs for the whole run.
  harness.py break DOC_IN DOC_OUT
      Copies the OpenAPI document with three deliberate lies (for --self-test): the 200 of
      GET /health says `status` is an integer, GET .../apps no longer documents its 200, and a
      monitor-log entry's `execute_status` is an integer (read in the run's event stream).
"""

import json
import os
import sqlite3
import sys
import urllib.error
import urllib.request

PROJECT = "p1"
INSTANCE = "i1"


def call(base, token, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("X-Auth-Token", token)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def seed(base, token, files_dir, config_out):
    src = f"{files_dir}/src.sqlite"
    dst = f"{files_dir}/dst.sqlite"
    for path, sql in [
        (src, "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);"
              "INSERT INTO people VALUES (1, 'a'), (2, 'b');"),
        (dst, "CREATE TABLE people_copy (id INTEGER PRIMARY KEY, name TEXT);"),
    ]:
        con = sqlite3.connect(path)
        con.executescript(sql)
        con.close()
    fdi = f"/v2/{PROJECT}/fdi/instances/{INSTANCE}"
    app = call(base, token, "POST", f"/v2/{PROJECT}/instances/{INSTANCE}/apps",
               {"name": "openapi-app"})["id"]
    ids = []
    for name, url in [("openapi-src", src), ("openapi-dst", dst)]:
        ds = call(base, token, "POST", f"{fdi}/datasources", {
            "datasource_name": name, "datasource_type": "SQLITE", "app_id": app,
            "content": {"url": url},
        })
        ids.append(ds["datasource_id"])
    detail = {"sourceSelectedDatasource": {"sourceTable": "people"},
              "targetSelectedDatasource": {"targetTable": "people_copy",
                                           "isSupportInServerCopy": False}}
    task = call(base, token, "POST", f"{fdi}/tasks", {
        "task": {"task_name": "openapi-task", "task_type": "TIMING",
                 "source_datasource_id": ids[0], "target_datasource_id": ids[1]},
        "task_detail": json.dumps(detail),
    })["task"]["task_id"]
    run = call(base, token, "POST", f"{fdi}/tasks/{task}/run")["tracking_id"]
    plan = call(base, token, "POST", f"{fdi}/tasks/{task}/dispatches",
                {"use_quartz_cron": True, "cron": "0 0 2 * * ?"})["dispatch_id"]
    # What the DELETE operations may remove.
    doomed_app = call(base, token, "POST", f"/v2/{PROJECT}/instances/{INSTANCE}/apps",
                      {"name": "openapi-doomed"})["id"]
    doomed_ds = call(base, token, "POST", f"{fdi}/datasources", {
        "datasource_name": "openapi-doomed", "datasource_type": "SQLITE", "app_id": app,
        "content": {"url": dst},
    })["datasource_id"]
    doomed_task = call(base, token, "POST", f"{fdi}/tasks", {
        "task": {"task_name": "openapi-doomed", "task_type": "TIMING",
                 "source_datasource_id": ids[0], "target_datasource_id": ids[1]},
        "task_detail": json.dumps(detail),
    })["task"]["task_id"]
    params = {
        "path.project_id": PROJECT,
        "path.instance_id": INSTANCE,
        "path.app_id": app,
        "path.datasource_id": ids[0],
        "path.task_id": task,
        "path.tracking_id": run,
        "path.dispatch_id": plan,
    }
    multi, pg_ds = seed_combination_task(base, token, fdi, app, ids[1]) or (None, None)
    # Request bodies that name the seeded resources, so creates and updates can succeed.
    bodies = {
        "body.app_id": app,
        "body.datasource_type": "SQLITE",
        "body.content": {"url": dst},
        "body.task.source_datasource_id": ids[0],
        "body.task.target_datasource_id": ids[1],
        "body.task.task_type": "TIMING",
        "body.task_detail": json.dumps(detail),
    }
    if multi:
        bodies.update({
            "body.source_datasource_id": pg_ds,
            "body.target_datasource_id": ids[1],
            "body.source_ds_id": pg_ds,
            "body.target_ds_id": ids[1],
        })
    doomed = {
        "path.app_id": doomed_app,
        "path.datasource_id": doomed_ds,
        "path.task_id": doomed_task,
    }
    with open(config_out, "w") as f:
        f.write("[parameters]\n")
        for k, v in {**params, **bodies}.items():
            f.write(f'"{k}" = {toml_value(v)}\n')
        if multi:
            # init allocates a new task (no body.task_id), the others name the seeded one.
            f.write('\n[[operations]]\ninclude-path-regex = "/multi-tasks/"\nexclude-method = "DELETE"\n'
                    'exclude-operation-id = "multi_tasks_init"\n[operations.parameters]\n')
            for k, v in {**params, **bodies, "path.task_id": multi, "body.task_id": multi}.items():
                f.write(f'"{k}" = {toml_value(v)}\n')
        f.write('\n[[operations]]\ninclude-method = "DELETE"\n[operations.parameters]\n')
        for k, v in {**params, **bodies, **doomed}.items():
            f.write(f'"{k}" = {toml_value(v)}\n')
    print(f"seeded app {app}, datasources {ids}, task {task}, run {run}")


def toml_value(v):
    """A string or a flat table of strings as TOML (JSON strings are TOML basic strings)."""
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {json.dumps(x)}" for k, x in v.items()) + " }"
    return json.dumps(v)


def seed_combination_task(base, token, fdi, app, target_ds):
    """A combination (CDC) task reading the PostgreSQL at FDI_OPENAPI_PG (default
    127.0.0.1:5432, database test, user postgres, as .ci/run starts it) into the SQLite target;
    None, said loudly, when that PostgreSQL cannot be used (the multi-tasks operations then only
    meet "not found")."""
    host, _, port = os.environ.get("FDI_OPENAPI_PG", "127.0.0.1:5432").partition(":")
    try:
        ds = call(base, token, "POST", f"{fdi}/datasources", {
            "datasource_name": "openapi-pg", "datasource_type": "POSTGRESQL", "app_id": app,
            "content": {"host": host, "port": port or "5432", "database_name": "test",
                        "user_name": "postgres", "password": "unused-trust-auth"},
        })["datasource_id"]
        init = call(base, token, "POST", f"{fdi}/multi-tasks/init", {
            "source_datasource_id": ds, "target_datasource_id": target_ds,
        })
        task = init[0]["task_id"]
        call(base, token, "POST", f"{fdi}/multi-tasks", {
            "task_id": task, "task_name": "openapi_cdc", "task_type": "REALTIME",
            "operation_types": ["INSERT", "UPDATE", "DELETE"],
        })
        print(f"seeded combination task {task} (source PostgreSQL {host}:{port})")
        return task, ds
    except (urllib.error.URLError, KeyError, IndexError) as e:
        body = e.read().decode() if isinstance(e, urllib.error.HTTPError) else ""
        print(f"WARNING: no combination task seeded ({e} {body}): multi-tasks operations "
              "will only meet 'not found'", file=sys.stderr)
        return None


def break_doc(doc_in, doc_out):
    doc = json.load(open(doc_in))
    health = doc["paths"]["/health"]["get"]["responses"]["200"]
    health["content"]["application/json"]["schema"] = {
        "type": "object", "required": ["status"],
        "properties": {"status": {"type": "integer"}},
    }
    apps = f"/v2/{{project_id}}/instances/{{instance_id}}/apps"
    del doc["paths"][apps]["get"]["responses"]["200"]
    # Read by the event stream's `data` (contentSchema): its events must now fail.
    doc["components"]["schemas"]["MonitorLog"]["properties"]["execute_status"] = {"type": "integer"}
    json.dump(doc, open(doc_out, "w"))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"seed": seed, "break": break_doc}[cmd](*args)
