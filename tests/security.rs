//! End-to-end security checks on the real binary: file-backed datasources confined to the files
//! root, secrets (also inside URLs) never shown or logged, the mask never taken as a password,
//! datasources in use protected, statement logs without values, FDI bodies on every error,
//! unauthenticated health.

use std::time::Duration;

use fdi_e2e::*;
use serde_json::{Value, json};

/// A SQLite file with one table `t(id, v)` holding `rows` rows.
async fn sqlite_file(path: &std::path::Path, table: &str, rows: i64) {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, v TEXT)"
    )))
    .execute(&pool)
    .await
    .unwrap();
    for i in 1..=rows {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT OR REPLACE INTO {table} VALUES (?, ?)"
        )))
        .bind(i)
        .bind(format!("value {i}"))
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
}

async fn sqlite_count(path: &std::path::Path, table: &str) -> i64 {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

fn sqlite_ds(app: &str, url: &str) -> Value {
    json!({"datasource_name": unique("sq"), "datasource_type": "SQLITE", "app_id": app, "content": {"url": url}})
}

fn table_task(src_table: &str, dst_table: &str, clear: bool) -> Value {
    json!({
        "sourceSelectedDatasource": {"sourceTable": src_table},
        "targetSelectedDatasource": {"targetTable": dst_table, "isSupportClearTab": clear}
    })
}

#[tokio::test]
async fn sqlite_datasources_cannot_reach_the_store_or_leave_the_files_root() {
    let s = TestServer::start(StoreKind::Sqlite).await;
    let app = s.create_app().await;
    let store = s.data_dir.join("fdi.db");
    assert!(store.exists());
    let files = s.files_dir();

    // Absolute, relative with `..`, other absolute files, the key file.
    let key = s.data_dir.join("secret.key");
    for url in [
        store.to_string_lossy().to_string(),
        format!("sqlite://{}", store.display()),
        "../fdi.db".to_string(),
        "sub/../../fdi.db".to_string(),
        "/etc/passwd".to_string(),
        key.to_string_lossy().to_string(),
    ] {
        let got = s.post("/datasources", sqlite_ds(&app, &url)).await;
        assert_fdi_error(&got, 400, "FDI.3447", "content.url");
    }
    // Symlinks and hard links inside the root that lead to the store.
    std::os::unix::fs::symlink(&store, files.join("link.sqlite")).unwrap();
    std::os::unix::fs::symlink(&s.data_dir, files.join("data")).unwrap();
    std::fs::hard_link(&store, files.join("hard.sqlite")).unwrap();
    for url in ["link.sqlite", "data/fdi.db", "hard.sqlite"] {
        let got = s.post("/datasources", sqlite_ds(&app, url)).await;
        assert_fdi_error(&got, 400, "FDI.3447", "content.url");
    }
    // Nothing was created by the refused requests.
    let (_, list) = s.get("/datasources").await;
    assert_eq!(list["total"], 0, "{list}");

    // A relative path inside the root works end to end: a copy into the attacker's own file
    // only ever sees the root's files.
    sqlite_file(&files.join("src.sqlite"), "t", 5).await;
    sqlite_file(&files.join("dst.sqlite"), "t", 0).await;
    let (st, src) = s.post("/datasources", sqlite_ds(&app, "src.sqlite")).await;
    assert_eq!(st, 201, "{src}");
    assert_eq!(src["content"]["url"], "src.sqlite", "stored as given");
    let (st, dst) = s
        .post(
            "/datasources",
            sqlite_ds(&app, &files.join("dst.sqlite").to_string_lossy()),
        )
        .await;
    assert_eq!(st, 201, "{dst}");
    let src = src["datasource_id"].as_str().unwrap().to_string();
    let dst = dst["datasource_id"].as_str().unwrap().to_string();
    let (_, tables) = s.get(&format!("/datasources/{src}/tables")).await;
    assert_eq!(tables["tables"], json!(["t"]), "{tables}");
    let task = s.create_task(&src, &dst, table_task("t", "t", true)).await;
    let run = s.run_to_end(&task).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    assert_eq!(sqlite_count(&files.join("dst.sqlite"), "t").await, 5);

    // Update onto the store is refused and keeps the stored definition.
    let mut bad = sqlite_ds(&app, &store.to_string_lossy());
    bad["datasource_name"] = json!("renamed");
    let got = s.put(&format!("/datasources/{dst}"), bad).await;
    assert_fdi_error(&got, 400, "FDI.3447", "content.url");
    let (_, kept) = s.get(&format!("/datasources/{dst}")).await;
    assert_eq!(
        kept["content"]["url"],
        files.join("dst.sqlite").to_string_lossy().as_ref()
    );
}

#[tokio::test]
async fn a_datasource_left_outside_a_narrowed_root_is_kept_but_cannot_be_used() {
    // First run with a wide root (the temp dir holding the data dir's parent)...
    let wide = std::env::temp_dir().join(unique("fdi-wide-root"));
    std::fs::create_dir_all(wide.join("narrow")).unwrap();
    let mut s = TestServer::start_with_env(
        StoreKind::Sqlite,
        &[("FDI_FILES_ROOT", wide.to_str().unwrap())],
    )
    .await;
    let app = s.create_app().await;
    sqlite_file(&wide.join("outside.sqlite"), "t", 3).await;
    sqlite_file(&wide.join("narrow/inside.sqlite"), "t", 0).await;
    let outside = wide.join("outside.sqlite").to_string_lossy().to_string();
    let (st, out) = s.post("/datasources", sqlite_ds(&app, &outside)).await;
    assert_eq!(st, 201, "{out}");
    let (st, inside) = s
        .post("/datasources", sqlite_ds(&app, "narrow/inside.sqlite"))
        .await;
    assert_eq!(st, 201, "{inside}");
    let out = out["datasource_id"].as_str().unwrap().to_string();
    let inside = inside["datasource_id"].as_str().unwrap().to_string();
    let task = s
        .create_task(&out, &inside, table_task("t", "t", false))
        .await;

    // ...then restart with a narrower root: the definition stays, its use fails with the cause.
    s.kill9();
    s.env = vec![(
        "FDI_FILES_ROOT".into(),
        wide.join("narrow").to_string_lossy().into(),
    )];
    s.spawn().await;
    let (st, kept) = s.get(&format!("/datasources/{out}")).await;
    assert_eq!(st, 200, "{kept}");
    assert_eq!(kept["content"]["url"], outside.as_str());
    let got = s
        .post(&format!("/datasources/{out}/test-connect"), json!({}))
        .await;
    assert_fdi_error(&got, 400, "FDI.3447", "content.url");
    // A run cannot start, and says why.
    let got = s.post(&format!("/tasks/{task}/run"), json!({})).await;
    assert_fdi_error(&got, 400, "FDI.3447", "outside the files root");
    assert!(s.runs(&task).await.is_empty(), "no run started");
    let _ = std::fs::remove_dir_all(&wide);
}

const SEC_USER: &str = "fdi_sec_user";
const SEC_PASSWORD: &str = "Url-Secret-7f3a9";

/// A MariaDB account that really checks its password.
async fn mysql_user_with_password() {
    for host in ["%", "localhost", "127.0.0.1"] {
        mysql_exec(&format!(
            "CREATE USER IF NOT EXISTS '{SEC_USER}'@'{host}' IDENTIFIED BY '{SEC_PASSWORD}'"
        ))
        .await;
        mysql_exec(&format!(
            "GRANT ALL PRIVILEGES ON test.* TO '{SEC_USER}'@'{host}'"
        ))
        .await;
    }
}

fn assert_no_secret(what: &str, hay: &[u8]) {
    assert!(
        !hay.windows(SEC_PASSWORD.len())
            .any(|w| w == SEC_PASSWORD.as_bytes()),
        "{what} holds the password in clear"
    );
}

#[tokio::test]
async fn url_passwords_are_masked_sealed_and_never_logged_and_the_mask_keeps_them() {
    mysql_user_with_password().await;
    let s = TestServer::start_with_env(StoreKind::Sqlite, &[("RUST_LOG", "debug")]).await;
    let app = s.create_app().await;
    let url = format!("mysql://{SEC_USER}:{SEC_PASSWORD}@127.0.0.1:3306/test");

    // Create: the URL's password is masked; keys the type does not know are dropped.
    let (st, ds) = s
        .post(
            "/datasources",
            json!({"datasource_name": unique("my"), "datasource_type": "MYSQL", "app_id": app,
                   "content": {"url": url, "passwd": "x1", "pwd": "x2", "jdbc_url": "jdbc:mysql://u:x3@h/d", "mode": "professional"}}),
        )
        .await;
    assert_eq!(st, 201, "{ds}");
    let id = ds["datasource_id"].as_str().unwrap().to_string();
    assert_eq!(
        ds["content"],
        json!({"url": format!("mysql://{SEC_USER}:******@127.0.0.1:3306/test"), "mode": "professional"}),
        "{ds}"
    );
    let (_, got) = s.get(&format!("/datasources/{id}")).await;
    assert_eq!(got["content"], ds["content"]);
    let (_, list) = s.get("/datasources").await;
    assert_no_secret("the list", list.to_string().as_bytes());
    assert!(!list.to_string().contains("x3"), "{list}");

    // The mask round trip keeps the password: test-connect still logs in.
    let mut back = got.clone();
    back["content"]["mode"] = json!("default");
    let (st, upd) = s.put(&format!("/datasources/{id}"), back.clone()).await;
    assert_eq!(st, 200, "{upd}");
    let (st, ok) = s
        .post(&format!("/datasources/{id}/test-connect"), json!({}))
        .await;
    assert_eq!((st, &ok["result"]), (200, &json!(true)), "{ok}");
    // A wrong password really fails (so the check above can fail).
    let (st, bad) = s
        .post(
            &format!("/datasources/{id}/test-connect"),
            json!({"content": {"url": format!("mysql://{SEC_USER}:wrong@127.0.0.1:3306/test")}}),
        )
        .await;
    assert_eq!(
        (st, bad["error_code"].as_str()),
        (400, Some("FDI.3016")),
        "{bad}"
    );

    // Host/password style: sending the mask back keeps the password too.
    let (st, ds2) = s
        .post(
            "/datasources",
            json!({"datasource_name": unique("my2"), "datasource_type": "MYSQL", "app_id": app,
                   "content": {"host": "127.0.0.1", "port": "3306", "database_name": "test", "user_name": SEC_USER, "password": SEC_PASSWORD}}),
        )
        .await;
    assert_eq!(st, 201, "{ds2}");
    let id2 = ds2["datasource_id"].as_str().unwrap().to_string();
    assert_eq!(ds2["content"]["password"], "******");
    let (st, _) = s.put(&format!("/datasources/{id2}"), ds2.clone()).await;
    assert_eq!(st, 200);
    let (st, ok) = s
        .post(&format!("/datasources/{id2}/test-connect"), json!({}))
        .await;
    assert_eq!(st, 200, "the mask was stored as the password: {ok}");

    // A new datasource cannot take the mask as its password.
    let got = s
        .post(
            "/datasources",
            json!({"datasource_name": unique("my3"), "datasource_type": "MYSQL", "app_id": app,
                   "content": {"host": "127.0.0.1", "user_name": SEC_USER, "password": "******"}}),
        )
        .await;
    assert_fdi_error(&got, 400, "FDI.3447", "content.password");

    // TLS options every MySQL connection of a run could not follow are refused up front.
    for url in [
        "mysql://u@127.0.0.1:3306/test?ssl-mode=VERIFY_IDENTITY&ssl-cert=/tmp/c.pem",
        "mysql://u@127.0.0.1:3306/test?ssl-mode=ALWAYS",
    ] {
        let got = s
            .post(
                "/datasources",
                json!({"datasource_name": unique("my4"), "datasource_type": "MYSQL", "app_id": app,
                       "content": {"url": url}}),
            )
            .await;
        assert_fdi_error(&got, 400, "FDI.3447", "content.url");
    }

    // A type change does not carry the secret: the mask is refused, the stored one kept.
    let mut to_pg = ds2.clone();
    to_pg["datasource_type"] = json!("POSTGRESQL");
    let got = s.put(&format!("/datasources/{id2}"), to_pg).await;
    assert_fdi_error(&got, 400, "FDI.3447", "content.password");
    let (st, ok) = s
        .post(&format!("/datasources/{id2}/test-connect"), json!({}))
        .await;
    assert_eq!(st, 200, "still MYSQL with its password: {ok}");

    // A run with the URL datasource, so the debug log sees connections and statements.
    let src_table = unique("sec_src");
    let dst_table = unique("sec_dst");
    mysql_exec(&format!(
        "CREATE TABLE {src_table} (id INT PRIMARY KEY, v VARCHAR(40)); INSERT INTO {src_table} VALUES (1, 'a'), (2, 'b');
         CREATE TABLE {dst_table} (id INT PRIMARY KEY, v VARCHAR(40));"
    ))
    .await;
    let task = s
        .create_task(&id, &id2, table_task(&src_table, &dst_table, false))
        .await;
    let run = s.run_to_end(&task).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    assert_eq!(run["data_count"], 2, "{run}");

    // Nowhere in clear: responses above, the store file, the debug log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let store = [
        std::fs::read(s.data_dir.join("fdi.db")).unwrap_or_default(),
        std::fs::read(s.data_dir.join("fdi.db-wal")).unwrap_or_default(),
    ]
    .concat();
    assert!(!store.is_empty());
    assert_no_secret("the store file", &store);
    let log = s.log();
    assert!(log.contains("DEBUG"), "the log is at debug level");
    assert_no_secret("the debug log", log.as_bytes());
}

