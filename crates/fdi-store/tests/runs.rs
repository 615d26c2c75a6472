//! Runs as rows, and the upgrade of 0.1 run documents, on both back ends.

mod common;

use common::{Backend, backends};
use fdi_store::{RunFilter, RunView, StepView, Store, Trigger};
use fdi_types::{ExecuteStatus, IncrementalWindow, Position, PositionStatus};

fn step(code: u16, remarks: &str) -> StepView {
    StepView {
        id: fdi_types::new_id(),
        code,
        position: Position::Adapter,
        position_status: PositionStatus::Normal,
        stage: "adapter".into(),
        data_count: 0,
        dirty_data_count: 0,
        data_bytes: 0,
        remarks: remarks.into(),
        begin_ms: 1,
        end_ms: 2,
        sub_steps: Vec::new(),
    }
}

fn run(task: &str, id: &str, start_ms: i64) -> RunView {
    RunView {
        id: id.into(),
        task_id: task.into(),
        start_ms,
        dispatch_ms: start_ms,
        end_ms: None,
        execute_status: ExecuteStatus::Running,
        position: Position::Adapter,
        position_status: PositionStatus::Normal,
        status_code: 900,
        data_count: 0,
        dirty_data_count: 0,
        data_bytes: 0,
        read_ms: 0,
        write_ms: 0,
        remarks: String::new(),
        steps: vec![step(900, "dispatch")],
        trigger: Trigger::Plan,
        node_id: "n1".into(),
        window: Some(IncrementalWindow {
            begin_ms: 10,
            end_ms: 20,
            include_nulls: true,
        }),
        read_count: 0,
        total_count: None,
        progress: None,
        rows_per_second: 0.0,
        remaining_ms: None,
        rate_sample: None,
        stored_steps: 0,
    }
}

async fn saves_write_only_what_changed(b: &Backend) {
    let s = Store::open(&b.url, &b.dir).await.unwrap();
    let mut r = run("t1", "r1", 1_000);
    s.insert_run(&mut r).await.unwrap();
    assert_eq!((r.stored_steps, r.steps.len()), (1, 0));
    r.steps.push(step(99, "start"));
    let mut reading = step(102, "reading");
    reading.sub_steps = vec![fdi_store::SubStepView {
        code: 102,
        stage: "public.a -> a_copy".into(),
        data_count: 5,
        remarks: "5 inserts, 0 updates, 0 deletes".into(),
    }];
    r.steps.push(reading.clone());
    r.data_count = 7;
    r.read_count = 9;
    r.total_count = Some(40);
    r.progress = Some(22);
    r.rows_per_second = 1234.5;
    r.remaining_ms = Some(25);
    s.save_run(&mut r).await.unwrap();
    let live = s.run_row("r1").await.unwrap().unwrap();
    assert_eq!(
        (
            live.read_count,
            live.total_count,
            live.progress,
            live.rows_per_second,
            live.remaining_ms
        ),
        (9, Some(40), Some(22), 1234.5, Some(25)),
        "live progress of a running run, {}",
        b.name
    );
    r.total_count = None;
    r.progress = Some(100);
    r.remaining_ms = None;
    r.execute_status = ExecuteStatus::Success;
    r.end_ms = Some(2_000);
    r.steps.push(step(901, "done"));
    s.save_run(&mut r).await.unwrap();
    s.save_run(&mut r).await.unwrap();
    let got = s.run_with_steps("t1", "r1").await.unwrap().unwrap();
    let codes: Vec<u16> = got.steps.iter().map(|s| s.code).collect();
    assert_eq!(codes, [900, 99, 102, 901], "{}", b.name);
    assert_eq!(got.steps[2].sub_steps, reading.sub_steps, "sub-steps kept");
    assert!(got.steps[3].sub_steps.is_empty());
    assert_eq!(got.data_count, 7);
    assert_eq!(
        (
            got.read_count,
            got.total_count,
            got.progress,
            got.remaining_ms
        ),
        (9, None, Some(100), None)
    );
    assert_eq!(got.execute_status, ExecuteStatus::Success);
    assert_eq!(got.window, r.window, "the window with its NULL-cursor flag");
    assert_eq!(got.trigger, Trigger::Plan);
    assert!(
        s.run_with_steps("other-task", "r1")
            .await
            .unwrap()
            .is_none()
    );

    // Paging newest first, time range, counts, last run.
    for i in 0..25 {
        let mut r = run("t2", &format!("p{i:02}"), 10_000 + i);
        if i % 5 == 0 {
            r.execute_status = ExecuteStatus::Error;
        } else {
            r.execute_status = ExecuteStatus::Success;
        }
        s.insert_run(&mut r).await.unwrap();
    }
    let page = |offset, limit| RunFilter {
        begin_ms: None,
        end_ms: None,
        offset,
        limit,
    };
    let (total, runs) = s.list_runs("t2", &page(0, 10)).await.unwrap();
    assert_eq!(total, 25);
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids[..3], ["p24", "p23", "p22"]);
    assert!(runs.iter().all(|r| r.steps.len() == 1), "steps loaded");
    let (_, runs) = s.list_runs("t2", &page(20, 10)).await.unwrap();
    assert_eq!(runs.len(), 5);
    let ranged = RunFilter {
        begin_ms: Some(10_010),
        end_ms: Some(10_014),
        offset: 0,
        limit: 100,
    };
    assert_eq!(s.list_runs("t2", &ranged).await.unwrap().0, 5);
    let c = s.run_counts("t2").await.unwrap();
    assert_eq!((c.total, c.error, c.success), (25, 5, 20));
    assert_eq!(s.last_run("t2").await.unwrap().unwrap().id, "p24");
    s.delete_task_runs("t2").await.unwrap();
    assert_eq!(s.run_counts("t2").await.unwrap().total, 0);
    assert_eq!(s.run_counts("t1").await.unwrap().total, 1);
}

