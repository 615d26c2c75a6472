//! Readers: keys matching a pattern (`SCAN`, no positions), and a stream read in a consumer
//! group (pending entries first, then new ones), each batch tagged with its last entry id and
//! acknowledged (`XACK`) by the engine after the target commit. A stream read as a table is a
//! snapshot (`XRANGE`) without a group.

use fdi_connector::stream::cancellable;
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use fdi_connector::stream::send_batch;
use fdi_connector::{
    Acknowledger, BatchSender, ConnectorError, MessageField, Result, SourceBatch, SourcePosition,
    SourceReader,
};
use fdi_message_core::{Message, MessageDecoder};
use redis::Value;
use redis::aio::MultiplexedConnection;
use serde_json::{Map, Value as Json};
use tokio_util::sync::CancellationToken;

use crate::keys::{self, Entry, entry_id};
use crate::{RedisConfig, connect, map_error};

/// How long a following read waits for new entries per call (cancel is seen between calls).
const BLOCK_MS: usize = 200;
/// The consumer name every reader of a group uses: a new run of the task (same group) reads
/// the entries an earlier run left pending.
const CONSUMER: &str = "fdi";
/// Entry ids per `XACK`.
const ACK_CHUNK: usize = 10_000;

fn payload(object: &Map<String, Json>) -> Vec<u8> {
    serde_json::to_vec(object).unwrap_or_default()
}

/// Reads the keys matching a pattern, one row object per key.
pub struct KeyReader {
    conn: MultiplexedConnection,
    pattern: String,
    decoder: MessageDecoder,
    batch_rows: usize,
}

impl KeyReader {
    pub async fn open(
        config: &RedisConfig,
        pattern: &str,
        fields: Vec<MessageField>,
        batch_rows: usize,
    ) -> Result<Self> {
        Ok(Self {
            conn: connect(config).await?,
            pattern: pattern.to_string(),
            decoder: MessageDecoder::new(fields),
            batch_rows: batch_rows.max(1),
        })
    }

    /// The batch of `pending` messages; a key whose value does not convert travels with it as a
    /// rejected record (a dirty row of the run).
    fn batch(&self, pending: &[Message], keys: &[String]) -> Result<SourceBatch> {
        self.decoder
            .batch(pending, |i| format!("key \"{}\"", keys[i]), None)
    }
}

#[async_trait]
impl SourceReader for KeyReader {
    fn schema(&self) -> SchemaRef {
        self.decoder.schema()
    }