#[tokio::test]
async fn datasources_used_by_tasks_keep_their_type_and_cannot_be_deleted() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let files = s.files_dir();
    sqlite_file(&files.join("a.sqlite"), "t", 1).await;
    sqlite_file(&files.join("b.sqlite"), "t", 0).await;
    let a = s
        .create_datasource(&app, "SQLITE", json!({"url": "a.sqlite"}))
        .await;
    let b = s
        .create_datasource(&app, "SQLITE", json!({"url": "b.sqlite"}))
        .await;
    let task = s.create_task(&a, &b, table_task("t", "t", false)).await;
    let got = s
        .put(
            &format!("/datasources/{a}"),
            json!({"datasource_name": "a2", "datasource_type": "POSTGRESQL", "app_id": app, "content": pg_content()}),
        )
        .await;
    assert_fdi_error(&got, 400, "FDI.3002", &task);
    let (_, still) = s.get(&format!("/datasources/{a}")).await;
    assert_eq!(still["datasource_type"], "SQLITE", "{still}");
    let got = s.delete(&format!("/datasources/{a}")).await;
    assert_fdi_error(&got, 400, "FDI.3121", &task);
    // Not used any more: the type may change, and it may be deleted.
    let (st, _) = s.delete(&format!("/tasks/{task}")).await;
    assert_eq!(st, 204);
    let (st, changed) = s
        .put(
            &format!("/datasources/{a}"),
            json!({"datasource_name": "a2", "datasource_type": "POSTGRESQL", "app_id": app, "content": pg_content()}),
        )
        .await;
    assert_eq!(st, 200, "{changed}");
    let (st, _) = s.delete(&format!("/datasources/{a}")).await;
    assert_eq!(st, 204);
}

