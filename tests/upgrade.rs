//! A store written by the 0.1 release (`tests/fixtures/store-v1`, made by that binary) upgrades in
//! place at the first start of this one: every app, datasource (secrets still decryptable),
//! task, plan, started state, watermark and run with its steps is there, with the same ids and
//! the same API answers (answers may carry fields added since; nothing the old one said is lost
//! or changed). On SQLite and on PostgreSQL.

use std::path::{Path, PathBuf};

use fdi_e2e::*;
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/store-v1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// `expected` is contained in `actual`: every key it has, with the same value (recursively);
/// arrays element by element with the same length. Returns the first difference.
fn contained(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let av = a
                    .get(k)
                    .ok_or_else(|| format!("{path}.{k}: missing (expected {ev})"))?;
                contained(ev, av, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!("{path}: {} items, expected {}", a.len(), e.len()));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                contained(ev, av, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => Ok(()),
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{path}: {a}, expected {e}")),
    }
}

async fn upgraded_store_answers_as_before(store: &str, s: &TestServer) {
    let expected = fixture().join("expected").join(store);
    let index: Value =
        serde_json::from_slice(&std::fs::read(expected.join("index.json")).unwrap()).unwrap();
    let mut checked = 0;
    for (file, path) in index.as_object().unwrap() {
        let want: Value =
            serde_json::from_slice(&std::fs::read(expected.join(file)).unwrap()).unwrap();
        let url = format!("{}{}", s.base, path.as_str().unwrap());
        let (st, got) = s.call("GET", &url, None).await;
        assert_eq!(st, 200, "{store} {file}: {got}");
        if let Err(diff) = contained(&want, &got, file) {
            panic!("{store}: after the upgrade {diff}\nanswer: {got}");
        }
        checked += 1;
    }
    assert!(checked >= 30, "{store}: only {checked} answers compared");

    // Secrets still decrypt with the same key: the MySQL account really checks its password.
    for host in ["%", "localhost", "127.0.0.1"] {
        mysql_exec(&format!(
            "CREATE USER IF NOT EXISTS 'fdi_fx_user'@'{host}' IDENTIFIED BY 'Fx-Pass-42'"
        ))
        .await;
        mysql_exec(&format!("GRANT ALL ON test.* TO 'fdi_fx_user'@'{host}'")).await;
    }
    let ids: Value =
        serde_json::from_slice(&std::fs::read(expected.join("ids.json")).unwrap()).unwrap();
    let api = |p: &str| format!("{}/v2/fxproj/fdi/instances/fxinst{p}", s.base);
    let mysql = ids["datasources"]["mysql"].as_str().unwrap();
    let (st, ok) = s
        .call(
            "POST",
            &api(&format!("/datasources/{mysql}/test-connect")),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(
        (st, &ok["result"]),
        (200, &Value::Bool(true)),
        "{store}: {ok}"
    );

    // Started state and plans survived: the started task is still started, its plan is there.
    let started = ids["tasks"]["a_copy_started"].as_str().unwrap();
    let (_, list) = s.call("GET", &api("/tasks?limit=100"), None).await;
    let entry = list["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == started)
        .cloned()
        .expect("started task listed");
    assert_eq!(entry["status"], 1, "{store}: {entry}");

    // New runs go on next to the migrated ones.
    let (st, _) = s
        .call("POST", &api(&format!("/tasks/{started}/run")), None)
        .await;
    assert_eq!(st, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, logs) = s
            .call(
                "GET",
                &api(&format!("/tasks/{started}/monitor-logs?limit=100")),
                None,
            )
            .await;
        let runs = logs["entities"].as_array().unwrap();
        if runs.len() == 4 && runs[0]["execute_status"] != "RUNNING" {
            assert_eq!(logs["total"], 4, "{store}: {logs}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{store}: {logs}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_sqlite_data_dir_of_release_0_1_upgrades_in_place() {
    let dir = std::env::temp_dir().join(unique("fdi-upgrade-sqlite"));
    let db = fixture().join("sqlite-data/fdi.db");
    assert!(
        db.exists(),
        "the 0.1 store fixture {} is missing",
        db.display()
    );
    copy_dir(&fixture().join("sqlite-data"), &dir);
    // The fixture's SQLite datasources name files under the data dir it was made in.
    let files = "/tmp/fdi-fixture-v1-data/files";
    copy_dir(&fixture().join("sqlite-data/files"), Path::new(files));
    let s = TestServer::start_on(dir, None, &[("FDI_FILES_ROOT", files)]).await;
    upgraded_store_answers_as_before("sqlite", &s).await;
}

#[tokio::test]
async fn a_postgres_store_of_release_0_1_upgrades_in_place() {
    let db = unique("fdi_upgrade_pg");
    pg_exec(&format!("CREATE DATABASE {db}")).await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    let dump = fixture().join("postgres.sql");
    let st = std::process::Command::new("psql")
        .args([
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-o",
            "/dev/null",
            "-d",
            &url,
            "-f",
        ])
        .arg(&dump)
        .status()
        .unwrap();
    assert!(st.success(), "load {}", dump.display());
    let dir = std::env::temp_dir().join(unique("fdi-upgrade-pg"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture().join("secret.key"), dir.join("secret.key")).unwrap();
    let files = "/tmp/fdi-fixture-v1-pgdata/files";
    copy_dir(&fixture().join("postgres-data/files"), Path::new(files));
    let s = TestServer::start_on(dir, Some(url), &[("FDI_FILES_ROOT", files)]).await;
    upgraded_store_answers_as_before("postgres", &s).await;
}
