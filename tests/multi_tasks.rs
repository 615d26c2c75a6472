//! End-to-end checks of combination (CDC) tasks over HTTP: init (with and without automatic
//! mappings), create, get, update, reset, delete, mappings by hand and by selection, and how the
//! tasks show in lists, monitors and statistics. Sources and targets are the machine's PostgreSQL
//! (5432, and the logical-replication server on 5433 for a real run) and MariaDB (3306).

use std::time::Duration;

use fdi_e2e::*;
use serde_json::{Value, json};

/// The PostgreSQL server with `wal_level=logical` (`scripts/services.sh up pg-cdc`).
const PG_CDC_URL: &str = "postgres://postgres@127.0.0.1:5433/test";

/// PostgreSQL content whose unqualified tables are in `schema`.
fn pg_schema_content(schema: &str) -> Value {
    let mut c = pg_content();
    c["schema"] = json!(schema);
    c
}

async fn pg_cdc_exec(sql: &str) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(PG_CDC_URL)
        .await
        .expect("the logical PostgreSQL on 127.0.0.1:5433 (scripts/services.sh up pg-cdc)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `/v2/{project}/fdi/multi-tasks/mappings/auto` (no instance).
fn auto_url(s: &TestServer) -> String {
    format!("{}/v2/{PROJECT}/fdi/multi-tasks/mappings/auto", s.base)
}

/// init; returns the answer's one element.
async fn init(s: &TestServer, body: Value) -> Value {
    let (st, got) = s.post("/multi-tasks/init", body).await;
    assert_eq!(st, 200, "init: {got}");
    let arr = got
        .as_array()
        .unwrap_or_else(|| panic!("init answers an array: {got}"));
    assert_eq!(arr.len(), 1, "{got}");
    arr[0].clone()
}

async fn init_id(s: &TestServer, source: &str, target: &str) -> String {
    let e = init(
        s,
        json!({"source_datasource_id": source, "target_datasource_id": target}),
    )
    .await;
    e["task_id"].as_str().unwrap().to_string()
}

async fn create(s: &TestServer, task_id: &str) -> String {
    let name = unique("cdc");
    let (st, got) = s
        .post(
            "/multi-tasks",
            json!({"task_name": name, "task_id": task_id, "task_type": "REALTIME",
                   "operation_types": ["INSERT", "UPDATE", "DELETE"]}),
        )
        .await;
    assert_eq!((st, &got["task_id"]), (200, &json!(task_id)), "{got}");
    name
}

/// The mapping of `source_table` in a list of mapping elements.
fn mapping_of<'a>(list: &'a Value, source_table: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|m| m["source_table"] == source_table))
        .unwrap_or_else(|| panic!("no mapping of {source_table} in {list}"))
}

