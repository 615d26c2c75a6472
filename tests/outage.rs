//! The metadata store goes away (a PostgreSQL store behind a proxy the test stops): the API
//! answers 503 with the FDI body within seconds instead of hanging, `/health` says DOWN, and
//! everything works again by itself once the store is back.

use std::time::{Duration, Instant};

use fdi_e2e::*;

#[tokio::test]
async fn an_unreachable_store_answers_503_fast_and_recovers_by_itself() {
    let db = unique("fdi_outage");
    pg_exec(&format!("CREATE DATABASE {db}")).await;
    let mut proxy = TcpProxy::start("127.0.0.1:5432").await;
    let url = format!("postgres://postgres@127.0.0.1:{}/{db}", proxy.port);
    let dir = std::env::temp_dir().join(unique("fdi-outage"));
    std::fs::create_dir_all(&dir).unwrap();
    let s = TestServer::start_on(dir, Some(url), &[]).await;
    let app = s.create_app().await;
    assert!(!app.is_empty());
    // A task fired every second by its plan, running before the outage.
    let task = every_second_task(&s, &app).await;
    let before = wait_for_runs(&s, &task, |runs| {
        runs.iter().any(|r| r["execute_status"] == "SUCCESS")
    })
    .await
    .len();

    proxy.stop();
    for path in ["/tasks", "/datasources", "/task-monitors"] {
        let t = Instant::now();
        let got = s.get(path).await;
        let took = t.elapsed();
        assert_fdi_error(&got, 503, "FDI.9999", "unavailable");
        assert!(took < Duration::from_secs(5), "{path} took {took:?}");
    }
    let t = Instant::now();
    let (st, h) = s
        .call_with("GET", &format!("{}/health", s.base), None, None)
        .await;
    assert_eq!((st, h["store"].as_str()), (503, Some("DOWN")), "{h}");
    assert!(t.elapsed() < Duration::from_secs(5));

    proxy.resume().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, body) = s.get("/tasks").await;
        if st == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "not back: {st} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (st, h) = s
        .call_with("GET", &format!("{}/health", s.base), None, None)
        .await;
    assert_eq!((st, h["store"].as_str()), (200, Some("UP")), "{h}");
    // Writes work again too.
    let again = s.create_app().await;
    assert_ne!(again, app);

    // The fires the outage held up went as one run once the store was back, and its log says
    // why it came late; the plan goes on firing.
    let runs = wait_for_runs(&s, &task, |runs| {
        runs.iter().any(|r| {
            r["execute_status"] == "SUCCESS"
                && r["detail_logs"].as_array().is_some_and(|steps| {
                    steps.iter().any(|st| {
                        st["status"] == 916
                            && st["remarks"].as_str().is_some_and(|m| {
                                m.contains("unreachable") && m.contains("planned fire(s)")
                            })
                    })
                })
        })
    })
    .await;
    assert!(runs.len() > before, "the plan fired again after the outage");
}

/// A SQLite -> SQLite task (in the server's files root) fired every second.
async fn every_second_task(s: &TestServer, app: &str) -> String {
    let src = s.files_dir().join(format!("{}.sqlite", unique("src")));
    let dst = s.files_dir().join(format!("{}.sqlite", unique("dst")));
    for (path, sql) in [
        (
            &src,
            "CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER); INSERT INTO items VALUES (1, 10), (2, 20)",
        ),
        (
            &dst,
            "CREATE TABLE items_copy (id INTEGER PRIMARY KEY, v INTEGER)",
        ),
    ] {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let a = s
        .create_datasource(app, "SQLITE", sqlite_content(&src))
        .await;
    let b = s
        .create_datasource(app, "SQLITE", sqlite_content(&dst))
        .await;
    let task = s
        .create_task(
            &a,
            &b,
            serde_json::json!({"sourceSelectedDatasource": {"sourceTable": "items"},
                   "targetSelectedDatasource": {"targetTable": "items_copy"}}),
        )
        .await;
    let (st, p) = s
        .post(
            &format!("/tasks/{task}/dispatches"),
            serde_json::json!({"use_quartz_cron": true, "cron": "* * * * * ?"}),
        )
        .await;
    assert_eq!(st, 200, "{p}");
    let (st, b) = s
        .post(
            "/batch-operation/tasks",
            serde_json::json!({"action_id": "start", "list": [{"task_id": task}]}),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    task
}

/// The task's runs (newest first) once `done` holds for them (within 30 s).
async fn wait_for_runs(
    s: &TestServer,
    task: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let done = &done;
    wait_for("the task's runs", Duration::from_secs(30), || async move {
        let runs = s.runs(task).await;
        done(&runs).then_some(runs)
    })
    .await
}
