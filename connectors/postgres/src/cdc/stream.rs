//! One reader of a task's change log: connect, (re)create the slot and copy the tables under its
//! snapshot, then decode pgoutput into transactions and heartbeats.

use fdi_connector::stream::cancellable;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fdi_connector::change::{
    ChangeColumn, ChangeEvent, ChangeOp, ChangeSource, ChangeTable, ChangeTransaction, ChangeValue,
    RowChange, SnapshotBatcher, TableId,
};
use fdi_connector::{Acknowledger, ConnectorError, Result};
use fdi_sql_core::{Dialect, map_sqlx_error};
use futures::StreamExt;
use pg_walstream::{
    LogicalReplicationMessage, LogicalReplicationParser, ReplicationError, ReplicationSlotOptions,
    SlotType, TupleData,
};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgPool, Row};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::catalog::{self, TableShape, TypeNames};
use super::conn::{ReplConn, ReplicationTarget, map_replication_error};
use super::values::ValueKind;
use super::{AckShared, PgAcknowledger, Phase, lsn_position};

/// Session settings that make both sessions' text output follow the change log's conventions.
const SESSION_SETTINGS: &str = "SELECT set_config('TimeZone', 'UTC', false), \
     set_config('DateStyle', 'ISO, YMD', false), set_config('IntervalStyle', 'postgres', false), \
     set_config('bytea_output', 'hex', false), set_config('extra_float_digits', '1', false)";

/// At most one heartbeat this often.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A status update at least this often while streaming, and while waiting for the pipeline to
/// take an event (the server ends a walsender silent for `wal_sender_timeout`, 60 s by default).
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Milliseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_MS: i64 = 946_684_800_000;

pub struct PgChangeSource {
    pool: PgPool,
    target: ReplicationTarget,
    /// Slot and publication.
    name: String,
    tables: Vec<TableId>,
    resume: Option<u64>,
    batch_rows: usize,
    ack: Arc<AckShared>,
    ran: bool,
}

impl PgChangeSource {
    pub(super) fn new(
        pool: PgPool,
        target: ReplicationTarget,
        name: String,
        tables: Vec<TableId>,
        resume: Option<u64>,
        batch_rows: usize,
        ack: Arc<AckShared>,
    ) -> Self {
        Self {
            pool,
            target,
            name,
            tables,
            resume,
            batch_rows,
            ack,
            ran: false,
        }
    }

    async fn run_inner(
        &mut self,
        out: &mpsc::Sender<ChangeEvent>,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let mut conn = self.target.connect(cancel).await?;
        conn.exec(cancel, SESSION_SETTINGS.to_string()).await?;
        let mut decoder = Decoder::new(self.pool.clone(), &self.tables);
        let start = match self.resume {
            Some(lsn) => {
                // A reader stopped just before may still hold the slot for a moment.
                cancellable(cancel, catalog::wait_inactive(&self.pool, &self.name)).await?;
                lsn
            }
            None => {
                cancellable(cancel, catalog::drop_slot(&self.pool, &self.name)).await?;
                let (slot, slot_again) = (self.name.clone(), self.name.clone());
                let (point, snapshot) = conn
                    .blocking(
                        cancel,
                        "create replication slot",
                        move |c| create_slot(c, &slot),
                        // Cancelled while waiting for the server: drop the slot it then made.
                        move |c, _| {
                            let _ = c.drop_replication_slot(&slot_again, false);
                        },
                    )
                    .await?;
                tracing::info!(slot = %self.name, consistent_point = %pg_walstream::format_lsn(point), "replication slot created");
                self.copy(&snapshot, out, cancel, &mut decoder).await?;
                deliver(
                    out,
                    ChangeEvent::SnapshotDone {
                        position: lsn_position(point),
                    },
                    cancel,
                )
                .await?;
                point
            }
        };
        // Never report less than the slot has confirmed already.
        let confirmed = catalog::slot_state(&self.pool, &self.name)
            .await?
            .and_then(|s| s.confirmed_flush)
            .and_then(|l| pg_walstream::parse_lsn(&l).ok())
            .unwrap_or(0);
        {
            let mut s = self.ack.lock();
            s.sent = s.sent.max(confirmed);
        }
        let (slot, publication) = (self.name.clone(), self.name.clone());
        conn.blocking(
            cancel,
            "start replication",
            move |c| {
                c.start_replication(
                    &slot,
                    start,
                    &[
                        ("proto_version", "1"),
                        ("publication_names", publication.as_str()),
                    ],
                )
            },
            |_, _| {},
        )
        .await?;
        tracing::info!(slot = %self.name, from = %pg_walstream::format_lsn(start), "streaming changes");
        self.ack.lock().phase = Phase::Streaming;
        let mut streamer = Streamer {
            conn,
            out,
            cancel,
            ack: &self.ack,
            received: start,
            reported_write: 0,
            last_status: Instant::now(),
        };
        let r = streamer.stream(decoder, start).await;
        if r.is_err() {
            // Best effort: confirm what was acknowledged before closing.
            let _ = tokio::time::timeout(Duration::from_millis(500), streamer.report(false)).await;
        }
        streamer.conn.close().await;
        r
    }