/// (source, target) column names of a mapping element's pairs.
fn pairs(m: &Value) -> Vec<(String, String)> {
    m["mapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["source_column"].as_str().unwrap().to_string(),
                p["target_column"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn p(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[tokio::test]
async fn init_auto_maps_by_name_and_create_names_the_task() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let schema = unique("mt_src");
    let (full, part, none) = (unique("full"), unique("part"), unique("none"));
    pg_exec(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.{full} (id INT PRIMARY KEY, name VARCHAR(50), amount NUMERIC(10,2));
         CREATE TABLE {schema}.{part} (id INT PRIMARY KEY, label TEXT, extra TEXT, flag BOOLEAN);
         CREATE TABLE {schema}.{none} (id INT PRIMARY KEY);"
    ))
    .await;
    mysql_exec(&format!(
        "CREATE TABLE {full} (id INT PRIMARY KEY, name VARCHAR(50), amount DECIMAL(10,2));
         CREATE TABLE {part} (id INT PRIMARY KEY, label VARCHAR(100), flag DATE);"
    ))
    .await;
    let pg = s
        .create_datasource(&app, "POSTGRESQL", pg_schema_content(&schema))
        .await;
    let my = s.create_datasource(&app, "MYSQL", mysql_content()).await;

    // Auto-mapping: the source schema's tables to the target's tables of the same name.
    let e = init(
        &s,
        json!({"source_datasource_id": pg, "target_datasource_id": my, "auto_mapping": true}),
    )
    .await;
    let id = e["task_id"].as_str().unwrap().to_string();
    assert_eq!(e["source_datasource_type"], "POSTGRESQL", "{e}");
    assert_eq!(e["target_datasource_type"], "MYSQL", "{e}");
    assert_eq!(e["source_app_id"], app.as_str(), "{e}");
    assert_eq!(e["target_instance_id"], INSTANCE, "{e}");
    assert_eq!(e["schema_mappings"], json!([]), "{e}");
    assert_eq!(e["mappings_total_count"], 2, "{e}");
    let m = mapping_of(&e["mappings"], &format!("{schema}.{full}"));
    assert_eq!(m["target_table"], format!("test.{full}"), "{m}");
    assert_eq!(m["status"], "AUTO");
    assert_eq!(m["mapping_percent"], 100, "{m}");
    assert_eq!(
        pairs(m),
        [p("id", "id"), p("name", "name"), p("amount", "amount")]
    );
    assert_eq!(m["source_columns"].as_array().unwrap().len(), 3, "{m}");
    // Partly: `extra` has no target column, `flag` (boolean) cannot go into a DATE.
    let m = mapping_of(&e["mappings"], &format!("{schema}.{part}"));
    assert_eq!(m["mapping_percent"], 50, "{m}");
    assert_eq!(pairs(m), [p("id", "id"), p("label", "label")]);
    let why = m["mismatches"].to_string();
    assert!(why.contains("extra") && why.contains("flag"), "{m}");
    // Not at all: listed, not stored.
    let u = &e["unmapped_tables"];
    assert_eq!(u.as_array().unwrap().len(), 1, "{e}");
    assert_eq!(u[0]["source_table"], format!("{schema}.{none}"), "{u}");
    assert_eq!(u[0]["target_table"], format!("test.{none}"), "{u}");
    assert_eq!(u[0]["mapping_percent"], 0, "{u}");

    // Initialised, not created: shown by id, in no list.
    let (st, got) = s.get(&format!("/multi-tasks/{id}")).await;
    assert_eq!(st, 200, "{got}");
    assert_eq!(
        (&got["stage"], &got["task_name"]),
        (&json!("INIT"), &Value::Null),
        "{got}"
    );
    assert_eq!(got["mappings_total_count"], 2, "{got}");
    let (_, list) = s.get("/tasks").await;
    assert_eq!(list["total"], 0, "{list}");
    let (_, mon) = s.get("/task-monitors").await;
    assert_eq!(mon["total"], 0, "{mon}");
    let got = s.post(&format!("/multi-tasks/{id}/reset"), json!({})).await;
    assert_fdi_error(&got, 404, "FDI.3081", "POST multi-tasks");

    // Create: every refusal names its field and changes nothing.
    let body = |f: &dyn Fn(&mut Value)| {
        let mut b = json!({"task_name": unique("cdc"), "task_id": id, "task_type": "REALTIME",
                           "operation_types": ["INSERT", "UPDATE"], "description": "d",
                           "task_tag": "combination", "source_app_id": app, "target_app_id": app});
        f(&mut b);
        b
    };
    let refused = [
        (
            body(&|b| b["task_id"] = Value::Null),
            400,
            "FDI.3149",
            "multi-tasks/init",
        ),
        (
            body(&|b| b["task_name"] = json!("ab")),
            400,
            "FDI.3157",
            "task_name",
        ),
        (
            body(&|b| b["task_type"] = json!("TIMING")),
            400,
            "FDI.3144",
            "task_type",
        ),
        (
            body(&|b| b["task_type"] = json!("HOURLY")),
            400,
            "FDI.3144",
            "task_type",
        ),
        (
            body(&|b| b["operation_types"] = json!([])),
            400,
            "FDI.3002",
            "operation_types",
        ),
        (
            body(&|b| b["operation_types"] = json!(["MERGE"])),
            400,
            "FDI.3002",
            "operation_types",
        ),
        (
            body(&|b| {
                b.as_object_mut().unwrap().remove("operation_types");
            }),
            400,
            "FDI.3002",
            "operation_types",
        ),
        (
            body(&|b| b["task_tag"] = json!("a b")),
            400,
            "FDI.3557",
            "task_tag",
        ),
        (
            body(&|b| b["source_app_id"] = json!("other-app")),
            400,
            "FDI.3002",
            "source_app_id",
        ),
        (
            body(&|b| b["task_id"] = json!("no-such-task")),
            404,
            "FDI.3081",
            "multi-tasks/init",
        ),
    ];
    for (b, status, code, needle) in refused {
        let got = s.post("/multi-tasks", b.clone()).await;
        assert_fdi_error(&got, status, code, needle);
    }
    let (_, got) = s.get(&format!("/multi-tasks/{id}")).await;
    assert_eq!(got["stage"], "INIT", "{got}");

    let name = unique("cdc");
    let (st, got) = s
        .post("/multi-tasks", body(&|b| b["task_name"] = json!(name)))
        .await;
    assert_eq!((st, &got), (200, &json!({"task_id": id})));
    let (_, got) = s.get(&format!("/multi-tasks/{id}")).await;
    assert_eq!(got["stage"], "CREATED", "{got}");
    assert_eq!(got["task_name"], name.as_str(), "{got}");
    assert_eq!(got["task_type"], "REALTIME", "{got}");
    assert_eq!(got["operation_types"], json!(["INSERT", "UPDATE"]), "{got}");
    assert_eq!(got["task_tag"], "combination", "{got}");
    assert_eq!(got["execute_status"], "UNSTARTED", "{got}");
    // Created once; a normal task's view does not show it.
    let got = s
        .post(
            "/multi-tasks",
            body(&|b| b["task_name"] = json!(unique("cdc"))),
        )
        .await;
    assert_fdi_error(&got, 400, "FDI.3002", "task_id");
    let got = s.get(&format!("/tasks/{id}")).await;
    assert_fdi_error(&got, 404, "FDI.3081", "multi-tasks");

    // Names are shared with every task of the instance.
    let other = init_id(&s, &pg, &my).await;
    let got = s
        .post(
            "/multi-tasks",
            json!({"task_name": name, "task_id": other, "operation_types": ["INSERT"]}),
        )
        .await;
    assert_fdi_error(&got, 400, "FDI.3058", "task_name");

    // Without auto-mapping: no mappings.
    let e = init(
        &s,
        json!({"source_datasource_id": pg, "target_datasource_id": my, "auto_mapping": false}),
    )
    .await;
    assert_eq!(e["mappings_total_count"], 0, "{e}");
    assert_eq!(e["mappings"], json!([]), "{e}");

    pg_exec(&format!("DROP SCHEMA {schema} CASCADE")).await;
    mysql_exec(&format!("DROP TABLE {full}, {part}")).await;
}

#[tokio::test]
async fn init_refuses_what_cannot_be_a_combination_task() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let pg = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let my = s.create_datasource(&app, "MYSQL", mysql_content()).await;
    let sq = s
        .create_datasource(
            &app,
            "SQLITE",
            sqlite_content(&s.files_dir().join("a.sqlite")),
        )
        .await;
    let ok = || json!({"source_datasource_id": pg, "target_datasource_id": my});
    let with = |k: &str, v: Value| {
        let mut b = ok();
        b[k] = v;
        b
    };
    let taken = init_id(&s, &pg, &my).await;
    let cases = [
        (
            json!({"target_datasource_id": my}),
            400,
            "FDI.3146",
            "source_datasource_id",
        ),
        (
            with("target_datasource_id", json!("nope")),
            400,
            "FDI.3147",
            "target_datasource_id",
        ),
        (
            with("source_datasource_id", json!(sq)),
            400,
            "FDI.3002",
            "source_datasource_id",
        ),
        (
            with("ext_info", json!({"server_id": "abc"})),
            400,
            "FDI.3002",
            "ext_info.server_id",
        ),
        (
            with("ext_info", json!({"server_id": "4294967296"})),
            400,
            "FDI.3002",
            "ext_info.server_id",
        ),
        (
            with("ext_info", json!({"server_id": 0})),
            400,
            "FDI.3002",
            "ext_info.server_id",
        ),
        (with("task_id", json!("ab")), 400, "FDI.3002", "task_id"),
        (
            with("task_id", json!("has space!")),
            400,
            "FDI.3002",
            "task_id",
        ),
        (with("task_id", json!(taken)), 400, "FDI.3002", "task_id"),
        (
            with("auto_mapping", json!("yes")),
            400,
            "FDI.3002",
            "auto_mapping",
        ),
    ];
    for (b, status, code, needle) in cases {
        let got = s.post("/multi-tasks/init", b.clone()).await;
        assert_fdi_error(&got, status, code, needle);
    }
    // The type is named for a source without a change log.
    let got = s
        .post("/multi-tasks/init", with("source_datasource_id", json!(sq)))
        .await;
    assert!(got.1.to_string().contains("SQLITE"), "{}", got.1);

    // A given id and a MySQL server id (string or number).
    let id = unique("mt-given");
    let mut b = with("task_id", json!(id));
    b["source_datasource_id"] = json!(my);
    b["target_datasource_id"] = json!(pg);
    b["ext_info"] = json!({"server_id": 4_294_967_295u64});
    let e = init(&s, b).await;
    assert_eq!(e["task_id"], id.as_str(), "{e}");
    assert_eq!(e["ext_info"]["server_id"], "4294967295", "{e}");
    let (_, got) = s.get(&format!("/multi-tasks/{id}")).await;
    assert_eq!(got["ext_info"]["server_id"], "4294967295", "{got}");
}

#[tokio::test]
async fn mappings_by_hand_are_checked_against_the_live_columns() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let schema = unique("mt_map");
    let (a, b, c) = (unique("a"), unique("b"), unique("c"));
    let (ta, tb) = (unique("ta"), unique("tb"));
    pg_exec(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.{a} (id INT PRIMARY KEY, name TEXT, v INT);
         CREATE TABLE {schema}.{b} (id INT PRIMARY KEY, note TEXT);
         CREATE TABLE {schema}.{c} (id INT PRIMARY KEY);"
    ))
    .await;
    mysql_exec(&format!(
        "CREATE TABLE {ta} (id INT PRIMARY KEY, name VARCHAR(50), v INT, other INT);
         CREATE TABLE {tb} (id BIGINT PRIMARY KEY, note VARCHAR(10));"
    ))
    .await;
    let pg = s
        .create_datasource(&app, "POSTGRESQL", pg_schema_content(&schema))
        .await;
    let my = s.create_datasource(&app, "MYSQL", mysql_content()).await;
    let id = init_id(&s, &pg, &my).await;
    let path = format!("/multi-tasks/{id}/mappings");

    let (st, got) = s
        .post(
            &path,
            json!({"source_datasource_id": pg, "target_datasource_id": my,
                   "source_table": format!("{schema}.{a}"), "target_table": ta,
                   "mapping_columns": [{"source_column": "id", "target_column": "id"},
                                       {"source_column": "name", "target_column": "name"}]}),
        )
        .await;
    assert_eq!(st, 200, "{got}");
    let ma = got["mapping_id"].as_str().unwrap().to_string();

    // Refused, naming the field (and the column), nothing stored.
    let body = |f: &dyn Fn(&mut Value)| {
        let mut v = json!({"source_table": b, "target_table": tb,
                           "mapping_columns": [{"source_column": "id", "target_column": "id"}]});
        f(&mut v);
        v
    };
    let cases = [
        (body(&|v| v["source_table"] = Value::Null), "source_table"),
        (
            body(&|v| v["source_table"] = json!(format!("{schema}.nope"))),
            "source_table",
        ),
        (
            body(&|v| v["target_table"] = json!("nope_table")),
            "target_table",
        ),
        (body(&|v| v["source_table"] = json!(a)), "already mapped"),
        (
            body(&|v| v["source_datasource_id"] = json!(my)),
            "source_datasource_id",
        ),
        (
            body(&|v| v["mapping_columns"][0]["source_column"] = json!("missing_col")),
            "mapping_columns[0].source_column",
        ),
        (
            body(
                &|v| v["mapping_columns"] = json!([{"source_column": "id", "target_column": "id"}, {"source_column": "note", "target_column": "nope"}]),
            ),
            "mapping_columns[1].target_column",
        ),
        (
            body(&|v| {
                v["mapping_columns"] = json!([{"source_column": "note", "target_column": "id"}])
            }),
            "mapping_columns[0].target_column",
        ),
        (
            body(
                &|v| v["mapping_columns"] = json!([{"source_column": "note", "target_column": "note"}, {"source_column": "id", "target_column": "NOTE"}]),
            ),
            "already the target",
        ),
        (
            body(&|v| v["mapping_columns"] = json!([{"source_column": "id"}])),
            "mapping_columns[0].target_column",
        ),
    ];
    for (b, needle) in cases {
        let got = s.post(&path, b.clone()).await;
        assert_fdi_error(&got, 400, "FDI.3037", needle);
    }
    let got = s
        .post(
            &path,
            body(&|v| v["mapping_columns"][0]["source_column"] = json!("missing_col")),
        )
        .await;
    assert!(got.1.to_string().contains("missing_col"), "{}", got.1);
    let (_, list) = s.get(&path).await;
    assert_eq!(list["total"], 1, "{list}");

    // Without pairs: paired by name (an unqualified source table is in the default schema).
    let (st, got) = s
        .post(&path, json!({"source_table": b, "target_table": tb}))
        .await;
    assert_eq!(st, 200, "{got}");
    let mb = got["mapping_id"].as_str().unwrap().to_string();
    // Without a target table: the source's name in the target's database, which has none.
    let got = s.post(&path, json!({"source_table": c})).await;
    assert_fdi_error(&got, 400, "FDI.3037", "target_table");
    // A target table without a primary key: mapped, and the mapping says what that means.
    let tn = unique("tn");
    mysql_exec(&format!("CREATE TABLE {tn} (id INT, extra INT)")).await;
    let (st, got) = s
        .post(&path, json!({"source_table": c, "target_table": tn}))
        .await;
    assert_eq!(st, 200, "{got}");
    let mn = got["mapping_id"].as_str().unwrap().to_string();
    let (_, list) = s.get(&format!("{path}?source_table={c}")).await;
    let notes = list["entities"][0]["mismatches"].to_string();
    assert!(
        notes.contains("no primary key") && notes.contains("only INSERT"),
        "{list}"
    );
    let (st, _) = s.delete(&format!("{path}/{mn}")).await;
    assert_eq!(st, 200);
    mysql_exec(&format!("DROP TABLE {tn}")).await;

    let (st, list) = s.get(&path).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(
        (&list["total"], &list["size"]),
        (&json!(2), &json!(2)),
        "{list}"
    );
    assert_eq!(list["mappings_total_count"], 2, "{list}");
    assert_eq!(list["task_id"], id.as_str(), "{list}");
    let m = mapping_of(&list["entities"], &format!("{schema}.{a}"));
    assert_eq!(m["id"], ma.as_str());
    assert_eq!(m["status"], "MANUAL");
    assert_eq!(m["target_table"], format!("test.{ta}"));
    assert_eq!(m["mapping_percent"], 66, "{m}");
    assert_eq!(pairs(m), [p("id", "id"), p("name", "name")]);
    assert!(m["mismatches"].to_string().contains("v: not mapped"), "{m}");
    assert_eq!(m["mapping"][0]["target_column_type"], "int", "{m}");
    let m = mapping_of(&list["entities"], &format!("{schema}.{b}"));
    assert_eq!(
        (&m["mapping_percent"], &m["status"]),
        (&json!(100), &json!("MANUAL")),
        "{m}"
    );

    // Update: the pairs change; the source table cannot.
    let (st, got) = s
        .put(
            &format!("{path}/{ma}"),
            json!({"mapping_columns": [{"source_column": "id", "target_column": "id"},
                                       {"source_column": "name", "target_column": "name"},
                                       {"source_column": "v", "target_column": "other"}]}),
        )
        .await;
    assert_eq!((st, &got["mapping_id"]), (200, &json!(ma)), "{got}");
    let (_, list) = s.get(&format!("{path}?table_name={a}")).await;
    assert_eq!(list["total"], 1, "{list}");
    let m = &list["entities"][0];
    assert_eq!(m["mapping_percent"], 100, "{m}");
    assert_eq!(pairs(m)[2], p("v", "other"));
    // Without pairs, the stored ones stay (checked again).
    let (st, _) = s
        .put(&format!("{path}/{ma}"), json!({"target_table": ta}))
        .await;
    assert_eq!(st, 200);
    let (_, list) = s.get(&format!("{path}?source_table={a}")).await;
    assert_eq!(pairs(&list["entities"][0]).len(), 3, "{list}");
    let got = s
        .put(&format!("{path}/{ma}"), json!({"source_table": b}))
        .await;
    assert_fdi_error(&got, 400, "FDI.3037", "source_table");
    let got = s.put(&format!("{path}/nope"), json!({})).await;
    assert_fdi_error(&got, 404, "FDI.3002", "mapping_id");

    // Filters that match nothing; another datasource.
    let (_, list) = s.get(&format!("{path}?target_table=zzz")).await;
    assert_eq!(
        (&list["total"], &list["entities"]),
        (&json!(0), &json!([])),
        "{list}"
    );
    let (_, list) = s.get(&format!("{path}?source_datasource_id={my}")).await;
    assert_eq!(list["total"], 0, "{list}");

    // Delete.
    let (st, got) = s.delete(&format!("{path}/{mb}")).await;
    assert_eq!((st, &got), (200, &json!({"mapping_id": mb})));
    let got = s.delete(&format!("{path}/{mb}")).await;
    assert_fdi_error(&got, 404, "FDI.3002", "mapping_id");
    let (_, list) = s.get(&path).await;
    assert_eq!(list["total"], 1, "{list}");

    // Unknown task; a normal task id.
    let got = s.get("/multi-tasks/nope/mappings").await;
    assert_fdi_error(&got, 404, "FDI.3081", "nope");

    pg_exec(&format!("DROP SCHEMA {schema} CASCADE")).await;
    mysql_exec(&format!("DROP TABLE {ta}, {tb}")).await;
}