#[tokio::test]
async fn run_saves_write_only_what_changed_on_both_stores() {
    for b in backends().await {
        saves_write_only_what_changed(&b).await;
    }
}

/// A store as the 0.1 release left it: run documents in `fdi_docs`.
async fn run_documents_move_into_rows(b: &Backend) {
    b.exec_raw(&[
        "CREATE TABLE fdi_docs (kind TEXT NOT NULL, id TEXT NOT NULL, scope TEXT NOT NULL, parent TEXT NOT NULL, created BIGINT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, id))",
    ])
    .await;
    let mut docs = Vec::new();
    for i in 0..1_203 {
        let mut r = run("legacy", &format!("old{i:05}"), 5_000 + i);
        r.steps.push(step(901, &format!("end of {i}")));
        r.execute_status = ExecuteStatus::Success;
        r.data_count = i as u64;
        r.window = r.window.map(|w| IncrementalWindow {
            include_nulls: false,
            ..w
        });
        // 0.1 wrote no `stored_steps` and, for old runs, no trigger/node/window.
        let mut v = serde_json::to_value(&r).unwrap();
        if i % 2 == 0 {
            for k in ["trigger", "node_id", "window", "task_id"] {
                v.as_object_mut().unwrap().remove(k);
            }
        }
        docs.push(format!(
            "INSERT INTO fdi_docs VALUES ('run', 'old{i:05}', '', 'legacy', {}, '{}')",
            5_000 + i,
            v.to_string().replace('\'', "''")
        ));
    }
    docs.push("INSERT INTO fdi_docs VALUES ('app', 'a1', 'p/i', '', 1, '{\"id\":\"a1\",\"name\":\"app one\",\"remark\":\"\",\"key\":\"k\",\"favorite\":false,\"created_ms\":1,\"updated_ms\":2}')".into());
    docs.push("INSERT INTO fdi_docs VALUES ('other', 'x1', '', '', 1, '{}')".into());
    // 0.1 let two racing creates store one name twice: both rows survive the unique index.
    for id in ["dup00001aaaa", "dup00002bbbb"] {
        docs.push(format!("INSERT INTO fdi_docs VALUES ('app', '{id}', 'p/i', '', 2, '{{\"id\":\"{id}\",\"name\":\"twin\",\"created_ms\":2,\"updated_ms\":2}}')"));
    }
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    b.exec_raw(&refs).await;

    let s = Store::open(&b.url, &b.dir).await.unwrap();
    assert!(s.schema_version().await.unwrap() >= 2);
    let c = s.run_counts("legacy").await.unwrap();
    assert_eq!(c.total, 1_203, "{}: every run moved", b.name);
    let (total, _) = s.list_runs("legacy", &page_all()).await.unwrap();
    assert_eq!(
        total, 1_203,
        "{}: the task's kept total is filled in",
        b.name
    );
    let got = s
        .run_with_steps("legacy", "old01001")
        .await
        .unwrap()
        .expect("run kept its id");
    assert_eq!(got.data_count, 1_001);
    assert_eq!(got.start_ms, 6_001);
    assert_eq!(
        got.steps.iter().map(|s| s.code).collect::<Vec<_>>(),
        [900, 901]
    );
    assert_eq!(got.steps[1].remarks, "end of 1001");
    assert_eq!(
        serde_json::to_value(got.window).unwrap(),
        serde_json::json!([10, 20]),
        "{}: the window as 0.1 wrote it",
        b.name
    );
    assert_last_run(&s, b, "legacy", Some(("old01202", "SUCCESS"))).await;
    let even = s
        .run_with_steps("legacy", "old01000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        even.trigger,
        Trigger::Manual,
        "a missing trigger reads as manual"
    );
    // The documents that are not runs stay; the run documents are gone (moved, not copied).
    assert_eq!(
        b.count("SELECT COUNT(*) FROM fdi_docs WHERE kind = 'run'")
            .await,
        0
    );
    assert_eq!(
        b.count("SELECT COUNT(*) FROM fdi_docs WHERE kind = 'app'")
            .await,
        0,
        "apps moved into their table"
    );
    assert_eq!(
        b.count("SELECT COUNT(*) FROM fdi_apps WHERE name = 'app one'")
            .await,
        1
    );
    assert_eq!(
        b.count("SELECT COUNT(*) FROM fdi_apps WHERE name IN ('twin', 'twin-dup00002')")
            .await,
        2,
        "{}: the later twin is renamed",
        b.name
    );
    assert_eq!(
        b.count("SELECT COUNT(*) FROM fdi_docs WHERE kind = 'other'")
            .await,
        1,
        "documents of no known kind stay"
    );
    // Opening again changes nothing.
    drop(s);
    let s = Store::open(&b.url, &b.dir).await.unwrap();
    assert_eq!(s.run_counts("legacy").await.unwrap().total, 1_203);
}