    /// Read every table under the exported snapshot, on a connection of its own.
    async fn copy(
        &self,
        snapshot: &str,
        out: &mpsc::Sender<ChangeEvent>,
        cancel: &CancellationToken,
        decoder: &mut Decoder,
    ) -> Result<()> {
        let mut c = cancellable(cancel, async {
            self.pool
                .connect_options()
                .connect()
                .await
                .map_err(|e| map_sqlx_error("snapshot connection", e))
        })
        .await?;
        let setup = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}; {}",
            Dialect::Postgres.string_literal(snapshot),
            SESSION_SETTINGS
        );
        cancellable(cancel, async {
            sqlx::raw_sql(AssertSqlSafe(setup))
                .execute(&mut c)
                .await
                .map_err(|e| map_sqlx_error("snapshot transaction", e))
        })
        .await?;
        for t in &self.tables {
            let shape = cancellable(cancel, catalog::describe(&mut c, t)).await?;
            decoder.known.insert(t.clone(), shape.table.clone());
            let select = format!(
                "SELECT {} FROM {}",
                shape
                    .table
                    .columns
                    .iter()
                    .map(|col| format!("{}::text", Dialect::Postgres.quote_ident(&col.name)))
                    .collect::<Vec<_>>()
                    .join(", "),
                catalog::quote_table(t)
            );
            let mut rows = sqlx::query(AssertSqlSafe(select))
                .persistent(false)
                .fetch(&mut c);
            let mut batcher = SnapshotBatcher::new(self.batch_rows);
            let mut sent_any = false;
            loop {
                let row = tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(ConnectorError::cancelled()),
                    row = rows.next() => row,
                };
                let Some(row) = row else { break };
                let row = row.map_err(|e| map_sqlx_error(&format!("copy of {t}"), e))?;
                if let Some(rows) = batcher.push(snapshot_row(&shape, &row)?) {
                    deliver(
                        out,
                        ChangeEvent::SnapshotRows {
                            table: shape.table.clone(),
                            rows,
                        },
                        cancel,
                    )
                    .await?;
                    sent_any = true;
                }
            }
            let batch = batcher.take();
            if !batch.is_empty() || !sent_any {
                deliver(
                    out,
                    ChangeEvent::SnapshotRows {
                        table: shape.table.clone(),
                        rows: batch,
                    },
                    cancel,
                )
                .await?;
            }
        }
        cancellable(cancel, async {
            sqlx::raw_sql("COMMIT")
                .execute(&mut c)
                .await
                .map_err(|e| map_sqlx_error("snapshot transaction", e))
        })
        .await?;
        let _ = c.close().await;
        Ok(())
    }
}

/// Marks the stream closed when `run` ends, however it ends (acks then go over SQL).
struct CloseOnDrop(Arc<AckShared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[async_trait]
impl ChangeSource for PgChangeSource {
    async fn run(
        &mut self,
        out: mpsc::Sender<ChangeEvent>,
        cancel: CancellationToken,
    ) -> Result<()> {
        if self.ran {
            return Err(ConnectorError::internal(
                "a PostgreSQL change source runs once; open it again",
            ));
        }
        self.ran = true;
        let _closed = CloseOnDrop(self.ack.clone());
        match self.run_inner(&out, &cancel).await {
            Err(_) if cancel.is_cancelled() => Err(ConnectorError::cancelled()),
            r => r,
        }
    }

    fn acknowledger(&self) -> Arc<dyn Acknowledger> {
        Arc::new(PgAcknowledger(self.ack.clone()))
    }
}

/// `CREATE_REPLICATION_SLOT <slot> LOGICAL pgoutput (SNAPSHOT 'export')` -> consistent point and
/// snapshot name.
fn create_slot(
    c: &mut pg_walstream::PgReplicationConnection,
    slot: &str,
) -> std::result::Result<(u64, String), ReplicationError> {
    let r = c.create_replication_slot_with_options(
        slot,
        SlotType::Logical,
        Some("pgoutput"),
        &ReplicationSlotOptions {
            snapshot: Some("export".to_string()),
            ..Default::default()
        },
    )?;
    let point = r
        .get_value(0, 1)
        .ok_or_else(|| ReplicationError::replication_slot("no consistent point"))?;
    let snapshot = r
        .get_value(0, 2)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ReplicationError::replication_slot("no exported snapshot"))?;
    Ok((pg_walstream::parse_lsn(&point)?, snapshot))
}