#[tokio::test]
async fn auto_mapping_with_selections_prefix_and_suffix() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let (src, other, dst) = (unique("mt_s"), unique("mt_o"), unique("mt_t"));
    // 25 tables t0..t24 (id, v, w) in the source schema; targets ods_tN_v1 in the target schema:
    // t0-t19 complete, t20-t22 without w (66 %), t23 and t24 without a target table.
    let mut sql = format!("CREATE SCHEMA {src}; CREATE SCHEMA {other}; CREATE SCHEMA {dst};");
    for i in 0..25 {
        sql.push_str(&format!(
            "CREATE TABLE {src}.t{i} (id INT PRIMARY KEY, v TEXT, w INT);"
        ));
        match i {
            0..20 => sql.push_str(&format!(
                "CREATE TABLE {dst}.ods_t{i}_v1 (id BIGINT PRIMARY KEY, v TEXT, w INT);"
            )),
            20..23 => sql.push_str(&format!(
                "CREATE TABLE {dst}.ods_t{i}_v1 (id BIGINT PRIMARY KEY, v TEXT);"
            )),
            _ => {}
        }
    }
    sql.push_str(&format!("CREATE TABLE {other}.t0 (id INT PRIMARY KEY);"));
    pg_exec(&sql).await;
    let source = s
        .create_datasource(&app, "POSTGRESQL", pg_schema_content(&src))
        .await;
    let target = s
        .create_datasource(&app, "POSTGRESQL", pg_schema_content(&dst))
        .await;
    let id = init_id(&s, &source, &target).await;
    let body = json!({
        "task_id": id, "source_ds_id": source, "target_ds_id": target, "task_type": 1,
        "source_select_mapping_tables": format!("{src}.*"),
        "target_select_mapping_tables": format!("{dst}.*"),
        "mapping_prefix": "ods_", "mapping_suffix": "_v1",
    });
    let (st, got) = s.call("POST", &auto_url(&s), Some(body.clone())).await;
    assert_eq!(st, 200, "{got}");
    let e = &got[0];
    assert_eq!(e["task_id"], id.as_str(), "{got}");
    assert_eq!(
        (&e["source_group"], &e["target_group"]),
        (&json!("SOURCE_GROUP1"), &json!("TARGET_GROUP1"))
    );
    assert_eq!(e["total"], 23, "{got}");
    assert_eq!(e["mapping"].as_array().unwrap().len(), 23);
    let m = mapping_of(&e["mapping"], &format!("{src}.t3"));
    assert_eq!(m["target_table"], format!("{dst}.ods_t3_v1"), "{m}");
    assert_eq!(
        (&m["status"], &m["mapping_percent"]),
        (&json!("AUTO"), &json!(100)),
        "{m}"
    );
    assert_eq!(m["task_id"], id.as_str());
    let m = mapping_of(&e["mapping"], &format!("{src}.t21"));
    assert_eq!(m["mapping_percent"], 66, "{m}");
    assert!(
        m["mismatches"].to_string().contains("w: no target column"),
        "{m}"
    );
    let u = e["unmapped_tables"].as_array().unwrap();
    let names: Vec<&str> = u
        .iter()
        .map(|x| x["source_table"].as_str().unwrap())
        .collect();
    assert_eq!(names, [format!("{src}.t23"), format!("{src}.t24")], "{got}");
    assert_eq!(u[0]["target_table"], "ods_t23_v1", "{got}");
    assert!(
        u[0]["mismatches"].to_string().contains("no target table"),
        "{got}"
    );
    // The other schema's t0 was not selected.
    assert!(!got.to_string().contains(&format!("{other}.t0")), "{got}");

    // Stored: paging (offset = page number from 1) and filters.
    let path = format!("/multi-tasks/{id}/mappings");
    let (_, page) = s.get(&format!("{path}?limit=10&offset=1")).await;
    assert_eq!(
        (&page["total"], &page["size"]),
        (&json!(23), &json!(10)),
        "{page}"
    );
    assert_eq!(page["mappings"].as_array().unwrap().len(), 10);
    let (_, page3) = s.get(&format!("{path}?limit=10&offset=3")).await;
    assert_eq!(page3["size"], 3, "{page3}");
    let (_, all) = s.get(&format!("{path}?limit=1000")).await;
    assert_eq!(all["size"], 23);
    assert_eq!(
        all["mappings"].as_array().unwrap().len(),
        10,
        "first 10 only"
    );
    let (_, filtered) = s.get(&format!("{path}?table_name=ODS_T2")).await;
    // ods_t2_v1 and ods_t20..22_v1.
    assert_eq!(filtered["total"], 4, "{filtered}");
    let got = s.get(&format!("{path}?limit=x")).await;
    assert_fdi_error(&got, 400, "FDI.3048", "limit");

    // Again as a form, for two named tables: AUTO mappings are replaced (same ids), MANUAL kept.
    let first_id = mapping_of(&all["entities"], &format!("{src}.t1"))["id"].clone();
    let t2 = mapping_of(&all["entities"], &format!("{src}.t2"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _) = s
        .put(
            &format!("{path}/{t2}"),
            json!({"target_table": format!("{dst}.ods_t2_v1")}),
        )
        .await;
    assert_eq!(st, 200);
    let form = format!(
        "task_id={id}&source_ds_id={source}&target_ds_id={target}&task_type=1&mapping_prefix=ods_&mapping_suffix=_v1&source_select_mapping_tables={src}.t1,{src}.t2"
    );
    let resp = reqwest::Client::new()
        .post(auto_url(&s))
        .header("X-Auth-Token", TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got[0]["total"], 1, "{got}");
    assert_eq!(got[0]["mapping"][0]["id"], first_id, "{got}");
    assert!(
        got[0]["unmapped_tables"][0]["mismatches"]
            .to_string()
            .contains("by hand"),
        "{got}"
    );
    let (_, all) = s.get(&format!("{path}?limit=1000")).await;
    assert_eq!(all["total"], 23, "{all}");
    assert_eq!(
        mapping_of(&all["entities"], &format!("{src}.t2"))["status"],
        "MANUAL"
    );

    // Refusals name the field; nothing stored.
    let with = |k: &str, v: Value| {
        let mut b = body.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("task_id", Value::Null), 400, "FDI.3149", "task_id"),
        (with("task_id", json!("nope")), 404, "FDI.3081", "task_id"),
        (with("task_type", json!(2)), 400, "FDI.3144", "task_type"),
        (
            with("source_ds_id", json!(target)),
            400,
            "FDI.3037",
            "source_ds_id",
        ),
        (
            with("target_ds_id", Value::Null),
            400,
            "FDI.3146",
            "target_ds_id",
        ),
        (
            with("source_select_mapping_tables", json!(src)),
            400,
            "FDI.3037",
            "source_select_mapping_tables",
        ),
        (
            with("source_select_mapping_tables", json!(format!("{src}.nope"))),
            400,
            "FDI.3037",
            "source_select_mapping_tables",
        ),
        (
            with("target_select_mapping_tables", json!("x.")),
            400,
            "FDI.3037",
            "target_select_mapping_tables",
        ),
        (
            with("mapping_prefix", json!("a-b")),
            400,
            "FDI.3002",
            "mapping_prefix",
        ),
    ];
    for (b, status, code, needle) in cases {
        let got = s.call("POST", &auto_url(&s), Some(b.clone())).await;
        assert_fdi_error(&got, status, code, needle);
    }
    // Another project's token may not use it.
    let got = s
        .call_with(
            "POST",
            &auto_url(&s),
            Some(body.clone()),
            Some(SCOPED_TOKEN),
        )
        .await;
    assert_eq!(got.0, 403, "{:?}", got.1);
    let (_, all) = s.get(&format!("{path}?limit=1000")).await;
    assert_eq!(all["total"], 23, "{all}");

    pg_exec(&format!(
        "DROP SCHEMA {src} CASCADE; DROP SCHEMA {other} CASCADE; DROP SCHEMA {dst} CASCADE"
    ))
    .await;
}