#[tokio::test]
async fn run_documents_of_release_0_1_move_into_rows_on_both_stores() {
    for b in backends().await {
        run_documents_move_into_rows(&b).await;
    }
}

async fn retention_prunes_old_and_surplus_runs_never_active_ones(b: &Backend) {
    let s = Store::open(&b.url, &b.dir).await.unwrap();
    let mut runs = Vec::new();
    for i in 0..30 {
        let mut r = run("old", &format!("o{i:02}"), 1_000 + i);
        r.execute_status = if i == 3 {
            ExecuteStatus::Running
        } else {
            ExecuteStatus::Success
        };
        runs.push(r);
    }
    for i in 0..30 {
        let mut r = run("many", &format!("m{i:02}"), 100_000 + i);
        r.execute_status = if i == 0 {
            ExecuteStatus::Running
        } else {
            ExecuteStatus::Error
        };
        runs.push(r);
    }
    s.insert_runs(&runs).await.unwrap();
    // By age, in batches of 7: every ended run before 50_000 goes, the running one stays.
    let mut deleted = 0;
    loop {
        let n = s.prune_runs_before(50_000, 7).await.unwrap();
        deleted += n;
        if n < 7 {
            break;
        }
    }
    assert_eq!(deleted, 29, "{}", b.name);
    let (_, left) = s.list_runs("old", &page_all()).await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["o03"],
        "{}",
        b.name
    );
    assert!(left[0].steps.len() == 1, "its steps stay");
    assert_eq!(
        b.count("SELECT COUNT(*) FROM fdi_run_steps WHERE run_id LIKE 'o%'")
            .await,
        1,
        "{}: steps of pruned runs go too",
        b.name
    );
    // Per task: keep the 10 newest (and the running one, however old).
    assert_eq!(s.tasks_with_runs_over(10).await.unwrap(), ["many"]);
    while s.prune_task_runs_beyond("many", 10, 4).await.unwrap() > 0 {}
    let (total, kept) = s.list_runs("many", &page_all()).await.unwrap();
    assert_eq!(total, 11, "{}", b.name);
    assert_eq!(kept[0].id, "m29");
    assert!(kept.iter().any(|r| r.id == "m00"), "the running run stays");
    assert_last_run(&s, b, "old", Some(("o03", "RUNNING"))).await;
    assert_last_run(&s, b, "many", Some(("m29", "ERROR"))).await;
}