fn snapshot_row(shape: &TableShape, row: &sqlx::postgres::PgRow) -> Result<Vec<ChangeValue>> {
    let mut values = Vec::with_capacity(shape.kinds.len());
    for (i, kind) in shape.kinds.iter().enumerate() {
        let v: Option<&str> = row
            .try_get(i)
            .map_err(|e| map_sqlx_error(&format!("copy of {}", shape.table.id), e))?;
        values.push(match v {
            None => ChangeValue::Null,
            Some(s) => kind.convert(s.as_bytes()),
        });
    }
    Ok(values)
}

/// Hand an event to the pipeline, waiting for room (the replication connection is idle here).
async fn deliver(
    out: &mpsc::Sender<ChangeEvent>,
    ev: ChangeEvent,
    cancel: &CancellationToken,
) -> Result<()> {
    let permit = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Err(ConnectorError::cancelled()),
        p = out.reserve() => p.map_err(|_| receiver_gone(cancel))?,
    };
    permit.send(ev);
    Ok(())
}

fn receiver_gone(cancel: &CancellationToken) -> ConnectorError {
    if cancel.is_cancelled() {
        ConnectorError::cancelled()
    } else {
        ConnectorError::internal("change event receiver closed")
    }
}

/// The streaming half of a run: the replication connection and what it told the server.
struct Streamer<'a> {
    conn: ReplConn,
    out: &'a mpsc::Sender<ChangeEvent>,
    cancel: &'a CancellationToken,
    ack: &'a Arc<AckShared>,
    /// The highest WAL position seen in the stream.
    received: u64,
    /// The write position of the last status update.
    reported_write: u64,
    last_status: Instant,
}

enum Step {
    Ack,
    Tick,
    Data(Result<bytes::Bytes>),
}

