//! Focused checks of the HTTP layer against a real SQLite store in a temp dir: auth, the error
//! format, validation, and that refused requests store nothing.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn auth_missing_unknown_and_wrong_project() {
    let t = TestApp::new().await;
    let (st, body) = t.call_with("GET", &t.url("/datasources"), None, None).await;
    assert_eq!(st, 401, "{body}");
    assert_eq!(body["error_code"], "FDI.1001");
    let (st, _) = t
        .call_with("GET", &t.url("/datasources"), None, Some("bogus"))
        .await;
    assert_eq!(st, 401);
    let (st, body) = t
        .call_with("GET", &t.url("/datasources"), None, Some(SCOPED))
        .await;
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["error_code"], "FDI.3478");
    let (st, body) = t
        .call_with(
            "GET",
            "/v2/other/fdi/instances/i1/datasources",
            None,
            Some(SCOPED),
        )
        .await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn unknown_routes_methods_and_ids_answer_fdi_errors() {
    let t = TestApp::new().await;
    let (st, body) = t.call("GET", &t.url("/nope"), None).await;
    assert_eq!(st, 404);
    assert_eq!(body["error_code"], "FDI.3002", "{body}");
    let (st, body) = t.call("PATCH", &t.url("/datasources"), None).await;
    assert_eq!(st, 405);
    assert!(body["error_code"].is_string(), "{body}");
    let (st, body) = t.call("GET", &t.url("/datasources/missing"), None).await;
    assert_eq!(
        (st, body["error_code"].as_str()),
        (404, Some("FDI.3101")),
        "{body}"
    );
    let (st, body) = t.call("GET", &t.url("/tasks/missing"), None).await;
    assert_eq!(
        (st, body["error_code"].as_str()),
        (404, Some("FDI.3081")),
        "{body}"
    );
    let (st, body) = t.call("GET", &t.apps_url("/missing"), None).await;
    assert_eq!(st, 404, "{body}");
    let (st, body) = t
        .call("GET", &t.url("/tasks/missing/monitor-logs"), None)
        .await;
    assert_eq!(
        (st, body["error_code"].as_str()),
        (404, Some("FDI.3081")),
        "{body}"
    );
}

#[tokio::test]
async fn bad_bodies_and_paging_name_the_field() {
    let t = TestApp::new().await;
    let (st, body) = t
        .raw("POST", &t.url("/datasources"), "{\"datasource_name\": ")
        .await;
    assert_eq!(st, 400);
    assert_eq!(body["error_code"], "FDI.3002", "{body}");
    assert!(
        body["error_msg"].as_str().unwrap().contains("body"),
        "{body}"
    );
    let app = t.app().await;
    let (st, body) = t
        .call("POST", &t.url("/datasources"), Some(json!({"datasource_name": 5, "datasource_type": "SQLITE", "app_id": app, "content": {}})))
        .await;
    assert_eq!(st, 400);
    assert!(
        body["error_msg"]
            .as_str()
            .unwrap()
            .contains("datasource_name"),
        "{body}"
    );
    for q in ["limit=-1", "offset=x", "limit=1.5"] {
        let (st, body) = t
            .call("GET", &t.url(&format!("/datasources?{q}")), None)
            .await;
        assert_eq!(
            (st, body["error_code"].as_str()),
            (400, Some("FDI.3048")),
            "{q}: {body}"
        );
    }
    let (st, body) = t
        .call("GET", &t.url("/task-monitors?execute_statuses=NOPE"), None)
        .await;
    assert_eq!(
        (st, body["error_code"].as_str()),
        (400, Some("FDI.3050")),
        "{body}"
    );
    let (st, body) = t
        .call("GET", &t.url("/datasources?sort_type=sideways"), None)
        .await;
    assert_eq!(
        (st, body["error_code"].as_str()),
        (400, Some("FDI.3049")),
        "{body}"
    );
}

