//! End-to-end checks of the HTTP API: auth, error format, apps, datasources, tasks, bad input.
//! The server is the real `fdi` process; datasources point at the machine's PostgreSQL, MariaDB
//! and SQLite files.

use fdi_e2e::*;
use serde_json::json;

#[tokio::test]
async fn auth_is_required_and_scoped_to_projects() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let url = s.url("/datasources");
    let missing = s.call_with("GET", &url, None, None).await;
    assert_eq!(missing.0, 401, "{:?}", missing.1);
    assert!(
        missing.1["error_code"]
            .as_str()
            .unwrap_or("")
            .starts_with("FDI."),
        "{}",
        missing.1
    );
    let unknown = s.call_with("GET", &url, None, Some("nope")).await;
    assert_eq!(unknown.0, 401);
    // A token limited to another project may not touch this one...
    let wrong = s.call_with("GET", &url, None, Some(SCOPED_TOKEN)).await;
    assert_eq!(wrong.0, 403, "{:?}", wrong.1);
    // ...but may touch its own.
    let own = format!(
        "{}/v2/other-project/fdi/instances/{INSTANCE}/datasources",
        s.base
    );
    let ok = s.call_with("GET", &own, None, Some(SCOPED_TOKEN)).await;
    assert_eq!(ok.0, 200, "{:?}", ok.1);
    // Unknown routes answer in the error format too.
    let (st, body) = s.get("/no-such-thing").await;
    assert_eq!(st, 404);
    assert!(body["error_code"].is_string(), "{body}");
}

