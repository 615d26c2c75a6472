//! What each client command does.

use std::io::Read;

use fdi_client::{BatchAction, BatchResult, Client, PageQuery, RunEntry, RunEvent, TaskBrief};
use serde_json::{Value, json};

use crate::output::{Output, duration_ms, print_json, print_table, thousands, utc_time};
use crate::progress::{RunDisplay, progress_line};
use crate::{
    BodyArgs, CliError, ClientCommand, ConnArgs, DsAction, EXIT_SUCCESS, EXIT_USAGE_OR_API,
    ListArgs, RunAction, TaskAction, exit_code_of,
};

/// The FDI code of "the task does not exist".
const TASK_NOT_FOUND: &str = "FDI.3081";

type Outcome = Result<i32, CliError>;

pub async fn dispatch(command: ClientCommand) -> Outcome {
    match command {
        ClientCommand::Ds(a) => {
            let (client, out) = connect(&a.conn)?;
            match a.action {
                DsAction::Ls(l) => ds_ls(&client, out, l).await,
                DsAction::Create(b) => ds_create(&client, out, &b).await,
                DsAction::Test { datasource_id } => ds_test(&client, out, &datasource_id).await,
            }
        }
        ClientCommand::Task(a) => {
            let (client, out) = connect(&a.conn)?;
            match a.action {
                TaskAction::Ls(l) => task_ls(&client, out, l).await,
                TaskAction::Create(b) => task_create(&client, out, &b).await,
                TaskAction::Show { task } => task_show(&client, out, &task).await,
                TaskAction::Run { task, follow } => task_run(&client, out, &task, follow).await,
                TaskAction::Terminate { task } => task_terminate(&client, out, &task).await,
                TaskAction::Start { tasks } => {
                    batch(&client, out, BatchAction::Start, &tasks).await
                }
                TaskAction::Stop { tasks } => batch(&client, out, BatchAction::Stop, &tasks).await,
            }
        }
        ClientCommand::Run(a) => {
            let (client, out) = connect(&a.conn)?;
            match a.action {
                RunAction::Logs {
                    task,
                    follow,
                    limit,
                } => run_logs(&client, out, &task, follow, limit).await,
            }
        }
    }
}

fn connect(conn: &ConnArgs) -> Result<(Client, Output), CliError> {
    let client = Client::new(conn.client_config()?)?;
    Ok((client, conn.output))
}

/// The JSON body of a create: a file, or stdin for `-`.
fn read_body(args: &BodyArgs) -> Result<Value, CliError> {
    let (text, from) = if args.file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::Usage(format!("read the body from stdin: {e}")))?;
        (s, "stdin".to_string())
    } else {
        let s = std::fs::read_to_string(&args.file)
            .map_err(|e| CliError::Usage(format!("read the body from {}: {e}", args.file)))?;
        (s, args.file.clone())
    };
    serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("the body in {from} is not JSON: {e}")))
}

fn page(l: ListArgs) -> PageQuery {
    PageQuery {
        offset: Some(l.offset),
        limit: Some(l.limit),
    }
}

/// A task by id, else by exact name.
async fn resolve_task(client: &Client, task: &str) -> Result<String, CliError> {
    match client.get_task(task).await {
        Ok(t) => return Ok(t.task.task_id),
        Err(e) if e.error_code() == Some(TASK_NOT_FOUND) || e.status() == Some(400) => {}
        Err(e) => return Err(e.into()),
    }
    let named: Vec<TaskBrief> = client
        .find_tasks(task)
        .await?
        .entities
        .into_iter()
        .filter(|t| t.task_name == task)
        .collect();
    match named.as_slice() {
        [one] => Ok(one.task_id.clone()),
        [] => Err(CliError::Usage(format!(
            "task {task:?}: no task has this id or name"
        ))),
        _ => Err(CliError::Usage(format!(
            "task {task:?}: {} tasks have this name; use the task id",
            named.len()
        ))),
    }
}

// ---- datasources --------------------------------------------------------------------------------