#[tokio::test]
async fn statement_logs_carry_no_values_and_no_colours() {
    let s = TestServer::start_with_env(StoreKind::under_test(), &[("RUST_LOG", "debug")]).await;
    let app = s.create_app().await;
    let table = unique("logv");
    let dst = unique("logv_dst");
    pg_exec(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, tag text); INSERT INTO {table} VALUES (1, 'Needle-Value-91x'), (2, 'other');
         CREATE TABLE {dst} (id bigint PRIMARY KEY, tag text);"
    ))
    .await;
    let pg = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let detail = json!({
        "sourceSelectedDatasource": {"sourceTable": table, "where": [{"field_name": "tag", "op": "equal", "value": "Needle-Value-91x"}]},
        "targetSelectedDatasource": {"targetTable": dst}
    });
    let task = s.create_task(&pg, &pg, detail).await;
    let run = s.run_to_end(&task).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    assert_eq!(run["data_count"], 1, "the filter applied: {run}");
    let log = s.log();
    assert!(
        log.contains("fdi::sql"),
        "statements are logged at debug: {}",
        &log[..log.len().min(2000)]
    );
    assert!(
        !log.contains("Needle-Value-91x"),
        "a filter or row value reached the log"
    );
    assert!(!log.contains('\u{1b}'), "ANSI escape codes in a log file");
}