impl Streamer<'_> {
    /// Tell the server how far the stream was read and what was acknowledged. Sent when an ack
    /// moved (or `force`).
    async fn report(&mut self, force: bool) -> Result<()> {
        let (flush, moved) = {
            let s = self.ack.lock();
            (s.acked.max(s.sent), s.acked > s.sent)
        };
        if !(force || moved) {
            return Ok(());
        }
        let write = self.received.max(flush);
        // flush 0 (nothing acknowledged, slot position unknown): the server leaves the slot.
        self.conn.status_update(write, flush).await?;
        self.reported_write = write;
        self.last_status = Instant::now();
        let mut s = self.ack.lock();
        s.sent = s.sent.max(flush);
        Ok(())
    }

    /// Hand an event to the pipeline; while it has no room, keep the server's timeout away.
    async fn deliver(&mut self, ev: ChangeEvent) -> Result<()> {
        let out = self.out;
        loop {
            let step = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(ConnectorError::cancelled()),
                p = out.reserve() => Some(p.map_err(|_| receiver_gone(self.cancel))?),
                _ = tokio::time::sleep(STATUS_EVERY / 2) => None,
            };
            match step {
                Some(permit) => {
                    permit.send(ev);
                    return Ok(());
                }
                None => self.report(true).await?,
            }
        }
    }

    async fn stream(&mut self, mut decoder: Decoder, start: u64) -> Result<()> {
        let mut parser = LogicalReplicationParser::with_protocol_version(1);
        // The last position handed to the pipeline (copy, transaction or heartbeat).
        let mut emitted = start;
        let mut heartbeat: Option<u64> = None;
        let mut last_heartbeat = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Acks that came while connecting or copying.
        self.report(false).await?;
        let (ack, cancel) = (self.ack, self.cancel);
        loop {
            let step = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(ConnectorError::cancelled()),
                _ = ack.notify.notified() => Step::Ack,
                _ = tick.tick() => Step::Tick,
                d = self.conn.next_copy_data(cancel) => Step::Data(d),
            };
            match step {
                Step::Ack => self.report(false).await?,
                Step::Tick => {
                    let since = self.last_status.elapsed();
                    if since >= STATUS_EVERY
                        || (self.received > self.reported_write && since >= HEARTBEAT_EVERY)
                    {
                        // Also answers the server's ping after WAL moved, so it pings again
                        // (with a new position) next time.
                        self.report(true).await?;
                    }
                }
                Step::Data(d) => {
                    let d = d?;
                    match d.first() {
                        Some(b'w') if d.len() >= 25 => {
                            let wal_end = u64::from_be_bytes(d[9..17].try_into().unwrap_or([0; 8]));
                            self.received = self.received.max(wal_end);
                            let msg = parser
                                .parse_wal_message_bytes(d.slice(25..))
                                .map_err(|e| map_replication_error("pgoutput message", e))?
                                .message;
                            match decoder.handle(msg).await? {
                                Decoded::Nothing => {}
                                Decoded::Idle(lsn) => {
                                    if lsn > emitted {
                                        heartbeat = Some(lsn);
                                    }
                                }
                                Decoded::Transaction(t) => {
                                    let lsn = super::position_lsn(&t.position)?;
                                    self.deliver(ChangeEvent::Transaction(t)).await?;
                                    emitted = emitted.max(lsn);
                                    heartbeat = None;
                                }
                            }
                        }
                        Some(b'k') => {
                            let k = pg_walstream::parse_keepalive_message(&d)
                                .map_err(|e| map_replication_error("keepalive", e))?;
                            self.received = self.received.max(k.wal_end);
                            if !decoder.in_transaction() && k.wal_end > emitted {
                                heartbeat = Some(k.wal_end);
                            }
                            if k.reply_requested {
                                self.report(true).await?;
                            }
                        }
                        _ => {}
                    }
                }
            }
            if let Some(lsn) = heartbeat
                && last_heartbeat.elapsed() >= HEARTBEAT_EVERY
            {
                heartbeat = None;
                if lsn > emitted {
                    self.deliver(ChangeEvent::Heartbeat {
                        position: lsn_position(lsn),
                    })
                    .await?;
                    emitted = lsn;
                    last_heartbeat = Instant::now();
                }
            }
        }
    }
}

/// A relation of the stream that the task wants.
struct Rel {
    table: Arc<ChangeTable>,
    kinds: Vec<ValueKind>,
}

enum Decoded {
    Nothing,
    /// A commit without changes of the task's tables, ending at this position.
    Idle(u64),
    Transaction(ChangeTransaction),
}

/// pgoutput messages -> transactions of the task's tables.
struct Decoder {
    pool: PgPool,
    wanted: HashSet<TableId>,
    /// Tables as the copy described them: a relation equal to one shares its `Arc`.
    known: HashMap<TableId, Arc<ChangeTable>>,
    /// Relation OID -> the relation (None: not a table of the task).
    relations: HashMap<u32, Option<Rel>>,
    types: TypeNames,
    /// Changes of the open transaction.
    txn: Option<Vec<RowChange>>,
}

impl Decoder {
    fn new(pool: PgPool, tables: &[TableId]) -> Self {
        Self {
            pool,
            wanted: tables.iter().cloned().collect(),
            known: HashMap::new(),
            relations: HashMap::new(),
            types: TypeNames::default(),
            txn: None,
        }
    }

    fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    fn relation(&self, oid: u32) -> Result<Option<&Rel>> {
        match self.relations.get(&oid) {
            Some(r) => Ok(r.as_ref()),
            None => Err(ConnectorError::external(format!(
                "pgoutput sent a change of relation {oid} before describing it"
            ))),
        }
    }

    fn push(&mut self, change: RowChange) {
        self.txn.get_or_insert_with(Vec::new).push(change);
    }