/// The last run the store keeps noted for a task (what task lists show), and that it is the one
/// the task's runs say is newest.
async fn assert_last_run(s: &Store, b: &Backend, task: &str, want: Option<(&str, &str)>) {
    let from_runs = s.last_run(task).await.unwrap();
    assert_eq!(
        from_runs.as_ref().map(|r| r.id.as_str()),
        want.map(|w| w.0),
        "{}: {task}'s newest run",
        b.name
    );
    let noted = match want {
        Some((id, status)) => format!(
            "SELECT COUNT(*) FROM fdi_task_run_totals WHERE task_id = '{task}' \
             AND last_run_id = '{id}' AND last_status = '{status}' \
             AND last_start_ms = {}",
            from_runs.unwrap().start_ms
        ),
        None => format!(
            "SELECT COUNT(*) FROM fdi_task_run_totals WHERE task_id = '{task}' \
             AND last_run_id IS NULL AND last_status IS NULL"
        ),
    };
    assert_eq!(
        b.count(&noted).await,
        1,
        "{}: {task}'s noted last run is {want:?}",
        b.name
    );
}

async fn last_run_of_each_task_is_kept(b: &Backend) {
    let s = Store::open(&b.url, &b.dir).await.unwrap();
    let mut newer = run("lt", "b-newer", 5_000);
    s.insert_run(&mut newer).await.unwrap();
    assert_last_run(&s, b, "lt", Some(("b-newer", "RUNNING"))).await;
    // An older run stored later does not displace it; its saves do not touch the noted state.
    let mut older = run("lt", "a-older", 4_000);
    s.insert_run(&mut older).await.unwrap();
    older.data_count = 3;
    s.save_run(&mut older).await.unwrap();
    assert_last_run(&s, b, "lt", Some(("b-newer", "RUNNING"))).await;
    // The newest run's end is seen; a tie on the start is broken by the id, as lists order.
    newer.execute_status = ExecuteStatus::Success;
    s.save_run(&mut newer).await.unwrap();
    assert_last_run(&s, b, "lt", Some(("b-newer", "SUCCESS"))).await;
    let mut tie = run("lt", "c-tie", 5_000);
    s.insert_run(&mut tie).await.unwrap();
    assert_last_run(&s, b, "lt", Some(("c-tie", "RUNNING"))).await;
    tie.execute_status = ExecuteStatus::Cancelled;
    s.save_run(&mut tie).await.unwrap();
    assert_last_run(&s, b, "lt", Some(("c-tie", "CANCELLED"))).await;
    // Pruning the newest (ended) runs falls back to the newest left (still running), then,
    // once that one ended and went too, to none.
    assert_eq!(s.prune_runs_before(5_001, 10).await.unwrap(), 2);
    assert_last_run(&s, b, "lt", Some(("a-older", "RUNNING"))).await;
    older.execute_status = ExecuteStatus::Error;
    s.save_run(&mut older).await.unwrap();
    assert_last_run(&s, b, "lt", Some(("a-older", "ERROR"))).await;
    assert_eq!(s.prune_runs_before(5_001, 10).await.unwrap(), 1);
    assert_last_run(&s, b, "lt", None).await;
}

#[tokio::test]
async fn last_run_of_each_task_is_kept_on_both_stores() {
    for b in backends().await {
        last_run_of_each_task_is_kept(&b).await;
    }
}

fn page_all() -> RunFilter {
    RunFilter {
        begin_ms: None,
        end_ms: None,
        offset: 0,
        limit: 1_000,
    }
}

#[tokio::test]
async fn retention_prunes_old_and_surplus_runs_on_both_stores() {
    for b in backends().await {
        retention_prunes_old_and_surplus_runs_never_active_ones(&b).await;
    }
}