#[tokio::test]
async fn datasource_validation_stores_nothing_and_masks_secrets() {
    let t = TestApp::new().await;
    let app = t.app().await;
    let body = |ty: &str, name: &str, content: serde_json::Value| json!({"datasource_name": name, "datasource_type": ty, "app_id": app, "content": content});
    let (st, b) = t
        .call(
            "POST",
            &t.url("/datasources"),
            Some(body("ORACLE", "o1", json!({"host": "h"}))),
        )
        .await;
    assert_eq!(
        (st, b["error_code"].as_str()),
        (400, Some("FDI.3443")),
        "{b}"
    );
    let (st, b) = t
        .call(
            "POST",
            &t.url("/datasources"),
            Some(body("MYSQL", "bad(name)", json!({"host": "h"}))),
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        b["error_msg"].as_str().unwrap().contains("datasource_name"),
        "{b}"
    );
    let (st, b) = t
        .call(
            "POST",
            &t.url("/datasources"),
            Some(body("MYSQL", "nohost", json!({"port": "3306"}))),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert!(b.to_string().contains("host"), "{b}");
    let (st, b) = t
        .call("POST", &t.url("/datasources"), Some(json!({"datasource_name": "x", "datasource_type": "SQLITE", "app_id": "no-such-app", "content": {"url": "/tmp/x.db"}})))
        .await;
    assert_eq!(
        (st, b["error_code"].as_str()),
        (400, Some("FDI.3435")),
        "{b}"
    );
    let (_, list) = t.call("GET", &t.url("/datasources"), None).await;
    assert_eq!(list["total"], 0, "{list}");

    let content = json!({"host": "127.0.0.1", "port": "3306", "database_name": "d", "user_name": "u", "password": "top-secret"});
    let (st, b) = t
        .call(
            "POST",
            &t.url("/datasources"),
            Some(body("MYSQL", "my one", content.clone())),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["content"]["password"], "******");
    assert!(!b.to_string().contains("top-secret"));
    let (st, b) = t
        .call(
            "POST",
            &t.url("/datasources"),
            Some(body("MYSQL", "my one", content)),
        )
        .await;
    assert_eq!(
        (st, b["error_code"].as_str()),
        (400, Some("FDI.3058")),
        "{b}"
    );
    let (_, list) = t.call("GET", &t.url("/datasources?name=y%20o"), None).await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["entities"][0]["content"]["password"], "******");
}

#[tokio::test]
async fn task_validation_names_the_field() {
    let t = TestApp::new().await;
    let app = t.app().await;
    let (src, dst) = t.sqlite_pair(&app).await;
    let detail = json!({"sourceSelectedDatasource": {"sourceTable": "people"}, "targetSelectedDatasource": {"targetTable": "people_copy"}}).to_string();
    let body = |name: &str, detail: &str| json!({"task": {"task_name": name, "task_type": "TIMING", "source_datasource_id": src, "target_datasource_id": dst}, "task_detail": detail});
    for bad in ["ab", "-abc", "a b c"] {
        let (st, b) = t
            .call("POST", &t.url("/tasks"), Some(body(bad, &detail)))
            .await;
        assert_eq!(
            (st, b["error_code"].as_str()),
            (400, Some("FDI.3157")),
            "{bad}: {b}"
        );
    }
    let mut b = body("good-name", &detail);
    b["task"]["task_tag"] = json!("x!");
    let (st, r) = t.call("POST", &t.url("/tasks"), Some(b)).await;
    assert_eq!(
        (st, r["error_code"].as_str()),
        (400, Some("FDI.3557")),
        "{r}"
    );
    let mut b = body("good-name", &detail);
    b["task"]["description"] = json!("d".repeat(1025));
    let (st, r) = t.call("POST", &t.url("/tasks"), Some(b)).await;
    assert_eq!(
        (st, r["error_code"].as_str()),
        (400, Some("FDI.3142")),
        "{r}"
    );
    let (st, r) = t
        .call("POST", &t.url("/tasks"), Some(body("good-name", "{nope")))
        .await;
    assert_eq!(
        (st, r["error_code"].as_str()),
        (400, Some("FDI.3002")),
        "{r}"
    );
    assert!(
        r["error_msg"].as_str().unwrap().contains("task_detail"),
        "{r}"
    );
    let mut b = body("good-name", &detail);
    b["task"]["source_datasource_id"] = json!("missing-ds");
    let (st, r) = t.call("POST", &t.url("/tasks"), Some(b)).await;
    assert_eq!(
        (st, r["error_code"].as_str()),
        (400, Some("FDI.3147")),
        "{r}"
    );
    let (_, list) = t.call("GET", &t.url("/tasks"), None).await;
    assert_eq!(list["total"], 0, "nothing stored: {list}");
}