#[tokio::test]
async fn apps_crud() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let name = unique("app");
    let (st, app) = s
        .call(
            "POST",
            &s.apps_url(""),
            Some(json!({"name": name, "remark": "first"})),
        )
        .await;
    assert!(st == 200 || st == 201, "{app}");
    let id = app["id"].as_str().unwrap().to_string();
    assert_eq!(app["name"], name.as_str());

    let (st, got) = s.call("GET", &s.apps_url(&format!("/{id}")), None).await;
    assert_eq!(st, 200);
    assert_eq!(got["remark"], "first");

    let (st, list) = s.call("GET", &s.apps_url(""), None).await;
    assert_eq!(st, 200);
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["apps"][0]["id"], id.as_str());

    let (st, upd) = s
        .call(
            "PUT",
            &s.apps_url(&format!("/{id}")),
            Some(json!({"name": name, "remark": "second"})),
        )
        .await;
    assert_eq!(st, 200, "{upd}");
    let (_, got) = s.call("GET", &s.apps_url(&format!("/{id}")), None).await;
    assert_eq!(got["remark"], "second");

    let dup = s
        .call("POST", &s.apps_url(""), Some(json!({"name": name})))
        .await;
    assert_eq!(dup.0, 400, "{:?}", dup.1);

    let (st, _) = s.call("DELETE", &s.apps_url(&format!("/{id}")), None).await;
    assert!(st == 200 || st == 204);
    let (st, _) = s.call("GET", &s.apps_url(&format!("/{id}")), None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn datasources_crud_discovery_and_secrets() {
    let s = TestServer::start(StoreKind::Sqlite).await;
    let app = s.create_app().await;
    let table = unique("ds_disc");
    pg_exec(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, code varchar(20) UNIQUE, amount numeric(12,2), note text NOT NULL)"
    ))
    .await;

    // Create: 201, secret masked.
    let name = unique("pg_source");
    let (st, ds) = s
        .post(
            "/datasources",
            json!({"datasource_name": name, "datasource_type": "POSTGRESQL", "app_id": app, "content": pg_content(), "description": "d"}),
        )
        .await;
    assert_eq!(st, 201, "{ds}");
    let id = ds["datasource_id"].as_str().unwrap().to_string();
    assert_eq!(ds["content"]["password"], "******", "{ds}");
    assert_eq!(ds["datasource_type"], "POSTGRESQL");

    // The secret is not in the store file in clear.
    let db_bytes = std::fs::read(s.data_dir.join("fdi.db")).unwrap_or_default();
    let wal = std::fs::read(s.data_dir.join("fdi.db-wal")).unwrap_or_default();
    let hay = [db_bytes, wal].concat();
    assert!(!hay.is_empty(), "store file exists");
    assert!(
        !hay.windows(12).any(|w| w == b"pg-secret-pw"),
        "password stored in clear"
    );
    assert!(!s.log().contains("pg-secret-pw"), "password logged");

    // Get and list: masked, filters, paging.
    let (st, got) = s.get(&format!("/datasources/{id}")).await;
    assert_eq!(st, 200);
    assert_eq!(got["content"]["password"], "******");
    assert_eq!(got["datasource_name"], name.as_str());
    let sq = s
        .create_datasource(
            &app,
            "SQLITE",
            sqlite_content(&s.files_dir().join("a.sqlite")),
        )
        .await;
    let (st, list) = s.get("/datasources?datasource_type=POSTGRESQL").await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["total"], 1, "{list}");
    let (_, list) = s.get(&format!("/datasources?name={}", &name[3..10])).await;
    assert_eq!(list["total"], 1, "{list}");
    let (_, list) = s.get("/datasources?limit=1&offset=0").await;
    assert_eq!(list["total"], 2, "{list}");
    assert_eq!(
        list["entities"].as_array().map(|a| a.len()),
        Some(1),
        "{list}"
    );
    let (st, list) = s.get("/datasources?limit=-5").await;
    assert_eq!(st, 400, "{list}");

    // Update keeps the stored password when "******" is sent back.
    let mut content = pg_content();
    content["password"] = json!("******");
    let (st, upd) = s
        .put(
            &format!("/datasources/{id}"),
            json!({"datasource_name": name, "datasource_type": "POSTGRESQL", "app_id": app, "content": content, "description": "changed"}),
        )
        .await;
    assert_eq!(st, 200, "{upd}");
    let (st, ok) = s
        .post(&format!("/datasources/{id}/test-connect"), json!({}))
        .await;
    assert_eq!(st, 200, "{ok}");
    assert_eq!(ok["result"], true);

    // Tables and columns.
    let (st, tables) = s
        .get(&format!("/datasources/{id}/tables?filter={table}"))
        .await;
    assert_eq!(st, 200, "{tables}");
    assert!(tables.to_string().contains(&table), "{tables}");
    let (st, cols) = s
        .get(&format!("/datasources/{id}/columns?table_name={table}"))
        .await;
    assert_eq!(st, 200, "{cols}");
    let cols = cols["columns"].as_array().cloned().expect("columns array");
    let names: Vec<_> = cols
        .iter()
        .map(|c| c["field_name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names, ["id", "code", "amount", "note"]);
    assert_eq!(cols[0]["primary"], "1", "{:?}", cols[0]);
    assert_eq!(cols[1]["primary"], "0", "{:?}", cols[1]);
    assert_eq!(cols[1]["unique"], "1", "{:?}", cols[1]);
    assert_eq!(cols[2]["decimal_digits"], "2", "{:?}", cols[2]);
    assert_eq!(cols[0]["null_able"], "0", "{:?}", cols[0]);
    assert_eq!(cols[2]["null_able"], "1", "{:?}", cols[2]);
    assert_eq!(cols[3]["null_able"], "0", "{:?}", cols[3]);
    let (st, _) = s
        .get(&format!(
            "/datasources/{id}/columns?table_name=no_such_table_xyz"
        ))
        .await;
    assert!(st == 400 || st == 404);

    // test-sql returns the result's columns; bad SQL is a 400.
    let (st, r) = s
        .post(
            &format!("/datasources/{id}/test-sql"),
            json!({"sql": format!("select id, note from {table}")}),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert!(r.to_string().contains("note"), "{r}");
    let (st, r) = s
        .post(
            &format!("/datasources/{id}/test-sql"),
            json!({"sql": "selec nonsense"}),
        )
        .await;
    assert_eq!(st, 400, "{r}");

    // test-connect failure carries the driver's cause.
    let bad = json!({"datasource_name": name, "datasource_type": "MYSQL", "app_id": app,
        "content": {"host": "127.0.0.1", "port": "3306", "database_name": "test", "user_name": "nobody_here", "password": "x"}});
    let (st, r) = s
        .post(&format!("/datasources/{id}/test-connect"), bad)
        .await;
    assert_eq!(st, 400, "{r}");
    assert_eq!(r["error_code"], "FDI.3016");
    assert!(
        r["detail"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("denied"),
        "{r}"
    );

    // Delete: 204, then 404.
    let (st, _) = s.delete(&format!("/datasources/{sq}")).await;
    assert_eq!(st, 204);
    let r = s.get(&format!("/datasources/{sq}")).await;
    assert_fdi_error(&r, 404, "FDI.3101", "");
    pg_exec(&format!("DROP TABLE {table}")).await;
}

#[tokio::test]
async fn datasource_bad_input_is_refused_and_nothing_is_stored() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let body = |t: &str, name: &str, content: serde_json::Value| json!({"datasource_name": name, "datasource_type": t, "app_id": app, "content": content});
    let r = s
        .post("/datasources", body("ORACLE", "ora", json!({"host": "h"})))
        .await;
    assert_fdi_error(&r, 400, "FDI.3443", "datasource_type");
    let r = s
        .post("/datasources", body("NOSUCHTYPE", "x", json!({})))
        .await;
    assert_fdi_error(&r, 400, "FDI.3443", "datasource_type");
    let r = s
        .post("/datasources", body("MYSQL", "bad<name>", mysql_content()))
        .await;
    assert_eq!(r.0, 400, "{:?}", r.1);
    assert!(r.1.to_string().contains("datasource_name"), "{}", r.1);
    let r = s
        .post(
            "/datasources",
            body("MYSQL", "no_host", json!({"port": "3306"})),
        )
        .await;
    assert_eq!(r.0, 400, "{:?}", r.1);
    assert!(r.1.to_string().contains("host"), "{}", r.1);
    let r = s
        .call_raw("POST", &s.url("/datasources"), "{\"datasource_name\": ")
        .await;
    assert_eq!(r.0, 400, "{:?}", r.1);
    assert!(r.1["error_code"].is_string(), "{}", r.1);
    let r = s
        .post(
            "/datasources",
            json!({"datasource_name": 5, "datasource_type": "MYSQL", "app_id": app, "content": {}}),
        )
        .await;
    assert_eq!(r.0, 400, "{:?}", r.1);
    assert!(r.1.to_string().contains("datasource_name"), "{}", r.1);

    let name = unique("dup");
    s.post("/datasources", body("MYSQL", &name, mysql_content()))
        .await;
    let r = s
        .post("/datasources", body("MYSQL", &name, mysql_content()))
        .await;
    assert_fdi_error(&r, 400, "FDI.3058", "");

    let (_, list) = s.get("/datasources").await;
    assert_eq!(
        list["total"], 1,
        "only the one good datasource is stored: {list}"
    );
    let r = s.get("/datasources/does-not-exist").await;
    assert_fdi_error(&r, 404, "FDI.3101", "");
}

#[tokio::test]
async fn task_crud_validation_and_delete_refusal() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let src = unique("t_src");
    let dst = unique("t_dst");
    pg_exec(&format!("CREATE TABLE {src} (id bigint PRIMARY KEY, name text, amount numeric(10,2), created_at timestamp)")).await;
    mysql_exec(&format!("CREATE TABLE {dst} (id bigint PRIMARY KEY, full_name varchar(100), amount decimal(10,2), created_at datetime, payload blob)")).await;
    let pg_ds = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let my_ds = s.create_datasource(&app, "MYSQL", mysql_content()).await;
    let detail = json!({
        "sourceSelectedDatasource": {"sourceTable": src},
        "targetSelectedDatasource": {"targetTable": dst},
        "mappingTable": [
            {"sourceColumn": "id", "targetColumn": "id"},
            {"sourceColumn": "name", "targetColumn": "full_name"},
            {"sourceColumn": "amount", "targetColumn": "amount"}
        ]
    });

    let name = unique("task");
    let (st, created) = s
        .post("/tasks", task_body(&name, &pg_ds, &my_ds, &detail))
        .await;
    assert!(st == 200 || st == 201, "{created}");
    let task_id = created["task"]["task_id"].as_str().unwrap().to_string();
    assert_eq!(created["task"]["task_type"], "timing");
    assert_eq!(created["task"]["task_name"], name.as_str());

    // Duplicate name, bad names, bad type, bad detail.
    let r = s
        .post("/tasks", task_body(&name, &pg_ds, &my_ds, &detail))
        .await;
    assert_fdi_error(&r, 400, "FDI.3058", "");
    for bad in [
        "ab",
        "_starts_with_underscore",
        "has space",
        &"x".repeat(101),
    ] {
        let r = s
            .post("/tasks", task_body(bad, &pg_ds, &my_ds, &detail))
            .await;
        assert_fdi_error(&r, 400, "FDI.3157", "");
    }
    let mut b = task_body(&unique("task"), &pg_ds, &my_ds, &detail);
    b["task"]["task_type"] = json!("SOMETIMES");
    let r = s.post("/tasks", b).await;
    assert_eq!(r.0, 400, "{:?}", r.1);
    let mut b = task_body(&unique("task"), &pg_ds, &my_ds, &detail);
    b["task_detail"] = json!("{not json");
    let r = s.post("/tasks", b).await;
    assert_fdi_error(&r, 400, "FDI.3002", "task_detail");
    let missing_table = json!({"sourceSelectedDatasource": {"sourceTable": "no_such_table_e2e"}, "targetSelectedDatasource": {"targetTable": dst}});
    let r = s
        .post(
            "/tasks",
            task_body(&unique("task"), &pg_ds, &my_ds, &missing_table),
        )
        .await;
    assert_eq!(r.0, 400, "{:?}", r.1);
    assert!(r.1.to_string().contains("no_such_table_e2e"), "{}", r.1);
    let missing_col = json!({"sourceSelectedDatasource": {"sourceTable": src}, "targetSelectedDatasource": {"targetTable": dst},
        "mappingTable": [{"sourceColumn": "id", "targetColumn": "id"}, {"sourceColumn": "name", "targetColumn": "no_such_col"}]});
    let r = s
        .post(
            "/tasks",
            task_body(&unique("task"), &pg_ds, &my_ds, &missing_col),
        )
        .await;
    assert_eq!(r.0, 400, "{:?}", r.1);
    assert!(r.1.to_string().contains("no_such_col"), "{}", r.1);
    let incompatible = json!({"sourceSelectedDatasource": {"sourceTable": src}, "targetSelectedDatasource": {"targetTable": dst},
        "mappingTable": [{"sourceColumn": "id", "targetColumn": "id"}, {"sourceColumn": "created_at", "targetColumn": "payload"}]});
    let r = s
        .post(
            "/tasks",
            task_body(&unique("task"), &pg_ds, &my_ds, &incompatible),
        )
        .await;
    assert_eq!(r.0, 400, "incompatible mapping refused: {:?}", r.1);
    let r = s
        .post(
            "/tasks",
            task_body(&unique("task"), "nope", &my_ds, &detail),
        )
        .await;
    assert!(r.0 == 400 || r.0 == 404, "{:?}", r.1);

    // Get, list with filters, update.
    let (st, got) = s.get(&format!("/tasks/{task_id}")).await;
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["task"]["source_datasource_id"], pg_ds.as_str());
    let (_, list) = s.get(&format!("/tasks?task_name={}", &name[2..8])).await;
    assert_eq!(list["total"], 1, "{list}");
    let (_, list) = s.get("/tasks?task_type=REALTIME").await;
    assert_eq!(list["total"], 0, "{list}");
    let (_, list) = s.get(&format!("/tasks?task_id={task_id}")).await;
    assert_eq!(list["total"], 1, "{list}");
    let mut upd = task_body(&name, &pg_ds, &my_ds, &detail);
    upd["task"]["description"] = json!("updated");
    let (st, body) = s.put(&format!("/tasks/{task_id}"), upd).await;
    assert_eq!(st, 200, "{body}");
    let (_, got) = s.get(&format!("/tasks/{task_id}")).await;
    assert_eq!(got["task"]["description"], "updated");
    // A bad update changes nothing.
    let mut bad = task_body(&name, &pg_ds, &my_ds, &missing_col);
    bad["task"]["description"] = json!("must not be stored");
    let r = s.put(&format!("/tasks/{task_id}"), bad).await;
    assert_eq!(r.0, 400);
    let (_, got) = s.get(&format!("/tasks/{task_id}")).await;
    assert_eq!(got["task"]["description"], "updated");

    // Statistics and task-monitors list the task.
    let (st, stats) = s.get("/statistics/tasks").await;
    assert_eq!(st, 200, "{stats}");
    let (st, mons) = s.get("/task-monitors").await;
    assert_eq!(st, 200, "{mons}");
    assert_eq!(mons["entities"][0]["task_id"], task_id.as_str(), "{mons}");
    let r = s.get("/task-monitors?execute_statuses=BOGUS").await;
    assert_fdi_error(&r, 400, "FDI.3050", "");

    // A datasource in use cannot be deleted.
    let r = s.delete(&format!("/datasources/{pg_ds}")).await;
    assert_fdi_error(&r, 400, "FDI.3121", "");
    let (st, _) = s.delete(&format!("/tasks/{task_id}")).await;
    assert!(st == 200 || st == 204);
    let r = s.get(&format!("/tasks/{task_id}")).await;
    assert_fdi_error(&r, 404, "FDI.3081", "");
    let (st, _) = s.delete(&format!("/datasources/{pg_ds}")).await;
    assert_eq!(st, 204);

    pg_exec(&format!("DROP TABLE {src}")).await;
    mysql_exec(&format!("DROP TABLE {dst}")).await;
}