    async fn read(&mut self, out: BatchSender, cancel: CancellationToken) -> Result<u64> {
        // SCAN may return a key twice: remember a 64-bit hash of each key sent (8 bytes a key).
        let hasher = RandomState::new();
        let mut seen: HashSet<u64> = HashSet::new();
        let mut pending: Vec<Message> = Vec::with_capacity(self.batch_rows);
        let mut names: Vec<String> = Vec::with_capacity(self.batch_rows);
        let mut read = 0u64;
        let mut cursor = 0u64;
        loop {
            let conn = &mut self.conn;
            let (next, page) =
                cancellable(&cancel, keys::scan(conn, cursor, Some(&self.pattern))).await?;
            let page: Vec<Vec<u8>> = page
                .into_iter()
                .filter(|k| seen.insert(hasher.hash_one(k)))
                .collect();
            let rows = cancellable(&cancel, keys::fetch(&mut self.conn, &page)).await?;
            for row in rows {
                pending.push(Message {
                    payload: payload(&row.object),
                    properties: vec![
                        ("key", Json::String(row.key.clone())),
                        ("type", Json::from(row.kind)),
                    ],
                });
                names.push(row.key);
                if pending.len() >= self.batch_rows {
                    let batch = self.batch(&pending, &names)?;
                    read += batch.rows.num_rows() as u64;
                    pending.clear();
                    names.clear();
                    send_batch(&out, batch, &cancel).await?;
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        if !pending.is_empty() {
            let batch = self.batch(&pending, &names)?;
            read += batch.rows.num_rows() as u64;
            send_batch(&out, batch, &cancel).await?;
        }
        Ok(read)
    }
}

/// Reads a stream: in a consumer group (with positions and acks), or as a snapshot.
pub struct StreamReader {
    conn: MultiplexedConnection,
    key: String,
    decoder: MessageDecoder,
    follow: bool,
    batch_rows: usize,
    /// The consumer group; None for a snapshot read.
    group: Option<String>,
    /// The stream's last entry id when the read started (where a timing run stops).
    end: Option<(u64, u64)>,
    /// Ids delivered to the engine and not acknowledged yet, in delivery order.
    delivered: Arc<Mutex<VecDeque<String>>>,
}

impl StreamReader {
    /// `reader_name` None: a snapshot of the stream (no group, no positions); the stream must
    /// exist. Otherwise the group `fdi-<reader_name>` is created (with the stream) if missing.
    pub async fn open(
        config: &RedisConfig,
        key: &str,
        fields: Vec<MessageField>,
        follow: bool,
        reader_name: Option<&str>,
        batch_rows: usize,
    ) -> Result<Self> {
        let mut conn = connect(config).await?;
        let exists = keys::stream_type(&mut conn, key).await?;
        let group = match reader_name {
            None if !exists => {
                return Err(ConnectorError::user(format!(
                    "stream \"{key}\" does not exist"
                )));
            }
            None => None,
            Some(name) => {
                let group = format!("fdi-{name}");
                let created: redis::RedisResult<()> = redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(key)
                    .arg(&group)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async(&mut conn)
                    .await;
                match created {
                    Ok(()) => {}
                    Err(e) if e.code() == Some("BUSYGROUP") => {}
                    Err(e) => return Err(map_error("XGROUP CREATE", e)),
                }
                Some(group)
            }
        };
        let last: Value = redis::cmd("XREVRANGE")
            .arg(key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(|e| map_error("XREVRANGE", e))?;
        let end = keys::entries(&last)?.first().and_then(|e| entry_id(&e.id));
        Ok(Self {
            conn,
            key: key.to_string(),
            decoder: MessageDecoder::new(fields),
            follow,
            batch_rows: batch_rows.max(1),
            group,
            end,
            delivered: Arc::new(Mutex::new(VecDeque::new())),
        })
    }

    fn message(&self, e: &Entry) -> Message {
        let mut properties: Vec<(&'static str, Json)> = vec![
            ("id", Json::String(e.id.clone())),
            ("stream", Json::String(self.key.clone())),
        ];
        if let Some((ms, _)) = entry_id(&e.id) {
            properties.push(("timestamp", Json::from(ms)));
        }
        Message {
            payload: payload(&e.object()),
            properties,
        }
    }

    /// The rows of `entries` (all with fields), tagged with the last id when read in a group.
    fn batch(&self, entries: &[Entry]) -> Result<SourceBatch> {
        let messages: Vec<Message> = entries.iter().map(|e| self.message(e)).collect();
        let position = match (&self.group, entries.last()) {
            (Some(_), Some(last)) => Some(SourcePosition(Json::String(last.id.clone()))),
            _ => None,
        };
        self.decoder.batch(
            &messages,
            |i| format!("stream \"{}\", entry {}", self.key, entries[i].id),
            position,
        )
    }

    /// One `XREADGROUP` from `id` (`0`-based for pending entries, `>` for new ones).
    async fn read_group(&mut self, group: &str, id: &str, block: bool) -> Result<Vec<Entry>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(CONSUMER)
            .arg("COUNT")
            .arg(self.batch_rows);
        if block {
            cmd.arg("BLOCK").arg(BLOCK_MS);
        }
        cmd.arg("STREAMS").arg(&self.key).arg(id);
        let v: Value = cmd
            .query_async(&mut self.conn)
            .await
            .map_err(|e| map_error("XREADGROUP", e))?;
        keys::read_reply(&v)
    }

    /// Entries deleted from the stream after they were delivered come back without fields:
    /// nothing to write, acknowledged at once so they leave the pending list.
    async fn ack_deleted(&mut self, group: &str, entries: &mut Vec<Entry>) -> Result<()> {
        let gone: Vec<String> = entries
            .iter()
            .filter(|e| e.fields.is_none())
            .map(|e| e.id.clone())
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        entries.retain(|e| e.fields.is_some());
        redis::cmd("XACK")
            .arg(&self.key)
            .arg(group)
            .arg(&gone)
            .query_async::<()>(&mut self.conn)
            .await
            .map_err(|e| map_error("XACK", e))
    }

    /// Hand a batch to the engine, its ids recorded as delivered first (the engine may
    /// acknowledge as soon as it has it).
    async fn emit(
        &mut self,
        entries: &[Entry],
        out: &BatchSender,
        cancel: &CancellationToken,
    ) -> Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        let batch = self.batch(entries)?;
        let n = batch.rows.num_rows() as u64;
        if self.group.is_some() {
            self.delivered
                .lock()
                .expect("delivered ids")
                .extend(entries.iter().map(|e| e.id.clone()));
        }
        send_batch(out, batch, cancel).await?;
        Ok(n)
    }

    async fn read_snapshot(
        &mut self,
        out: &BatchSender,
        cancel: &CancellationToken,
    ) -> Result<u64> {
        let mut read = 0u64;
        let mut start = "-".to_string();
        loop {
            let v: Value = cancellable(cancel, async {
                redis::cmd("XRANGE")
                    .arg(&self.key)
                    .arg(&start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(self.batch_rows)
                    .query_async(&mut self.conn)
                    .await
                    .map_err(|e| map_error("XRANGE", e))
            })
            .await?;
            let entries = keys::entries(&v)?;
            let Some(last) = entries.last() else { break };
            start = format!("({}", last.id);
            let full = entries.len() >= self.batch_rows;
            read += self.emit(&entries, out, cancel).await?;
            if !full {
                break;
            }
        }
        Ok(read)
    }
}

#[async_trait]
impl SourceReader for StreamReader {
    fn schema(&self) -> SchemaRef {
        self.decoder.schema()
    }

    async fn read(&mut self, out: BatchSender, cancel: CancellationToken) -> Result<u64> {
        let Some(group) = self.group.clone() else {
            return self.read_snapshot(&out, &cancel).await;
        };
        let mut read = 0u64;
        // What was delivered to this consumer and never acknowledged (a crash, a failed run).
        let mut after = "0".to_string();
        loop {
            let mut entries = cancellable(&cancel, self.read_group(&group, &after, false)).await?;
            let Some(last) = entries.last() else { break };
            after = last.id.clone();
            cancellable(&cancel, self.ack_deleted(&group, &mut entries)).await?;
            read += self.emit(&entries, &out, &cancel).await?;
        }
        // New entries: a timing run up to the stream's last entry at the start (an empty
        // stream: none), a realtime run until cancelled.
        if !self.follow && self.end.is_none() {
            return Ok(read);
        }
        loop {
            let entries = cancellable(&cancel, self.read_group(&group, ">", self.follow)).await?;
            if entries.is_empty() {
                if self.follow {
                    continue;
                }
                break;
            }
            let reached_end = self.end.is_some_and(|end| {
                entries
                    .last()
                    .and_then(|e| entry_id(&e.id))
                    .is_some_and(|id| id >= end)
            });
            read += self.emit(&entries, &out, &cancel).await?;
            if !self.follow && reached_end {
                break;
            }
        }
        Ok(read)
    }

    fn acknowledger(&self) -> Option<Arc<dyn Acknowledger>> {
        let group = self.group.clone()?;
        Some(Arc::new(StreamAck {
            conn: self.conn.clone(),
            key: self.key.clone(),
            group,
            delivered: self.delivered.clone(),
        }))
    }
}

/// Acknowledges every entry delivered up to an id (`XACK` of their ids).
struct StreamAck {
    conn: MultiplexedConnection,
    key: String,
    group: String,
    delivered: Arc<Mutex<VecDeque<String>>>,
}

impl StreamAck {
    /// The delivered ids up to and including `up_to`, taken off the list.
    fn take_up_to(&self, up_to: &str) -> Vec<String> {
        let mut d = self.delivered.lock().expect("delivered ids");
        let n = match d.iter().position(|id| id == up_to) {
            Some(i) => i + 1,
            // Not in the list (acknowledged already): whatever comes before it by id.
            None => {
                let limit = entry_id(up_to);
                d.iter()
                    .take_while(|id| limit.is_some() && entry_id(id) <= limit)
                    .count()
            }
        };
        d.drain(..n).collect()
    }
}

#[async_trait]
impl Acknowledger for StreamAck {
    async fn ack(&self, up_to: &SourcePosition) -> Result<()> {
        let up_to = up_to.0.as_str().ok_or_else(|| {
            ConnectorError::internal(format!("not a stream entry id: {}", up_to.0))
        })?;
        let ids = self.take_up_to(up_to);
        let mut conn = self.conn.clone();
        for chunk in ids.chunks(ACK_CHUNK) {
            redis::cmd("XACK")
                .arg(&self.key)
                .arg(&self.group)
                .arg(chunk)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| map_error("XACK", e))?;
        }
        Ok(())
    }
}
