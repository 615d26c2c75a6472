//! Dirty rows: rows whose values do not convert to the target's types. A run either fails at the
//! first one (no error handler: the row's key and the reason in remarks), or appends each to a
//! JSON-lines file of its own and goes on until a limit is passed.
//!
//! Each line of the file is one row:
//! `{"task_id":…,"run_id":…,"row":N,"reason":"column qty: \"ten\" does not convert to Int32","data":{…the source row…}}`
//! where `row` counts the rows the run read (from 1) and `data` holds the row as the source gave
//! it. The file is synced before each commit of the target, so a row acknowledged to a message
//! source is never lost from it.

use std::path::PathBuf;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::util::display::array_value_to_string;
use fdi_connector::RejectedRecord;
use tokio::io::AsyncWriteExt;

/// What a run does with dirty rows (from the task's `error_handler`).
#[derive(Debug, Clone, Default)]
pub struct DirtyDataPolicy {
    /// Where the run's file goes: the run writes `<dir>/<run id>.jsonl`. None: the first dirty
    /// row fails the run.
    pub dir: Option<DirtyDataDir>,
    /// The run fails once it has more dirty rows than this.
    pub max_rows: u64,
    /// The run fails when dirty rows are more than this share of the rows read (checked at each
    /// commit and at the end).
    pub max_ratio: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct DirtyDataDir {
    pub path: PathBuf,
    /// How remarks name it (the task's `error_handler.path` and the task id, under the files
    /// root).
    pub shown: String,
}

/// A run's dirty rows as it goes.
pub(crate) struct DirtyLog {
    policy: DirtyDataPolicy,
    task_id: String,
    run_id: String,
    /// Key columns (name, index in the source batch) that name a row in remarks.
    key_columns: Vec<(String, usize)>,
    file: Option<tokio::fs::File>,
    /// Dirty rows seen so far (the run's `dirty_data_count`).
    pub(crate) count: u64,
}

impl DirtyLog {
    pub(crate) fn new(
        policy: DirtyDataPolicy,
        task_id: &str,
        run_id: &str,
        key_columns: Vec<(String, usize)>,
    ) -> Self {
        Self {
            policy,
            task_id: task_id.to_string(),
            run_id: run_id.to_string(),
            key_columns,
            file: None,
            count: 0,
        }
    }

    /// Where the file is (as remarks name it), once a row went there.
    pub(crate) fn shown_file(&self) -> Option<String> {
        self.policy
            .dir
            .as_ref()
            .filter(|_| self.count > 0)
            .map(|d| format!("{}/{}.jsonl", d.shown, self.run_id))
    }

    /// Record the dirty rows of one source batch; `first_row` is the run's count of rows read
    /// before this batch. Err ends the run with the reason.
    pub(crate) async fn record(
        &mut self,
        source: &RecordBatch,
        first_row: u64,
        dirty: &[(usize, String)],
    ) -> Result<(), String> {
        if dirty.is_empty() {
            return Ok(());
        }
        let Some(dir) = self.policy.dir.clone() else {
            self.count += dirty.len() as u64;
            let (row, why) = &dirty[0];
            return Err(format!(
                "dirty row {} ({}): {why}. Set task_detail.error_handler to keep dirty rows in a file and go on",
                first_row + *row as u64 + 1,
                self.row_key(source, *row),
            ));
        };
        let mut lines = Vec::with_capacity(dirty.len() * 128);
        let rows = rows_as_json(source, dirty.iter().map(|(r, _)| *r))?;
        for ((row, why), data) in dirty.iter().zip(rows) {
            let line = serde_json::json!({
                "task_id": self.task_id,
                "run_id": self.run_id,
                "row": first_row + *row as u64 + 1,
                "reason": why,
                "data": data,
            });
            serde_json::to_writer(&mut lines, &line).map_err(|e| e.to_string())?;
            lines.push(b'\n');
        }
        self.append(&dir, &lines, dirty.len() as u64).await
    }

    /// Record records the source read but could not turn into rows; `first_row` is the run's
    /// count of records read before their batch.
    pub(crate) async fn record_rejected(
        &mut self,
        first_row: u64,
        rejected: &[RejectedRecord],
    ) -> Result<(), String> {
        let Some(dir) = self.policy.dir.clone() else {
            self.count += rejected.len() as u64;
            let r = &rejected[0];
            return Err(format!(
                "dirty record {} ({}): {}. Set task_detail.error_handler to keep dirty rows in a file and go on",
                first_row + r.index as u64 + 1,
                r.origin,
                r.reason
            ));
        };
        let mut lines = Vec::with_capacity(rejected.len() * 128);
        for r in rejected {
            let line = serde_json::json!({
                "task_id": self.task_id,
                "run_id": self.run_id,
                "row": first_row + r.index as u64 + 1,
                "reason": r.reason,
                "source": r.origin,
                "data": r.data,
            });
            serde_json::to_writer(&mut lines, &line).map_err(|e| e.to_string())?;
            lines.push(b'\n');
        }
        self.append(&dir, &lines, rejected.len() as u64).await
    }