#[tokio::test]
async fn auto_mapping_takes_2000_tables_per_call() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let (src, more, dst) = (unique("mt_big"), unique("mt_more"), unique("mt_bigt"));
    // 2,000 source tables and their targets, and one table more in another schema. Plain
    // tables (no index, no TOAST table: one lock each), 500 per transaction so that the server's
    // lock table holds them.
    pg_exec(&format!(
        "CREATE SCHEMA {src}; CREATE SCHEMA {more}; CREATE SCHEMA {dst};
         CREATE TABLE {more}.x (id INT);"
    ))
    .await;
    for from in (1..=2000).step_by(250) {
        pg_exec(&format!(
            "DO $$ BEGIN FOR i IN {from}..{} LOOP
               EXECUTE format('CREATE TABLE {src}.t%s (id INT, v VARCHAR(20))', i);
               EXECUTE format('CREATE TABLE {dst}.t%s (id INT, v VARCHAR(20))', i);
             END LOOP; END $$;",
            from + 249
        ))
        .await;
    }
    let source = s
        .create_datasource(&app, "POSTGRESQL", pg_schema_content(&src))
        .await;
    let target = s
        .create_datasource(&app, "POSTGRESQL", pg_schema_content(&dst))
        .await;
    let id = init_id(&s, &source, &target).await;
    let body = |sel: String| {
        json!({"task_id": id, "source_ds_id": source, "target_ds_id": target,
               "source_select_mapping_tables": sel})
    };
    let got = s
        .call(
            "POST",
            &auto_url(&s),
            Some(body(format!("{src}.*,{more}.*"))),
        )
        .await;
    assert_fdi_error(&got, 400, "FDI.3037", "source_select_mapping_tables");
    assert!(got.1.to_string().contains("2001"), "{}", got.1);

    let started = std::time::Instant::now();
    let (st, got) = s
        .call("POST", &auto_url(&s), Some(body(format!("{src}.*"))))
        .await;
    let took = started.elapsed();
    assert_eq!(st, 200, "{got}");
    assert_eq!(got[0]["total"], 2000, "took {took:?}");
    assert_eq!(got[0]["unmapped_tables"], json!([]));
    assert!(
        got[0]["mapping"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["mapping_percent"] == 100),
    );
    eprintln!("auto-mapping of 2,000 tables took {took:?}");
    let (_, list) = s.get(&format!("/multi-tasks/{id}/mappings?limit=1")).await;
    assert_eq!(list["total"], 2000, "{list}");
    let (_, got) = s.get(&format!("/multi-tasks/{id}")).await;
    assert_eq!(got["mappings_total_count"], 2000);

    drop_big_schemas(&[&src, &more, &dst]).await;
}