/// Shapes the platform's official SDK relies on (issue: the SDK drives fdi).
#[tokio::test]
async fn reference_shapes_the_official_sdk_relies_on() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app_name = unique("app");
    let (st, app) = s
        .call(
            "POST",
            &s.apps_url(""),
            Some(json!({"name": app_name, "remark": "r1"})),
        )
        .await;
    assert_eq!(st, 201, "{app}");
    let app = app["id"].as_str().unwrap().to_string();

    // validate-apps (apps reference 4.1.1): exact match on name / id / key, 404 otherwise.
    let validate = format!("{}/v2/{PROJECT}/instances/{INSTANCE}/validate-apps", s.base);
    let (st, v) = s
        .call("GET", &format!("{validate}?name={app_name}"), None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["id"].as_str(), v["name"].as_str(), v["remark"].as_str()),
        (Some(app.as_str()), Some(app_name.as_str()), Some("r1"))
    );
    let (st, v) = s.call("GET", &format!("{validate}?id={app}"), None).await;
    assert_eq!((st, v["name"].as_str()), (200, Some(app_name.as_str())));
    let got = s
        .call("GET", &format!("{validate}?name={}", &app_name[..5]), None)
        .await;
    assert_fdi_error(&got, 404, "FDI.3435", "no app");

    // Datasource list: a negative offset counts as 0.
    let table = unique("sdk_cols");
    mysql_exec(&format!(
        "CREATE TABLE {table} (id INT NOT NULL PRIMARY KEY, at DATETIME, ts TIMESTAMP(6) NULL, amount DECIMAL(10,3), note VARCHAR(20))"
    ))
    .await;
    let my = s.create_datasource(&app, "MYSQL", mysql_content()).await;
    let (st, list) = s.get("/datasources?offset=-3").await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["size"], 1, "{list}");

    // Column metadata as the reference shows it: date-time types have field_length "0" and no
    // decimal digits; exact numerics keep theirs.
    let (_, cols) = s
        .get(&format!("/datasources/{my}/columns?table_name={table}"))
        .await;
    let col = |n: &str| {
        cols["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["field_name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} in {cols}"))
    };
    for dt in ["at", "ts"] {
        assert_eq!(col(dt)["field_length"], "0", "{}", col(dt));
        assert!(col(dt)["decimal_digits"].is_null(), "{}", col(dt));
    }
    assert_eq!(col("amount")["decimal_digits"], "3");
    assert_eq!(col("note")["field_length"], "20");

    // test-sql: columns read from a table carry its nullability and keys; expressions do not.
    let (st, r) = s
        .post(
            &format!("/datasources/{my}/test-sql"),
            json!({"sql": format!("select id, note, id + 1 as next_id from {table}")}),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let c = r["columns"].as_array().unwrap();
    assert_eq!(
        (c[0]["null_able"].as_str(), c[0]["primary"].as_str()),
        (Some("0"), Some("1")),
        "{r}"
    );
    assert_eq!(
        (c[1]["null_able"].as_str(), c[1]["primary"].as_str()),
        (Some("1"), Some("0")),
        "{r}"
    );
    assert_eq!(c[2]["primary"], "0", "{r}");
    let pg_table = unique("sdk_pg");
    pg_exec(&format!(
        "CREATE TABLE {pg_table} (id bigint PRIMARY KEY, note text)"
    ))
    .await;
    let pg = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let (st, r) = s
        .post(
            &format!("/datasources/{pg}/test-sql"),
            json!({"sql": format!("select id, note from {pg_table}")}),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (
            r["columns"][0]["null_able"].as_str(),
            r["columns"][0]["primary"].as_str()
        ),
        (Some("0"), Some("1")),
        "{r}"
    );

    // Tasks: project_id in the task responses, enterprise_project_id in the list, the SDK's
    // `name` filter.
    let dst = unique("sdk_dst");
    mysql_exec(&format!(
        "CREATE TABLE {dst} (id INT NOT NULL PRIMARY KEY, at DATETIME, ts TIMESTAMP(6) NULL, amount DECIMAL(10,3), note VARCHAR(20))"
    ))
    .await;
    let detail = json!({"sourceSelectedDatasource": {"sourceTable": table}, "targetSelectedDatasource": {"targetTable": dst}});
    let name = unique("sdktask");
    let (st, created) = s.post("/tasks", task_body(&name, &my, &my, &detail)).await;
    assert_eq!(st, 200, "{created}");
    assert_eq!(created["task"]["project_id"], PROJECT, "{created}");
    let task = created["task"]["task_id"].as_str().unwrap().to_string();
    let (_, shown) = s.get(&format!("/tasks/{task}")).await;
    assert_eq!(shown["task"]["project_id"], PROJECT, "{shown}");
    let other = s.create_task(&my, &my, detail.clone()).await;
    let (_, list) = s.get(&format!("/tasks?name={name}")).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["entities"][0]["task_id"], task.as_str());
    assert_eq!(list["entities"][0]["enterprise_project_id"], "0", "{list}");
    assert_ne!(task, other);

    // The reading step reports the size of what it read.
    mysql_exec(&format!(
        "INSERT INTO {table} VALUES (1, NOW(), NOW(6), 1.5, 'a'), (2, NULL, NULL, NULL, 'b')"
    ))
    .await;
    let run = s.run_to_end(&task).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    let reading = run["detail_logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["status"] == 102)
        .cloned()
        .unwrap_or_else(|| panic!("no step 102 in {run}"));
    assert_eq!(reading["data_count"], 2, "{reading}");
    assert!(
        reading["data_size"].as_f64().unwrap_or(0.0) > 0.0,
        "{reading}"
    );

    // Combination tasks (tests/multi_tasks.rs): the reference has no list of them (405), and
    // init names what is missing.
    let got = s.get("/multi-tasks").await;
    assert_fdi_error(&got, 405, "FDI.3002", "multi-tasks");
    let got = s.post("/multi-tasks/init", json!({})).await;
    assert_fdi_error(&got, 400, "FDI.3146", "source_datasource_id");
}