#[tokio::test]
async fn json_log_format_writes_one_json_object_per_line() {
    let s =
        TestServer::start_with_env(StoreKind::under_test(), &[("FDI_LOG_FORMAT", "json")]).await;
    let (st, _) = s.get("/tasks").await;
    assert_eq!(st, 200);
    let log = s.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
}

#[tokio::test]
async fn names_refuse_control_characters() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    for bad in ["a\u{0}b", "a\nb", "x\u{1b}[31m"] {
        let got = s
            .post(
                "/datasources",
                json!({"datasource_name": bad, "datasource_type": "POSTGRESQL", "app_id": app, "content": pg_content()}),
            )
            .await;
        assert_fdi_error(&got, 400, "FDI.3002", "datasource_name");
        let got = s
            .call("POST", &s.apps_url(""), Some(json!({"name": bad})))
            .await;
        assert_fdi_error(&got, 400, "FDI.3002", "name");
    }
    let (_, list) = s.get("/datasources").await;
    assert_eq!(list["total"], 0);
}

async fn raw_get(port: u16, path: &str) -> (u16, Value) {
    raw_request(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {TOKEN}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// Write a request by hand and read the whole response: status and JSON body.
async fn raw_request(port: u16, request: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {:?}", &text[..text.len().min(200)]));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_string())),
    )
}

#[tokio::test]
async fn every_error_has_the_fdi_body_and_health_needs_no_token() {
    let s = TestServer::start(StoreKind::under_test()).await;
    // 414: a 100 KB path, refused by the HTTP parser itself (no HTTP client builds such a URI:
    // written by hand).
    let long = format!(
        "/v2/{PROJECT}/fdi/instances/{INSTANCE}/datasources/{}",
        "x".repeat(100 * 1024)
    );
    let got = raw_get(s.port, &long).await;
    assert_fdi_error(&got, 414, "FDI.3002", "URI");
    let got = raw_request(s.port, "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_fdi_error(&got, 400, "FDI.3002", "request");
    // 405 and 404.
    let got = s.call("PATCH", &s.url("/datasources"), None).await;
    assert_fdi_error(&got, 405, "FDI.3002", "/datasources");
    let got = s.call("GET", &format!("{}/nowhere", s.base), None).await;
    assert_fdi_error(&got, 404, "FDI.3002", "/nowhere");
    // 413: a body over the limit.
    let big = format!("{{\"name\": \"{}\"}}", "y".repeat(3 * 1024 * 1024));
    let got = s.call_raw("POST", &s.apps_url(""), &big).await;
    assert_fdi_error(&got, 413, "FDI.3002", "body");
    // The server still serves after all of that.
    let (st, _) = s.get("/tasks").await;
    assert_eq!(st, 200);
    // Health: no token needed, says the store answers.
    let (st, h) = s
        .call_with("GET", &format!("{}/health", s.base), None, None)
        .await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["store"], "UP", "{h}");
}

#[tokio::test]
async fn unreachable_or_refused_datasources_answer_3016_at_task_create() {
    mysql_user_with_password().await;
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let table = unique("reach");
    mysql_exec(&format!("CREATE TABLE {table} (id INT PRIMARY KEY)")).await;
    let good = s.create_datasource(&app, "MYSQL", mysql_content()).await;
    let wrong_pw = s
        .create_datasource(
            &app,
            "MYSQL",
            json!({"host": "127.0.0.1", "port": "3306", "database_name": "test", "user_name": SEC_USER, "password": "not-the-password"}),
        )
        .await;
    let closed_port = s
        .create_datasource(
            &app,
            "POSTGRESQL",
            json!({"host": "127.0.0.1", "port": "1", "database_name": "test", "user_name": "postgres", "password": "x"}),
        )
        .await;
    for (src, field) in [
        (&wrong_pw, "task.source_datasource_id"),
        (&closed_port, "task.source_datasource_id"),
    ] {
        let got = s
            .post(
                "/tasks",
                task_body(&unique("t"), src, &good, &table_task(&table, &table, false)),
            )
            .await;
        assert_fdi_error(&got, 400, "FDI.3016", field);
    }
    let got = s
        .post(
            "/tasks",
            task_body(
                &unique("t"),
                &good,
                &wrong_pw,
                &table_task(&table, &table, false),
            ),
        )
        .await;
    assert_fdi_error(&got, 400, "FDI.3016", "task.target_datasource_id");
    let (_, tasks) = s.get("/tasks").await;
    assert_eq!(tasks["total"], 0, "{tasks}");
}

#[tokio::test]
async fn a_plan_update_is_applied_or_refused_never_ignored() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let files = s.files_dir();
    sqlite_file(&files.join("p.sqlite"), "t", 1).await;
    let ds = s
        .create_datasource(&app, "SQLITE", json!({"url": "p.sqlite"}))
        .await;
    let task = s.create_task(&ds, &ds, table_task("t", "t", false)).await;
    let (st, plan) = s
        .post(
            &format!("/tasks/{task}/dispatches"),
            json!({"use_quartz_cron": true, "cron": "0 0 * * * ?"}),
        )
        .await;
    assert_eq!(st, 200, "{plan}");
    // A period posted onto a cron plan turns it into a period plan.
    let (st, plan) = s
        .post(
            &format!("/tasks/{task}/dispatches"),
            json!({"period": "MIN", "dispatch_interval": 5}),
        )
        .await;
    assert_eq!(st, 200, "{plan}");
    let (_, got) = s.get(&format!("/tasks/{task}/dispatches")).await;
    assert_eq!(got["use_quartz_cron"], false, "{got}");
    assert_eq!(got["period"], "MIN", "{got}");
    // Both at once is refused and changes nothing.
    let id = got["dispatch_id"].as_str().unwrap().to_string();
    let refused = s
        .put(
            &format!("/tasks/{task}/dispatches/{id}"),
            json!({"cron": "0 0 * * * ?", "period": "DAY"}),
        )
        .await;
    assert_fdi_error(&refused, 400, "FDI.3002", "cron");
    let (_, after) = s.get(&format!("/tasks/{task}/dispatches")).await;
    assert_eq!(after["period"], "MIN", "{after}");
}