/// Drop schemas of many tables, 500 tables per transaction.
async fn drop_big_schemas(schemas: &[&str]) {
    for schema in schemas {
        for from in (1..=2000).step_by(500) {
            pg_exec(&format!(
                "DO $$ BEGIN FOR i IN {from}..{} LOOP
                   EXECUTE format('DROP TABLE IF EXISTS {schema}.t%s', i);
                 END LOOP; END $$;",
                from + 499
            ))
            .await;
        }
        pg_exec(&format!("DROP SCHEMA {schema} CASCADE")).await;
    }
}

#[tokio::test]
async fn update_reset_delete_and_where_the_task_shows() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let schema = unique("mt_life");
    let t = unique("t");
    pg_exec(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.{t} (id INT PRIMARY KEY, v TEXT);"
    ))
    .await;
    mysql_exec(&format!("CREATE TABLE {t} (id INT PRIMARY KEY, v TEXT)")).await;
    let pg = s
        .create_datasource(&app, "POSTGRESQL", pg_schema_content(&schema))
        .await;
    let my = s.create_datasource(&app, "MYSQL", mysql_content()).await;
    let e = init(
        &s,
        json!({"source_datasource_id": pg, "target_datasource_id": my, "auto_mapping": true}),
    )
    .await;
    let id = e["task_id"].as_str().unwrap().to_string();
    assert_eq!(e["mappings_total_count"], 1, "{e}");
    let name = create(&s, &id).await;
    let normal = s
        .create_task(
            &my,
            &my,
            json!({"sourceSelectedDatasource": {"sourceTable": t}, "targetSelectedDatasource": {"targetTable": t}}),
        )
        .await;

    // PostgreSQL cannot go back to a point in time: the answer says what to do instead.
    let now = chrono::Utc::now().timestamp_millis();
    let got = s
        .post(
            &format!("/multi-tasks/{id}/reset"),
            json!({"date_from": now - 60_000}),
        )
        .await;
    assert_fdi_error(&got, 400, "FDI.3002", "repulling_snapshot");
    assert_fdi_error(&got, 400, "FDI.3002", "date_from");
    for bad in [
        json!("yesterday"),
        json!(now + 3_600_000),
        json!(0),
        json!(true),
    ] {
        let got = s
            .post(
                &format!("/multi-tasks/{id}/reset"),
                json!({"date_from": bad}),
            )
            .await;
        assert_fdi_error(&got, 400, "FDI.3002", "date_from");
    }

    // Update: refusals change nothing.
    let got = s
        .put(
            &format!("/multi-tasks/{id}"),
            json!({"operation_types": ["NOPE"], "description": "changed"}),
        )
        .await;
    assert_fdi_error(&got, 400, "FDI.3002", "operation_types");
    let (_, normal_task) = s.get(&format!("/tasks/{normal}")).await;
    let normal_name = normal_task["task"]["task_name"]
        .as_str()
        .unwrap()
        .to_string();
    let got = s
        .put(
            &format!("/multi-tasks/{id}"),
            json!({"task_name": normal_name}),
        )
        .await;
    assert_fdi_error(&got, 400, "FDI.3058", "task_name");
    let got = s
        .put(&format!("/multi-tasks/{id}"), json!({"task_tag": "x"}))
        .await;
    assert_fdi_error(&got, 400, "FDI.3557", "task_tag");
    let (_, got) = s.get(&format!("/multi-tasks/{id}")).await;
    assert_eq!(got["description"], Value::Null, "{got}");
    assert_eq!(
        got["operation_types"],
        json!(["INSERT", "UPDATE", "DELETE"])
    );
    let (st, got) = s
        .put(
            &format!("/multi-tasks/{id}"),
            json!({"operation_types": ["delete", "INSERT"], "repulling_snapshot": true,
                   "description": "changed", "task_tag": "cdc-tag"}),
        )
        .await;
    assert_eq!((st, &got), (200, &json!({"task_id": id})));
    let (_, got) = s.get(&format!("/multi-tasks/{id}")).await;
    assert_eq!(got["operation_types"], json!(["INSERT", "DELETE"]), "{got}");
    assert_eq!(
        (&got["description"], &got["task_tag"]),
        (&json!("changed"), &json!("cdc-tag"))
    );
    assert_eq!(got["position_stored"], false);
    assert_eq!(got["task_name"], name.as_str());
    let got = s.put("/multi-tasks/nope", json!({})).await;
    assert_fdi_error(&got, 404, "FDI.3081", "nope");
    let got = s.put(&format!("/multi-tasks/{normal}"), json!({})).await;
    assert_fdi_error(&got, 404, "FDI.3081", "normal task");

    // Lists: CDC tasks by mode; monitors show both kinds.
    let (_, list) = s.get("/tasks?task_mode=NORMAL").await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["entities"][0]["task_id"], normal.as_str());
    let (_, list) = s.get("/tasks?task_mode=CDC").await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["entities"][0]["task_id"], id.as_str());
    assert_eq!(list["entities"][0]["ext_type"], "CDC", "{list}");
    assert_eq!(list["entities"][0]["task_type"], "REALTIME", "{list}");
    let (_, list) = s.get("/tasks?task_mode=FLOW").await;
    assert_eq!(list["total"], 0, "{list}");
    let (_, list) = s.get("/tasks").await;
    assert_eq!(list["total"], 2, "{list}");
    let (_, mon) = s.get("/task-monitors").await;
    assert_eq!(mon["total"], 2, "{mon}");
    let cdc = mon["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["task_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{mon}"));
    assert_eq!(cdc["ext_type"], "CDC", "{cdc}");

    // Delete.
    let (st, _) = s.delete(&format!("/multi-tasks/{id}")).await;
    assert_eq!(st, 204);
    let got = s.get(&format!("/multi-tasks/{id}")).await;
    assert_fdi_error(&got, 404, "FDI.3081", &id);
    let got = s.get(&format!("/multi-tasks/{id}/mappings")).await;
    assert_fdi_error(&got, 404, "FDI.3081", &id);
    let got = s.delete(&format!("/multi-tasks/{normal}")).await;
    assert_fdi_error(&got, 404, "FDI.3081", "normal task");

    pg_exec(&format!("DROP SCHEMA {schema} CASCADE")).await;
    mysql_exec(&format!("DROP TABLE {t}")).await;
}

