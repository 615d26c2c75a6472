//! The `fdi` client commands against a real server and real databases: `--output json` parsed,
//! exit codes (0 SUCCESS, 1 ERROR, 2 CANCELLED, 3 usage/API error), errors on stderr with the FDI
//! code and the field, and the token from env, config file and flag. The CLI is the same binary as
//! the server under test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fdi_e2e::*;
use serde_json::{Value, json};

/// What one CLI invocation did.
#[derive(Debug)]
struct CliRun {
    code: i32,
    stdout: String,
    stderr: String,
}

impl CliRun {
    /// stdout as the one JSON document `--output json` promises.
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:?}"))
    }
}

/// An empty HOME for the CLI, so no config file of the machine's user is read.
fn empty_home() -> PathBuf {
    let home = std::env::temp_dir().join(unique("fdi-cli-home"));
    std::fs::create_dir_all(&home).unwrap();
    home
}

/// `fdi` with no FDI_* variable of the test's environment, an empty HOME, and the server's
/// address, project and instance from the environment (no token).
fn bare_cli(s: &TestServer, home: &Path) -> Command {
    let mut c = Command::new(server_binary());
    for (k, _) in std::env::vars() {
        if k.starts_with("FDI_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env("FDI_SERVER", &s.base)
        .env("FDI_PROJECT_ID", PROJECT)
        .env("FDI_INSTANCE_ID", INSTANCE)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// `fdi` with the token in FDI_TOKEN.
fn cli(s: &TestServer) -> Command {
    let mut c = bare_cli(s, &empty_home());
    c.env("FDI_TOKEN", TOKEN);
    c
}

fn finish(child: Child) -> CliRun {
    let out = child.wait_with_output().expect("fdi output");
    CliRun {
        code: out.status.code().expect("exit code, not a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run(mut cmd: Command, args: &[&str]) -> CliRun {
    finish(cmd.args(args).spawn().expect("spawn fdi"))
}

/// Run with `input` on stdin.
fn run_with_stdin(mut cmd: Command, args: &[&str], input: &str) -> CliRun {
    let mut child = cmd.args(args).stdin(Stdio::piped()).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    finish(child)
}

/// Write a JSON body to a file of its own.
fn body_file(body: &Value) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.json", unique("fdi-cli-body")));
    std::fs::write(&path, body.to_string()).unwrap();
    path
}

fn ds_body(app: &str, ds_type: &str, content: Value) -> Value {
    json!({"datasource_name": unique("cli_ds"), "datasource_type": ds_type, "app_id": app, "content": content})
}

/// Create a datasource with `fdi ds create --file F --output json`; returns its id.
fn cli_create_datasource(s: &TestServer, body: &Value) -> String {
    let file = body_file(body);
    let r = run(
        cli(s),
        &[
            "ds",
            "create",
            "--file",
            file.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    r.json()["datasource_id"]
        .as_str()
        .expect("datasource_id")
        .to_string()
}

/// Create a task with `fdi task create --file F --output json`; returns its id.
fn cli_create_task(s: &TestServer, body: &Value) -> String {
    let file = body_file(body);
    let r = run(
        cli(s),
        &["task", "create", "-f", file.to_str().unwrap(), "-o", "json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    r.json()["task"]["task_id"]
        .as_str()
        .expect("task.task_id")
        .to_string()
}

/// count, sum of ids and an md5 over every row in id order.
async fn pg_fingerprint(table: &str) -> (i64, i64, String) {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), coalesce(sum(id), 0)::bigint,
                coalesce(md5(string_agg(id::text || ':' || payload || ':' || amount::text, ',' ORDER BY id)), '')
         FROM {table}"
    )))
    .fetch_one(&pg().await)
    .await
    .unwrap()
}

async fn make_pg_tables(src: &str, dst: &str, rows: i64) {
    pg_exec(&format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, payload text, amount numeric(12,2));
         INSERT INTO {src} SELECT g, md5(g::text), g * 1.25 FROM generate_series(1, {rows}) g;
         CREATE TABLE {dst} (id bigint PRIMARY KEY, payload text, amount numeric(12,2));"
    ))
    .await;
}

fn table_detail(src: &str, dst: &str) -> Value {
    json!({"sourceSelectedDatasource": {"sourceTable": src}, "targetSelectedDatasource": {"targetTable": dst}})
}

#[tokio::test]
async fn copy_through_the_cli_exits_0_and_the_target_matches() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let src = unique("cli_src");
    let dst = unique("cli_dst");
    make_pg_tables(&src, &dst, 20_000).await;

    let source = cli_create_datasource(&s, &ds_body(&app, "POSTGRESQL", pg_content()));
    // The target's body from stdin.
    let r = run_with_stdin(
        cli(&s),
        &["ds", "create", "--file", "-", "--output", "json"],
        &ds_body(&app, "POSTGRESQL", pg_content()).to_string(),
    );
    assert_eq!(r.code, 0, "{r:?}");
    let target = r.json()["datasource_id"].as_str().unwrap().to_string();
    assert_ne!(source, target);

    let r = run(cli(&s), &["ds", "ls", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let listed = r.json();
    let ids: Vec<&str> = listed["entities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["datasource_id"].as_str())
        .collect();
    assert!(
        ids.contains(&source.as_str()) && ids.contains(&target.as_str()),
        "both datasources listed: {}",
        r.stdout
    );
    let r = run(cli(&s), &["ds", "test", &source]);
    assert_eq!(
        (r.code, r.stdout.contains("connection OK")),
        (0, true),
        "{r:?}"
    );

    let name = unique("cli_task");
    let task_id = cli_create_task(
        &s,
        &task_body(&name, &source, &target, &table_detail(&src, &dst)),
    );
    let r = run(cli(&s), &["task", "ls", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let listed = r.json()["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == task_id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("task {task_id} not in `task ls`: {}", r.stdout));
    assert_eq!(listed["task_name"], name.as_str());

    // Run by name, follow to the end: exit 0 and the final entry on stdout.
    let r = run(
        cli(&s),
        &["task", "run", &name, "--follow", "--output", "json"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let end = r.json();
    assert_eq!(end["execute_status"], "SUCCESS", "{end}");
    let tracking_id = end["id"].as_str().expect("run id").to_string();
    assert_eq!(pg_fingerprint(&dst).await, pg_fingerprint(&src).await);
    assert_eq!(pg_fingerprint(&dst).await.0, 20_000);

    // The same run through the typed client the CLI uses, and its follower on an ended run.
    let client = s.client();
    let entry = client.get_run(&task_id, &tracking_id).await.unwrap();
    assert_eq!(entry.execute_status, "SUCCESS");
    let mut events = Vec::new();
    let last = client
        .follow_run(&task_id, &tracking_id)
        .wait_end(|e| events.push(e.clone()))
        .await
        .unwrap();
    assert_eq!(last.execute_status, "SUCCESS");
    assert!(
        matches!(events.last(), Some(fdi_client::RunEvent::End(_))),
        "{events:?}"
    );

    // Its monitor log, as JSON and as a table.
    let r = run(cli(&s), &["run", "logs", &task_id, "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let runs = r.json();
    assert_eq!(runs["entities"][0]["id"], tracking_id.as_str(), "{runs}");
    assert_eq!(runs["entities"][0]["data_count"], 20_000, "{runs}");
    let r = run(cli(&s), &["run", "logs", &name]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(&tracking_id)
            && r.stdout.contains("SUCCESS")
            && r.stdout.contains("20,000"),
        "{r:?}"
    );
    let r = run(cli(&s), &["task", "show", &task_id, "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        r.json()["task"]["execute_status"],
        "SUCCESS",
        "{}",
        r.stdout
    );

    pg_exec(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn a_run_that_fails_exits_1_with_its_outcome_last_on_stdout() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let src = unique("cli_gone");
    let dst = unique("cli_gone_dst");
    make_pg_tables(&src, &dst, 10).await;
    let source = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let target = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let task = s
        .create_task(&source, &target, table_detail(&src, &dst))
        .await;
    // The source table goes away after the task was made: the run ends ERROR.
    pg_exec(&format!("DROP TABLE {src}")).await;

    let r = run(cli(&s), &["task", "run", &task, "--follow"]);
    assert_eq!(r.code, 1, "{r:?}");
    let last = r
        .stdout
        .lines()
        .rev()
        .find(|l| !l.starts_with("  "))
        .unwrap_or("");
    assert!(
        last.starts_with("ERROR"),
        "the outcome is the last line: {r:?}"
    );
    assert!(r.stdout.starts_with("run started: tracking id "), "{r:?}");
    assert!(
        !r.stdout.contains('\u{1b}'),
        "no terminal escapes when stdout is a pipe: {r:?}"
    );
    let runs = s.runs(&task).await;
    assert_eq!(runs[0]["execute_status"], "ERROR", "{:?}", runs[0]);

    // `run logs --follow` of the ended run: the same outcome, the same exit code.
    let r = run(cli(&s), &["run", "logs", &task, "--follow", "-o", "json"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.json()["execute_status"], "ERROR");
    pg_exec(&format!("DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn terminate_from_another_process_makes_the_follower_exit_2() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let src = unique("cli_big");
    let dst = unique("cli_big_dst");
    pg_exec(&format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, payload text);
         INSERT INTO {src} SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 3000000) g"
    ))
    .await;
    mysql_exec(&format!(
        "CREATE TABLE {dst} (id bigint PRIMARY KEY, payload text)"
    ))
    .await;
    let source = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let target = s.create_datasource(&app, "MYSQL", mysql_content()).await;
    let task = s
        .create_task(&source, &target, table_detail(&src, &dst))
        .await;

    let follower = cli(&s)
        .args(["task", "run", &task, "--follow"])
        .spawn()
        .unwrap();
    s.wait_running(&task, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = run(cli(&s), &["task", "terminate", &task]);
    assert_eq!(r.code, 0, "{r:?}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut follower = follower;
    while follower.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the follower did not exit after terminate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = finish(follower);
    assert_eq!(r.code, 2, "{r:?}");
    // stdout is a pipe: one line per progress change, then the outcome.
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("RUNNING ") && l.contains(" rows")),
        "progress lines while it ran: {r:?}"
    );
    assert!(
        lines
            .iter()
            .rev()
            .find(|l| !l.starts_with("  "))
            .is_some_and(|l| l.starts_with("CANCELLED")),
        "{r:?}"
    );
    // The ended run followed again, as JSON: the same outcome, the same exit code.
    let r = run(
        cli(&s),
        &["run", "logs", &task, "--follow", "--output", "json"],
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.json()["execute_status"], "CANCELLED", "{r:?}");
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {dst}")))
        .fetch_one(&mysql().await)
        .await
        .unwrap();
    assert!(n < 3_000_000, "the run was cut short: {n} rows");

    pg_exec(&format!("DROP TABLE {src}")).await;
    mysql_exec(&format!("DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn a_bad_body_prints_the_fdi_code_and_the_field_and_exits_3() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let source = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let mut body = task_body("x", &source, &source, &json!({}));
    body["task"].as_object_mut().unwrap().remove("task_name");
    let file = body_file(&body);
    // The code the API gives this body (FDI.3157: the task name rule).
    let (st, answer) = s.post("/tasks", body.clone()).await;
    assert_eq!(st, 400, "{answer}");
    let code = answer["error_code"].as_str().unwrap().to_string();
    assert!(code.starts_with("FDI."), "{answer}");
    for output in ["text", "json"] {
        let r = run(
            cli(&s),
            &[
                "task",
                "create",
                "--file",
                file.to_str().unwrap(),
                "--output",
                output,
            ],
        );
        assert_eq!(r.code, 3, "{r:?}");
        assert!(r.stdout.is_empty(), "nothing on stdout: {r:?}");
        assert!(
            r.stderr.starts_with(&format!("fdi: {code} ")) && r.stderr.contains("task_name"),
            "the FDI code and the field on stderr: {r:?}"
        );
    }
    let (st, tasks) = s.get("/tasks").await;
    assert_eq!(
        (st, &tasks["total"]),
        (200, &json!(0)),
        "nothing was created"
    );

    // Not JSON at all: a usage error, also 3.
    let bad = std::env::temp_dir().join(format!("{}.json", unique("fdi-cli-notjson")));
    std::fs::write(&bad, "{not json").unwrap();
    let r = run(cli(&s), &["ds", "create", "--file", bad.to_str().unwrap()]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("not JSON"), "{r:?}");
    // An unknown task: the API's code.
    let r = run(cli(&s), &["task", "show", "no-such-task-id"]);
    assert_eq!(r.code, 3, "{r:?}");
    // A clap usage error is 3 too (clap's own 2 would read as CANCELLED).
    let r = run(cli(&s), &["task", "run"]);
    assert_eq!(r.code, 3, "{r:?}");
}

#[tokio::test]
async fn token_from_env_from_the_config_file_and_a_wrong_token() {
    let s = TestServer::start(StoreKind::under_test()).await;

    // FDI_TOKEN.
    let r = run(cli(&s), &["task", "ls", "-o", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["total"], 0);

    // ~/.config/fdi/cli.toml with the server and the token (no FDI_SERVER, no FDI_TOKEN).
    let home = empty_home();
    std::fs::create_dir_all(home.join(".config/fdi")).unwrap();
    std::fs::write(
        home.join(".config/fdi/cli.toml"),
        format!(
            "server = \"{}\"\ntoken = \"{TOKEN}\"\nproject_id = \"{PROJECT}\"\ninstance_id = \"{INSTANCE}\"\n",
            s.base
        ),
    )
    .unwrap();
    let mut cmd = bare_cli(&s, &home);
    cmd.env_remove("FDI_SERVER")
        .env_remove("FDI_PROJECT_ID")
        .env_remove("FDI_INSTANCE_ID");
    let r = run(cmd, &["task", "ls", "-o", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["total"], 0);

    // $FDI_CONFIG names another file.
    let other = std::env::temp_dir().join(format!("{}.toml", unique("fdi-cli-conf")));
    std::fs::write(&other, format!("token = \"{TOKEN}\"\n")).unwrap();
    let mut cmd = bare_cli(&s, &empty_home());
    cmd.env("FDI_CONFIG", &other);
    let r = run(cmd, &["ds", "ls", "-o", "json"]);
    assert_eq!(r.code, 0, "{r:?}");

    // The flag wins over the file: a wrong token is refused with the API's code.
    let r = run(
        bare_cli(&s, &home),
        &["task", "ls", "--token", "wrong-token"],
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("FDI.1001"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    // FDI_TOKEN wins over the file too.
    let mut cmd = bare_cli(&s, &home);
    cmd.env("FDI_TOKEN", "wrong-token");
    let r = run(cmd, &["task", "ls", "-o", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("FDI.1001"), "{r:?}");

    // No token anywhere: a usage error that says where a token comes from.
    let r = run(bare_cli(&s, &empty_home()), &["task", "ls"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("FDI_TOKEN"), "{r:?}");
}

/// Progress changes of one follower, its end, and how it got each change (events or polling).
async fn follow_all(
    mut follower: fdi_client::RunFollower,
) -> (
    Vec<fdi_client::RunEntry>,
    fdi_client::RunEntry,
    Vec<fdi_client::FollowMode>,
) {
    let mut seen = Vec::new();
    let mut modes = Vec::new();
    loop {
        match follower.next().await.expect("follow the run") {
            Some(fdi_client::RunEvent::Progress(entry)) => {
                modes.push(follower.mode());
                seen.push(entry);
            }
            Some(fdi_client::RunEvent::End(entry)) => return (seen, entry, modes),
            None => panic!("the follower stopped without an end"),
        }
    }
}

#[tokio::test]
async fn the_follower_sees_progress_in_order_over_events_and_over_polling() {
    const ROWS: i64 = 400_000;
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let src = unique("cli_follow");
    let dst = unique("cli_follow_dst");
    make_pg_tables(&src, &dst, ROWS).await;
    pg_exec(&format!("ANALYZE {src}")).await;
    let source = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let target = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let task = s
        .create_task(&source, &target, table_detail(&src, &dst))
        .await;

    let client = s.client();
    let started = client.run_task(&task).await.expect("run");
    let streamed = client.follow_run(&task, &started.tracking_id);
    let polled = client
        .follow_run(&task, &started.tracking_id)
        .polling_only();
    assert_eq!(polled.mode(), fdi_client::FollowMode::Polling);
    let ((events, end, streamed_modes), (polls, polled_end, polled_modes)) =
        tokio::join!(follow_all(streamed), follow_all(polled));
    assert!(
        streamed_modes
            .iter()
            .all(|m| *m == fdi_client::FollowMode::Events),
        "this server has the events endpoint: {streamed_modes:?}"
    );
    assert!(
        polled_modes
            .iter()
            .all(|m| *m == fdi_client::FollowMode::Polling),
        "{polled_modes:?}"
    );

    for (how, seen, end) in [("events", &events, &end), ("polling", &polls, &polled_end)] {
        assert_eq!(end.id, started.tracking_id, "{how}");
        assert_eq!(end.execute_status, "SUCCESS", "{how}: {end:?}");
        assert_eq!(end.rows(), ROWS as u64, "{how}: {end:?}");
        assert_eq!(end.progress, Some(100.0), "{how}: {end:?}");
        assert!(
            !seen.is_empty(),
            "{how}: at least one progress change before the end"
        );
        for pair in seen.windows(2) {
            assert!(
                pair[0].rows() <= pair[1].rows()
                    && pair[0].progress.unwrap_or(0.0) <= pair[1].progress.unwrap_or(0.0),
                "{how}: progress goes forward: {:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
        assert!(
            seen.iter().all(|e| !e.is_finished()),
            "{how}: only the end is finished"
        );
    }
    println!(
        "follower: {} progress events over SSE, {} changes seen by polling every 500 ms",
        events.len(),
        polls.len()
    );
    assert_eq!(pg_fingerprint(&dst).await, pg_fingerprint(&src).await);
    pg_exec(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn start_and_stop_a_planned_task_through_the_cli() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let src = unique("cli_plan");
    let dst = unique("cli_plan_dst");
    make_pg_tables(&src, &dst, 1).await;
    let source = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let task = s
        .create_task(&source, &source, table_detail(&src, &dst))
        .await;
    // A plan far in the future: started, it never fires during the test.
    let (st, p) = s
        .post(
            &format!("/tasks/{task}/dispatches"),
            json!({"use_quartz_cron": true, "cron": "0 0 0 1 1 ? 2099", "remark": "cli"}),
        )
        .await;
    assert_eq!(st, 200, "{p}");
    let state = |r: &CliRun| {
        r.json()["entities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task_id"] == task.as_str())
            .map(|t| t["status"].clone())
            .unwrap_or_else(|| panic!("task {task} listed: {}", r.stdout))
    };

    let r = run(cli(&s), &["task", "start", &task, "-o", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["success_count"], 1, "{r:?}");
    assert_eq!(state(&run(cli(&s), &["task", "ls", "-o", "json"])), 1);

    let r = run(cli(&s), &["task", "stop", &task]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with(&format!("stop: {task}")), "{r:?}");
    assert_eq!(state(&run(cli(&s), &["task", "ls", "-o", "json"])), 0);

    // An unknown task: nothing is sent, exit 3.
    let r = run(cli(&s), &["task", "start", &task, "no-such-task"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("no-such-task"), "{r:?}");
    pg_exec(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}
