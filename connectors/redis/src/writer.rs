//! Writers: one hash per row under a key template (`user:*`), or one entry per row of a stream;
//! each batch in one `MULTI`/`EXEC`.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use fdi_connector::{ConnectorError, Result, SinkWriter, WriteMode, WriteSpec, WriteStats};
use redis::aio::MultiplexedConnection;

use crate::keys::{self, scan};
use crate::{RedisConfig, Table, connect, map_error};

/// Keys per `UNLINK` when clearing a pattern.
const UNLINK_CHUNK: usize = 1000;

enum Target {
    /// Hashes at `prefix` + key value + `suffix`; `pattern` is the template as a glob.
    Hashes {
        pattern: String,
        prefix: String,
        suffix: String,
    },
    Stream(String),
}

pub struct RedisWriter {
    config: RedisConfig,
    target: Target,
    spec: WriteSpec,
    conn: Option<MultiplexedConnection>,
    /// `clear_table` applies to the first transaction only.
    cleared: bool,
}

impl RedisWriter {
    pub fn new(config: RedisConfig, spec: WriteSpec) -> Result<Self> {
        let target = match Table::of(&spec.table) {
            Table::Stream(s) => Target::Stream(s),
            Table::Pattern(p) => {
                let stars = p.matches('*').count();
                if stars != 1 || p.contains(['?', '[']) {
                    return Err(ConnectorError::user(format!(
                        "\"{p}\": a target key pattern is a key template with exactly one * (replaced by the key column's value) and no ? or ["
                    )));
                }
                let (prefix, suffix) = p.split_once('*').expect("one *");
                Target::Hashes {
                    prefix: prefix.to_string(),
                    suffix: suffix.to_string(),
                    pattern: p.clone(),
                }
            }
        };
        Ok(Self {
            config,
            target,
            spec,
            conn: None,
            cleared: false,
        })
    }

    fn conn(&mut self) -> Result<&mut MultiplexedConnection> {
        self.conn
            .as_mut()
            .ok_or_else(|| ConnectorError::internal("write before begin"))
    }

    /// The column whose value makes each row's key: the first written column marked primary,
    /// else the first column.
    fn key_column(&self, batch: &RecordBatch) -> usize {
        self.spec
            .columns
            .iter()
            .find(|c| c.primary)
            .and_then(|c| batch.schema().index_of(&c.name).ok())
            .unwrap_or(0)
    }

    async fn clear(&mut self) -> Result<()> {
        match &self.target {
            Target::Hashes { pattern, .. } => {
                let pattern = pattern.clone();
                let conn = self.conn()?;
                let mut cursor = 0u64;
                loop {
                    let (next, found) = scan(conn, cursor, Some(&pattern)).await?;
                    for chunk in found.chunks(UNLINK_CHUNK) {
                        redis::cmd("UNLINK")
                            .arg(chunk)
                            .query_async::<()>(conn)
                            .await
                            .map_err(|e| map_error("UNLINK", e))?;
                    }
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
            }
            Target::Stream(key) => {
                let key = key.clone();
                redis::cmd("XTRIM")
                    .arg(&key)
                    .arg("MAXLEN")
                    .arg(0)
                    .query_async::<()>(self.conn()?)
                    .await
                    .map_err(|e| map_error("XTRIM", e))?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SinkWriter for RedisWriter {
    async fn begin(&mut self) -> Result<()> {
        if self.conn.is_none() {
            let mut c = connect(&self.config).await?;
            if let Target::Stream(key) = &self.target {
                // Fail early, naming the key, rather than on every XADD.
                keys::stream_type(&mut c, key).await?;
            }
            self.conn = Some(c);
        }
        if self.spec.clear_table && !self.cleared {
            self.clear().await?;
        }
        self.cleared = true;
        Ok(())
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<WriteStats> {
        let values = crate::text::columns(&batch)
            .map_err(|e| ConnectorError::internal(format!("rows as text: {e}")))?;
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let key_col = self.key_column(&batch);
        let upsert = matches!(self.spec.mode, WriteMode::Upsert { .. });
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut stats = WriteStats::default();
        for row in 0..batch.num_rows() {
            let mut bytes = 0u64;
            let mut fields: Vec<(&str, &[u8])> = Vec::with_capacity(names.len());
            let mut nulls: Vec<&str> = Vec::new();
            for (name, column) in names.iter().zip(&values) {
                match column[row].as_deref() {
                    Some(v) => {
                        bytes += (name.len() + v.len()) as u64;
                        fields.push((name, v));
                    }
                    None => nulls.push(name),
                }
            }
            match &self.target {
                Target::Hashes { prefix, suffix, .. } => {
                    let Some(id) = values[key_col][row].as_deref() else {
                        // No key for the row.
                        stats.dirty_rows += 1;
                        continue;
                    };
                    let mut key = Vec::with_capacity(prefix.len() + id.len() + suffix.len());
                    key.extend_from_slice(prefix.as_bytes());
                    key.extend_from_slice(id);
                    key.extend_from_slice(suffix.as_bytes());
                    pipe.cmd("HSET").arg(&key).arg(&fields).ignore();
                    if upsert && !nulls.is_empty() {
                        pipe.cmd("HDEL").arg(&key).arg(&nulls).ignore();
                    }
                }
                Target::Stream(key) => {
                    if fields.is_empty() {
                        // An entry needs at least one field.
                        stats.dirty_rows += 1;
                        continue;
                    }
                    pipe.cmd("XADD").arg(key).arg("*").arg(&fields).ignore();
                }
            }
            stats.rows += 1;
            stats.bytes += bytes;
        }
        if stats.rows > 0 {
            let what = match &self.target {
                Target::Hashes { .. } => "HSET",
                Target::Stream(_) => "XADD",
            };
            pipe.query_async::<()>(self.conn()?)
                .await
                .map_err(|e| map_error(what, e))?;
        }
        Ok(stats)
    }

    /// Every batch is in Redis once its `write` returned (`EXEC` answered): nothing to flush.
    async fn commit(&mut self) -> Result<()> {
        if self.conn.is_none() {
            return Err(ConnectorError::internal("commit before begin"));
        }
        Ok(())
    }

    /// Redis has no transaction across batches: what was written stays written.
    async fn abort(&mut self) -> Result<()> {
        self.conn = None;
        Ok(())
    }
}