#[tokio::test]
async fn run_monitor_and_secrets_at_rest() {
    let t = TestApp::new().await;
    let app = t.app().await;
    let (src, dst) = t.sqlite_pair(&app).await;
    // A datasource with a password: masked in answers, not in clear in the store file.
    let (st, b) = t
        .call(
            "POST",
            &t.url("/datasources"),
            Some(json!({"datasource_name": "pg", "datasource_type": "POSTGRESQL", "app_id": app,
                "content": {"host": "127.0.0.1", "port": "5432", "database_name": "x", "user_name": "u", "password": "at-rest-secret-42"}})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let db = [
        std::fs::read(t.dir.join("fdi.db")).unwrap_or_default(),
        std::fs::read(t.dir.join("fdi.db-wal")).unwrap_or_default(),
    ]
    .concat();
    assert!(
        !db.windows(17).any(|w| w == b"at-rest-secret-42"),
        "secret stored in clear"
    );

    let detail = json!({"sourceSelectedDatasource": {"sourceTable": "people"}, "targetSelectedDatasource": {"targetTable": "people_copy"}}).to_string();
    let (st, b) = t
        .call(
            "POST",
            &t.url("/tasks"),
            Some(json!({"task": {"task_name": "copy-people", "task_type": "TIMING", "source_datasource_id": src, "target_datasource_id": dst}, "task_detail": detail})),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["task"]["task_type"], "timing");
    assert_eq!(b["task"]["status"], "stop");
    let task = b["task"]["task_id"].as_str().unwrap().to_string();
    let (st, b) = t
        .call("POST", &t.url(&format!("/tasks/{task}/terminate")), None)
        .await;
    assert_eq!(
        (st, b["error_code"].as_str()),
        (400, Some("FDI.3027")),
        "{b}"
    );
    let (st, b) = t
        .call("POST", &t.url(&format!("/tasks/{task}/run")), None)
        .await;
    assert_eq!(st, 200, "{b}");
    let tracking = b["tracking_id"].as_str().unwrap().to_string();
    let run = loop {
        let (_, logs) = t
            .call("GET", &t.url(&format!("/tasks/{task}/monitor-logs")), None)
            .await;
        let r = logs["entities"][0].clone();
        if matches!(
            r["execute_status"].as_str(),
            Some("SUCCESS" | "ERROR" | "CANCELLED")
        ) {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    assert_eq!(run["id"], tracking.as_str());
    assert_eq!(run["data_count"], 2);
    let codes: Vec<u64> = run["detail_logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["status"].as_u64())
        .collect();
    assert!(codes.contains(&99) && codes.contains(&901), "{codes:?}");
    let (st, one) = t
        .call(
            "GET",
            &t.url(&format!("/tasks/{task}/monitor-logs/{tracking}")),
            None,
        )
        .await;
    assert_eq!(st, 200, "{one}");
    assert_eq!(one["id"], tracking.as_str());
    let (st, b) = t
        .call(
            "GET",
            &t.url(&format!("/tasks/{task}/monitor-logs/nope")),
            None,
        )
        .await;
    assert_eq!(st, 404, "{b}");
    let (_, none) = t
        .call(
            "GET",
            &t.url(&format!(
                "/tasks/{task}/monitor-logs?begin_time=1&end_time=2"
            )),
            None,
        )
        .await;
    assert_eq!(none["total"], 0, "{none}");
    let (_, ov) = t
        .call(
            "GET",
            &t.url(&format!("/tasks/{task}/monitor-overview")),
            None,
        )
        .await;
    assert_eq!(
        (ov["total_num"].as_u64(), ov["success_num"].as_u64()),
        (Some(1), Some(1)),
        "{ov}"
    );
    let (_, mons) = t
        .call("GET", &t.url("/task-monitors?execute_status=SUCCESS"), None)
        .await;
    assert_eq!(mons["total"], 1, "{mons}");
    let (_, stats) = t.call("GET", &t.url("/statistics/tasks"), None).await;
    assert_eq!(
        stats["common_task_details"]["completed_tasks_count"], 1,
        "{stats}"
    );
    let (st, b) = t
        .call("DELETE", &t.url(&format!("/datasources/{src}")), None)
        .await;
    assert_eq!(
        (st, b["error_code"].as_str()),
        (400, Some("FDI.3121")),
        "{b}"
    );
    let (st, _) = t
        .call("DELETE", &t.url(&format!("/tasks/{task}")), None)
        .await;
    assert_eq!(st, 204);
    let (st, _) = t
        .call("DELETE", &t.url(&format!("/datasources/{src}")), None)
        .await;
    assert_eq!(st, 204);
}