    /// Append lines for `rows` dirty rows to the run's file, then check the count limit.
    async fn append(&mut self, dir: &DirtyDataDir, lines: &[u8], rows: u64) -> Result<(), String> {
        if self.file.is_none() {
            tokio::fs::create_dir_all(&dir.path)
                .await
                .map_err(|e| format!("dirty data directory {}: {e}", dir.shown))?;
            let path = dir.path.join(format!("{}.jsonl", self.run_id));
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .await
                .map_err(|e| format!("dirty data file {}/{}.jsonl: {e}", dir.shown, self.run_id))?;
            self.file = Some(file);
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(lines)
                .await
                .map_err(|e| format!("writing dirty data to {}: {e}", dir.shown))?;
        }
        self.add(rows)
    }

    /// Count `rows` more dirty rows; Err once they pass the limit.
    fn add(&mut self, rows: u64) -> Result<(), String> {
        self.count += rows;
        if self.count <= self.policy.max_rows {
            return Ok(());
        }
        let kept = match self.shown_file() {
            Some(f) => format!("; they are in {f}"),
            None => String::new(),
        };
        Err(format!(
            "{} dirty rows passed the limit of {} (task_detail.error_handler.max_dirty_rows){kept}",
            self.count, self.policy.max_rows
        ))
    }

    /// Count rows the target refused (reported by the writer without their values).
    pub(crate) fn count_rejected(&mut self, rows: u64) -> Result<(), String> {
        if rows == 0 {
            return Ok(());
        }
        if self.policy.dir.is_none() {
            self.count += rows;
            return Err(format!(
                "the target refused {rows} rows. Set task_detail.error_handler to go on past dirty rows"
            ));
        }
        self.add(rows)
    }

    /// Fail when dirty rows are more than the allowed share of the rows read.
    pub(crate) fn check_ratio(&self, rows_read: u64) -> Result<(), String> {
        match self.policy.max_ratio {
            Some(max) if rows_read > 0 && self.count as f64 / rows_read as f64 > max => {
                Err(format!(
                    "{} dirty rows of {rows_read} read passed the limit of a {max} share (task_detail.error_handler.max_dirty_ratio); they are in {}",
                    self.count,
                    self.shown_file().unwrap_or_default()
                ))
            }
            _ => Ok(()),
        }
    }

    /// Make the file durable (before the target commits what the rows were dropped from).
    pub(crate) async fn sync(&mut self) -> Result<(), String> {
        if let Some(f) = self.file.as_mut() {
            f.flush()
                .await
                .map_err(|e| format!("dirty data file: {e}"))?;
            f.sync_data()
                .await
                .map_err(|e| format!("dirty data file: {e}"))?;
        }
        Ok(())
    }

    /// `id=7` (the key columns), or the whole row when there is no key.
    fn row_key(&self, source: &RecordBatch, row: usize) -> String {
        let show =
            |i: usize| array_value_to_string(source.column(i).as_ref(), row).unwrap_or_default();
        if self.key_columns.is_empty() {
            let all: Vec<String> = source
                .schema()
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| format!("{}={}", f.name(), show(i)))
                .collect();
            let mut s = all.join(", ");
            if s.len() > 300 {
                s.truncate(s.floor_char_boundary(300));
                s.push('…');
            }
            s
        } else {
            self.key_columns
                .iter()
                .map(|(name, i)| format!("{name}={}", show(*i)))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// The given rows of a batch as JSON objects (NULLs kept as null).
fn rows_as_json(
    batch: &RecordBatch,
    rows: impl Iterator<Item = usize>,
) -> Result<Vec<serde_json::Value>, String> {
    let indices = UInt32Array::from_iter_values(rows.map(|r| r as u32));
    let picked = take_record_batch(batch, &indices).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(&mut buf);
    let written = writer.write(&picked).and_then(|_| writer.finish());
    drop(writer);
    match written {
        Ok(()) => buf
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).map_err(|e| e.to_string()))
            .collect(),
        // A type the JSON writer cannot print: every value as text.
        Err(_) => Ok((0..picked.num_rows())
            .map(|r| {
                let mut o = serde_json::Map::new();
                for (i, f) in picked.schema().fields().iter().enumerate() {
                    let c = picked.column(i);
                    let v = if c.is_null(r) {
                        serde_json::Value::Null
                    } else {
                        array_value_to_string(c.as_ref(), r)
                            .unwrap_or_default()
                            .into()
                    };
                    o.insert(f.name().clone(), v);
                }
                serde_json::Value::Object(o)
            })
            .collect()),
    }
}