/// A real run (PostgreSQL with logical replication -> MariaDB): counted in `cdc_task_details`,
/// not deletable while it runs, restarted from a fresh copy by `repulling_snapshot`, and its slot
/// dropped with the task.
#[tokio::test]
async fn a_running_task_is_counted_restarted_and_cleaned_up() {
    let s = TestServer::start_with_env(StoreKind::under_test(), &[("FDI_REALTIME_POLL_MS", "200")])
        .await;
    let app = s.create_app().await;
    let schema = unique("mt_run");
    let t = unique("r");
    pg_cdc_exec(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.{t} (id INT PRIMARY KEY, v TEXT);
         INSERT INTO {schema}.{t} VALUES (1, 'a'), (2, 'b');"
    ))
    .await;
    mysql_exec(&format!("CREATE TABLE {t} (id INT PRIMARY KEY, v TEXT)")).await;
    let mut content = pg_schema_content(&schema);
    content["port"] = json!("5433");
    let pg = s.create_datasource(&app, "POSTGRESQL", content).await;
    let my = s.create_datasource(&app, "MYSQL", mysql_content()).await;
    let e = init(
        &s,
        json!({"source_datasource_id": pg, "target_datasource_id": my, "auto_mapping": true}),
    )
    .await;
    let id = e["task_id"].as_str().unwrap().to_string();
    assert_eq!(e["mappings_total_count"], 1, "{e}");
    create(&s, &id).await;
    s.start_task(&id).await;

    let my_pool = mysql().await;
    let count = || {
        let pool = my_pool.clone();
        let t = t.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {t}")))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    wait_for("the snapshot copied", Duration::from_secs(60), || async {
        (count().await == 2).then_some(())
    })
    .await;
    pg_cdc_exec(&format!("INSERT INTO {schema}.{t} VALUES (3, 'c')")).await;
    wait_for("the change applied", Duration::from_secs(30), || async {
        (count().await == 3).then_some(())
    })
    .await;

    let (_, stats) = s.get("/statistics/tasks").await;
    assert_eq!(
        stats["cdc_task_details"]["running_tasks_count"], 1,
        "{stats}"
    );
    assert_eq!(
        stats["common_task_details"]["running_tasks_count"], 0,
        "{stats}"
    );
    let got = s.delete(&format!("/multi-tasks/{id}")).await;
    assert_fdi_error(&got, 400, "FDI.3139", "terminate");

    // Copy again: the run ends, the position is forgotten, the supervisor copies the tables
    // again (the target then has rows changed behind the task's back restored).
    mysql_exec(&format!("UPDATE {t} SET v = 'changed'")).await;
    let (st, got) = s
        .put(
            &format!("/multi-tasks/{id}"),
            json!({"repulling_snapshot": true}),
        )
        .await;
    assert_eq!(st, 200, "{got}");
    let pool = my_pool.clone();
    wait_for("the tables copied again", Duration::from_secs(60), || {
        let pool = pool.clone();
        let t = t.clone();
        async move {
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {t} WHERE v <> 'changed'"
            )))
            .fetch_one(&pool)
            .await
            .unwrap();
            (n == 3).then_some(())
        }
    })
    .await;
    assert!(s.runs(&id).await.len() >= 2, "a second run");

    // Stop, delete: the slot goes with the task.
    let (st, body) = s
        .post(
            "/batch-operation/tasks",
            json!({"action_id": "stop", "list": [{"task_id": id}]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    wait_for("the run ended", Duration::from_secs(30), || async {
        let runs = s.runs(&id).await;
        (runs
            .first()
            .is_some_and(|r| r["execute_status"] != "RUNNING"))
        .then_some(())
    })
    .await;
    let (st, _) = s.delete(&format!("/multi-tasks/{id}")).await;
    assert_eq!(st, 204);
    let slot: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(36)
        .collect();
    let slot = format!("fdi_{slot}");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(PG_CDC_URL)
        .await
        .unwrap();
    let slots: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_replication_slots WHERE slot_name = $1")
            .bind(&slot)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(slots, 0, "slot {slot} dropped");

    pg_cdc_exec(&format!("DROP SCHEMA {schema} CASCADE")).await;
    mysql_exec(&format!("DROP TABLE {t}")).await;
}

/// MariaDB's binlog can go back: reset stores the position of the first change after the time
/// (the binlog server of `scripts/services.sh up mysql-cdc`, 3307).
#[tokio::test]
async fn reset_on_a_binlog_source_stores_a_position() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let mut content = mysql_content();
    content["port"] = json!("3307");
    let my = s.create_datasource(&app, "MYSQL", content).await;
    let pg = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let id = init_id(&s, &my, &pg).await;
    create(&s, &id).await;
    let (_, got) = s.get(&format!("/multi-tasks/{id}")).await;
    assert_eq!(got["position_stored"], false, "{got}");
    // Before the oldest binlog: refused, saying what to do instead.
    let got = s
        .post(
            &format!("/multi-tasks/{id}/reset"),
            json!({"date_from": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_fdi_error(&got, 400, "FDI.3002", "repulling_snapshot");
    let (_, shown) = s.get(&format!("/multi-tasks/{id}")).await;
    assert_eq!(shown["position_stored"], false, "{shown}");
    let just_now = chrono::Utc::now().timestamp_millis() - 2_000;
    let (st, got) = s
        .post(
            &format!("/multi-tasks/{id}/reset"),
            json!({"date_from": just_now.to_string()}),
        )
        .await;
    assert_eq!((st, &got), (200, &json!({"message": "Reset Success"})));
    let (_, got) = s.get(&format!("/multi-tasks/{id}")).await;
    assert_eq!(got["position_stored"], true, "{got}");
    // Without a time: from now.
    let (st, got) = s.post(&format!("/multi-tasks/{id}/reset"), json!({})).await;
    assert_eq!(st, 200, "{got}");
}