/// 20 concurrent creates with one name: exactly one is stored, on both stores.
async fn one_name_one_row(kind: StoreKind) {
    let s = TestServer::start(kind.clone()).await;
    let app = s.create_app().await;
    let name = unique("race");
    let mut calls = Vec::new();
    for _ in 0..20 {
        calls.push(s.post(
            "/datasources",
            json!({"datasource_name": name, "datasource_type": "POSTGRESQL", "app_id": app, "content": pg_content()}),
        ));
    }
    let answers = futures::future::join_all(calls).await;
    let created = answers.iter().filter(|(st, _)| *st == 201).count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(st, b)| *st == 400 && b["error_code"] == "FDI.3058")
        .collect();
    assert_eq!((created, refused.len()), (1, 19), "{kind:?}: {answers:?}");
    let (_, list) = s.get(&format!("/datasources?name={name}")).await;
    assert_eq!(list["total"], 1, "{kind:?}: {list}");

    let app_name = unique("apprace");
    let apps_url = s.apps_url("");
    let mut calls = Vec::new();
    for _ in 0..20 {
        calls.push(s.call("POST", &apps_url, Some(json!({"name": app_name}))));
    }
    let answers = futures::future::join_all(calls).await;
    assert_eq!(
        answers.iter().filter(|(st, _)| *st == 201).count(),
        1,
        "{kind:?}: {answers:?}"
    );
}

#[tokio::test]
async fn concurrent_creates_with_one_name_store_one_on_sqlite() {
    one_name_one_row(StoreKind::Sqlite).await;
}

#[tokio::test]
async fn concurrent_creates_with_one_name_store_one_on_postgres() {
    one_name_one_row(StoreKind::Postgres).await;
}