    async fn handle(&mut self, msg: LogicalReplicationMessage) -> Result<Decoded> {
        match msg {
            LogicalReplicationMessage::Begin { .. } => {
                self.txn = Some(Vec::new());
            }
            LogicalReplicationMessage::Commit {
                end_lsn, timestamp, ..
            } => {
                let changes = self.txn.take().unwrap_or_default();
                if changes.is_empty() {
                    return Ok(Decoded::Idle(end_lsn));
                }
                return Ok(Decoded::Transaction(ChangeTransaction {
                    changes,
                    commit_ms: timestamp.div_euclid(1000) + PG_EPOCH_MS,
                    position: lsn_position(end_lsn),
                }));
            }
            LogicalReplicationMessage::Relation {
                relation_id,
                namespace,
                relation_name,
                replica_identity,
                columns,
            } => {
                self.describe(
                    relation_id,
                    TableId::new(&*namespace, &*relation_name),
                    replica_identity,
                    columns,
                )
                .await?;
            }
            LogicalReplicationMessage::Insert { relation_id, tuple } => {
                if let Some(rel) = self.relation(relation_id)? {
                    let change = RowChange {
                        table: rel.table.clone(),
                        op: ChangeOp::Insert,
                        before: None,
                        after: Some(values(rel, &tuple, None)),
                    };
                    self.push(change);
                }
            }
            LogicalReplicationMessage::Update {
                relation_id,
                old_tuple,
                new_tuple,
                key_type,
            } => {
                if let Some(rel) = self.relation(relation_id)? {
                    let before = old_tuple.as_ref().map(|o| values(rel, o, None));
                    let full = key_type == Some('O');
                    let after = values(rel, &new_tuple, before.as_deref().map(|b| (b, full)));
                    let change = RowChange {
                        table: rel.table.clone(),
                        op: ChangeOp::Update,
                        before,
                        after: Some(after),
                    };
                    self.push(change);
                }
            }
            LogicalReplicationMessage::Delete {
                relation_id,
                old_tuple,
                ..
            } => {
                if let Some(rel) = self.relation(relation_id)? {
                    let change = RowChange {
                        table: rel.table.clone(),
                        op: ChangeOp::Delete,
                        before: Some(values(rel, &old_tuple, None)),
                        after: None,
                    };
                    self.push(change);
                }
            }
            // Not published (truncate), not asked for (messages, streaming, two-phase), or not
            // needed (type names come from the catalog, origins do not matter here).
            _ => {}
        }
        Ok(Decoded::Nothing)
    }

    async fn describe(
        &mut self,
        oid: u32,
        id: TableId,
        replica_identity: u8,
        columns: Vec<pg_walstream::ColumnInfo>,
    ) -> Result<()> {
        if !self.wanted.contains(&id) {
            self.relations.insert(oid, None);
            return Ok(());
        }
        let oids: Vec<u32> = columns.iter().map(|c| c.type_id).collect();
        self.types.resolve(&self.pool, &oids).await?;
        let mut kinds = Vec::with_capacity(columns.len());
        let mut cols = Vec::with_capacity(columns.len());
        for c in &columns {
            let (native_type, kind) = self.types.get(c.type_id);
            kinds.push(kind);
            cols.push(ChangeColumn {
                name: c.name.to_string(),
                native_type,
                key: c.is_key(),
            });
        }
        if replica_identity == b'f' {
            // FULL flags every column; the key is the primary key when there is one.
            let pk = catalog::primary_key(&self.pool, oid).await?;
            if !pk.is_empty() {
                for c in &mut cols {
                    c.key = pk.contains(&c.name);
                }
            }
        }
        let table = ChangeTable {
            id: id.clone(),
            columns: cols,
        };
        let table = match self.known.get(&id) {
            Some(k) if **k == table => k.clone(),
            _ => {
                let t = Arc::new(table);
                self.known.insert(id, t.clone());
                t
            }
        };
        self.relations.insert(oid, Some(Rel { table, kinds }));
        Ok(())
    }
}

/// A tuple's values in the relation's column order. An unchanged TOAST value (`u`) is taken
/// from `old` when the log has it there (`old` = the old row and whether it is the full row,
/// not just the key), else it is [`ChangeValue::Unchanged`].
fn values(rel: &Rel, t: &TupleData, old: Option<(&[ChangeValue], bool)>) -> Vec<ChangeValue> {
    rel.kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| match t.columns.get(i) {
            None => ChangeValue::Null,
            Some(c) => match c.data_type {
                b't' => kind.convert(c.as_bytes()),
                b'b' => ChangeValue::Bytes(c.as_bytes().to_vec()),
                b'u' => match old {
                    Some((o, full)) if full || rel.table.columns[i].key => match o.get(i) {
                        Some(v) if *v != ChangeValue::Unchanged => v.clone(),
                        _ => ChangeValue::Unchanged,
                    },
                    _ => ChangeValue::Unchanged,
                },
                _ => ChangeValue::Null,
            },
        })
        .collect()
}