async fn ds_ls(client: &Client, out: Output, l: ListArgs) -> Outcome {
    let list = client.list_datasources(page(l)).await?;
    if out == Output::Json {
        print_json(&list);
        return Ok(EXIT_SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .entities
        .iter()
        .map(|d| {
            vec![
                d.datasource_id.clone(),
                d.datasource_name.clone(),
                d.datasource_type.clone(),
                d.app_name.clone().or(d.app_id.clone()).unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["ID", "NAME", "TYPE", "APP"], &rows);
    Ok(EXIT_SUCCESS)
}

async fn ds_create(client: &Client, out: Output, b: &BodyArgs) -> Outcome {
    let body = read_body(b)?;
    let ds = client.create_datasource(&body).await?;
    match out {
        Output::Json => print_json(&ds),
        Output::Text => println!(
            "created datasource {} ({}, {})",
            ds.datasource_id, ds.datasource_name, ds.datasource_type
        ),
    }
    Ok(EXIT_SUCCESS)
}

async fn ds_test(client: &Client, out: Output, id: &str) -> Outcome {
    let r = client.test_connect(id).await?;
    match out {
        Output::Json => print_json(&r),
        Output::Text if r.result => println!("datasource {id}: connection OK"),
        Output::Text => println!("datasource {id}: connection failed"),
    }
    Ok(if r.result {
        EXIT_SUCCESS
    } else {
        EXIT_USAGE_OR_API
    })
}

// ---- tasks --------------------------------------------------------------------------------------

async fn task_ls(client: &Client, out: Output, l: ListArgs) -> Outcome {
    let list = client.list_tasks(page(l)).await?;
    if out == Output::Json {
        print_json(&list);
        return Ok(EXIT_SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .entities
        .iter()
        .map(|t| {
            vec![
                t.task_id.clone(),
                t.task_name.clone(),
                t.task_type.clone().unwrap_or_default(),
                if t.status == Some(1) {
                    "started"
                } else {
                    "stopped"
                }
                .to_string(),
                t.execute_status.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(&["ID", "NAME", "TYPE", "STATE", "LAST RUN"], &rows);
    Ok(EXIT_SUCCESS)
}

async fn task_create(client: &Client, out: Output, b: &BodyArgs) -> Outcome {
    let body = read_body(b)?;
    let task = client.create_task(&body).await?;
    match out {
        Output::Json => print_json(&task),
        Output::Text => println!(
            "created task {} ({})",
            task.task.task_id, task.task.task_name
        ),
    }
    Ok(EXIT_SUCCESS)
}

async fn task_show(client: &Client, out: Output, task: &str) -> Outcome {
    let id = resolve_task(client, task).await?;
    let t = client.get_task(&id).await?;
    if out == Output::Json {
        print_json(&t);
        return Ok(EXIT_SUCCESS);
    }
    let b = &t.task;
    let field = |v: &Option<String>| v.clone().unwrap_or_default();
    println!("task      {} ({})", b.task_id, b.task_name);
    println!("type      {}", field(&b.task_type));
    println!("state     {}", field(&b.status));
    println!("last run  {}", field(&b.execute_status));
    println!("source    {}", field(&b.source_datasource_id));
    println!("target    {}", field(&b.target_datasource_id));
    // task_detail is a JSON string: show it as JSON.
    let detail = match &t.task_detail {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
        other => other.clone(),
    };
    println!("detail");
    print_json(&detail);
    Ok(EXIT_SUCCESS)
}

async fn task_run(client: &Client, out: Output, task: &str, follow: bool) -> Outcome {
    let id = resolve_task(client, task).await?;
    let started = client.run_task(&id).await?;
    if !follow {
        match out {
            Output::Json => print_json(&started),
            Output::Text => println!("run started: tracking id {}", started.tracking_id),
        }
        return Ok(EXIT_SUCCESS);
    }
    if out == Output::Text {
        println!("run started: tracking id {}", started.tracking_id);
    }
    follow_run(client, out, &id, &started.tracking_id).await
}

/// Follow a run to its end, showing it; the exit code is its outcome.
async fn follow_run(client: &Client, out: Output, task_id: &str, tracking_id: &str) -> Outcome {
    let mut display = RunDisplay::new(out);
    let mut follower = client.follow_run(task_id, tracking_id);
    let end = follower
        .wait_end(|event| {
            if let RunEvent::Progress(entry) = event {
                display.update(entry);
            }
        })
        .await;
    display.finish();
    let end = end?;
    match out {
        Output::Json => print_json(&end),
        Output::Text => print_run_end(&end),
    }
    Ok(exit_code_of(&end.execute_status))
}

/// `SUCCESS 10,000 rows in 1.2s`, with the remarks of a failed run.
fn print_run_end(end: &RunEntry) {
    let mut line = progress_line(&RunEntry {
        progress: None,
        total_count: None,
        rows_per_second: None,
        remaining_time: None,
        current_step: None,
        ..end.clone()
    });
    if let Some(ms) = end.rest.get("spend_time").and_then(Value::as_u64) {
        line.push_str(&format!(" in {}", duration_ms(ms)));
    }
    if let Some(dirty) = end.dirty_data_count.filter(|d| *d > 0) {
        line.push_str(&format!(", {} dirty", thousands(dirty)));
    }
    println!("{line}");
    if let Some(r) = end.remarks.as_deref().filter(|r| !r.is_empty()) {
        println!("  {r}");
    }
}

async fn task_terminate(client: &Client, out: Output, task: &str) -> Outcome {
    let id = resolve_task(client, task).await?;
    let answer = client.terminate_task(&id).await?;
    match out {
        Output::Json => print_json(&answer),
        Output::Text => println!("task {id}: terminated"),
    }
    Ok(EXIT_SUCCESS)
}

async fn batch(client: &Client, out: Output, action: BatchAction, tasks: &[String]) -> Outcome {
    let mut ids = Vec::with_capacity(tasks.len());
    for t in tasks {
        ids.push(resolve_task(client, t).await?);
    }
    let result = client.batch(action, &ids).await?;
    match out {
        Output::Json => print_json(&result),
        Output::Text => print_batch(action, &result),
    }
    Ok(if result.failure_count == 0 {
        EXIT_SUCCESS
    } else {
        EXIT_USAGE_OR_API
    })
}

fn print_batch(action: BatchAction, r: &BatchResult) {
    for ok in &r.success {
        println!("{}: {} {}", action.as_str(), ok.task_id, ok.task_name);
    }
    for failed in &r.failure {
        eprintln!(
            "fdi: {} {}: {} {}",
            action.as_str(),
            failed.task_id,
            failed.error_code.as_deref().unwrap_or(""),
            failed.error_msg.as_deref().unwrap_or("")
        );
    }
}

// ---- runs ---------------------------------------------------------------------------------------

async fn run_logs(client: &Client, out: Output, task: &str, follow: bool, limit: u64) -> Outcome {
    let id = resolve_task(client, task).await?;
    let runs = client
        .list_runs(
            &id,
            PageQuery {
                offset: None,
                limit: Some(if follow { 1 } else { limit }),
            },
        )
        .await?;
    if follow {
        let Some(newest) = runs.entities.first() else {
            return Err(CliError::Usage(format!("task {id} has no run to follow")));
        };
        return follow_run(client, out, &id, &newest.id).await;
    }
    if out == Output::Json {
        print_json(&runs);
        return Ok(EXIT_SUCCESS);
    }
    let rows: Vec<Vec<String>> = runs.entities.iter().map(run_row).collect();
    print_table(
        &[
            "TRACKING ID",
            "STATUS",
            "STARTED (UTC)",
            "ROWS",
            "DIRTY",
            "TIME",
        ],
        &rows,
    );
    Ok(EXIT_SUCCESS)
}

fn run_row(r: &RunEntry) -> Vec<String> {
    let start = r.rest.get("start_time").and_then(Value::as_i64);
    let spend = r.rest.get("spend_time").and_then(Value::as_u64);
    vec![
        r.id.clone(),
        r.execute_status.clone(),
        start.map(utc_time).unwrap_or_default(),
        thousands(r.rows()),
        thousands(r.dirty_data_count.unwrap_or(0)),
        spend.map(duration_ms).unwrap_or_default(),
    ]
}
