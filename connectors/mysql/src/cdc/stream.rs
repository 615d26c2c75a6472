//! Reading the binlog: events of the captured tables grouped into committed transactions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdi_connector::change::{
    ChangeEvent, ChangeOp, ChangeTransaction, ChangeValue, RowChange, TableId,
};
use fdi_connector::{ConnectorError, Result};
use futures::StreamExt;
use mysql_async::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts, Value};
use tokio::sync::mpsc;

use super::position::{BinlogPosition, Gtid, GtidState};
use super::schema::{self, TableSchema};
use super::value::{Origin, convert};
use super::{connect, map_err, send};

/// At most one heartbeat a second.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// What the server is asked for: a heartbeat event after this much silence (nanoseconds).
const SERVER_HEARTBEAT_NS: u64 = 1_000_000_000;

// Event types (MySQL's numbering; 160+ are MariaDB's).
const QUERY: u8 = 2;
const ROTATE: u8 = 4;
const FORMAT_DESCRIPTION: u8 = 15;
const XID: u8 = 16;
const TABLE_MAP: u8 = 19;
const HEARTBEAT: u8 = 27;
const XA_PREPARE: u8 = 38;
const TRANSACTION_PAYLOAD: u8 = 40;
const MARIADB_GTID: u8 = 162;
const MARIADB_QUERY_COMPRESSED: u8 = 165;
const MARIADB_ROWS_COMPRESSED_LAST: u8 = 171;
/// LOG_EVENT_ARTIFICIAL_F: made up by the server for this stream, not in the file.
const ARTIFICIAL: u16 = 0x20;

/// What a source keeps between runs: connection options, the tables, the cached schemas.
pub struct Tables {
    /// The captured tables by the name the binlog gives them (lowercase when the server folds
    /// table names: `lower_case_table_names` not 0), each to the task's own name.
    wanted: HashMap<TableId, TableId>,
    fold_case: bool,
    /// Schemas by table and the column count of the binlog's table map.
    pub schemas: HashMap<(TableId, usize), Arc<TableSchema>>,
    pub meta: Option<Conn>,
}

impl Tables {
    pub fn new(loaded: Vec<TableSchema>, fold_case: bool) -> Self {
        let wanted = loaded
            .iter()
            .map(|s| (fold(&s.table.id, fold_case), s.table.id.clone()))
            .collect();
        let schemas = loaded
            .into_iter()
            .map(|s| ((s.table.id.clone(), s.len()), Arc::new(s)))
            .collect();
        Self {
            wanted,
            fold_case,
            schemas,
            meta: None,
        }
    }

    /// The schema that reads a table map of `columns` columns: the table's current columns
    /// (re-read from information_schema when the count differs from the cached one: columns
    /// were added or dropped), or their first `columns` when the event is older than columns
    /// appended since.
    async fn for_map(
        &mut self,
        opts: &Opts,
        id: &TableId,
        columns: usize,
    ) -> Result<Arc<TableSchema>> {
        if let Some(s) = self.schemas.get(&(id.clone(), columns)) {
            return Ok(s.clone());
        }
        // The kept connection may have timed out: on failure, once more on a new one.
        let loaded = match self.meta.as_mut() {
            Some(conn) => schema::load(conn, id).await.ok(),
            None => None,
        };
        let loaded = match loaded {
            Some(s) => s,
            None => {
                self.meta = None;
                let conn = self.meta.insert(connect(opts).await?);
                schema::load(conn, id).await?
            }
        };
        let Some(current) = loaded else {
            return Err(ConnectorError::user(format!(
                "table {id} is in the binlog but no longer exists: its changes cannot be named"
            )));
        };
        let schema = if current.len() == columns {
            current
        } else if current.len() > columns {
            tracing::warn!(
                table = %id,
                binlog_columns = columns,
                current_columns = current.len(),
                "binlog event older than the table's columns: naming its columns by the first \
                 ones of the current table"
            );
            current.truncated(columns)
        } else {
            return Err(ConnectorError::user(format!(
                "table {id}: the binlog has {columns} columns but the table now has {}: columns \
                 dropped since cannot be named (re-copy the task)",
                current.len()
            )));
        };
        let schema = Arc::new(schema);
        self.schemas.insert((id.clone(), columns), schema.clone());
        Ok(schema)
    }

    /// A DDL statement passed: the schemas of the captured tables it names are read again at
    /// their next table map.
    fn forget(&mut self, statement: &str) {
        let sql = statement.to_lowercase();
        self.schemas
            .retain(|(id, _), _| !sql.contains(&id.name.to_lowercase()));
    }
}

/// Open a binlog stream at `start`: by GTID when it has one (MariaDB), else by file / position.
pub async fn open(
    opts: &Opts,
    server_id: u32,
    start: &BinlogPosition,
) -> Result<(BinlogStream, bool)> {
    let mut conn = connect(opts).await?;
    let checksum: Option<String> = conn
        .query_first("SELECT @@global.binlog_checksum")
        .await
        .map_err(|e| map_err("binlog_checksum", e))?;
    for sql in [
        // A GTID-aware replica: MariaDB sends its GTID events as they are (else it rewrites
        // them into BEGIN queries).
        "SET @mariadb_slave_capability = 4".to_string(),
        format!("SET @master_heartbeat_period = {SERVER_HEARTBEAT_NS}"),
        // A slow target may leave the stream unread for a while.
        "SET SESSION net_write_timeout = 86400".to_string(),
    ] {
        conn.query_drop(sql.as_str())
            .await
            .map_err(|e| map_err(&sql, e))?;
    }
    let request = BinlogStreamRequest::new(server_id);
    let stream = match &start.gtid {
        Some(gtid) => {
            conn.exec_drop("SET @slave_connect_state = ?", (gtid.as_str(),))
                .await
                .map_err(|e| map_err("SET @slave_connect_state", e))?;
            conn.get_binlog_stream(request.with_filename(b"").with_pos(4))
                .await
        }
        None => {
            conn.get_binlog_stream(
                request
                    .with_filename(start.file.as_bytes())
                    .with_pos(start.pos),
            )
            .await
        }
    }
    .map_err(|e| map_err("starting the binlog stream", e))?;
    let checksum = checksum.is_some_and(|c| !c.eq_ignore_ascii_case("NONE"));
    Ok((stream, checksum))
}

/// The state of one binlog stream.
pub struct Reader<'a> {
    pub opts: &'a Opts,
    pub tables: &'a mut Tables,
    /// The last position sent (what a new run resumes from).
    pub sent: &'a mut BinlogPosition,
    /// The binlog file being read.
    file: String,
    /// The position after the last complete event group.
    committed: BinlogPosition,
    gtid: Option<GtidState>,
    pending_gtid: Option<Gtid>,
    /// Inside an event group (a transaction, or a standalone DDL group).
    in_group: bool,
    standalone: bool,
    changes: Vec<RowChange>,
    /// Captured tables by the binlog's table id (None: not captured).
    table_ids: HashMap<u64, Option<Arc<TableSchema>>>,
    checksum: bool,
    seen_fde: bool,
    last_sent: Instant,
    /// Inside a MySQL transaction payload event: the position after it.
    payload_end: Option<u64>,
}

impl<'a> Reader<'a> {
    pub fn new(
        opts: &'a Opts,
        tables: &'a mut Tables,
        sent: &'a mut BinlogPosition,
        gtid: Option<GtidState>,
        checksum: bool,
    ) -> Self {
        let committed = sent.clone();
        Self {
            opts,
            tables,
            file: committed.file.clone(),
            committed,
            sent,
            gtid,
            pending_gtid: None,
            in_group: false,
            standalone: false,
            changes: Vec::new(),
            table_ids: HashMap::new(),
            checksum,
            seen_fde: false,
            last_sent: Instant::now(),
            payload_end: None,
        }
    }

    /// Read until an error (the caller stops it by dropping the future).
    pub async fn run(
        &mut self,
        stream: &mut BinlogStream,
        out: &mpsc::Sender<ChangeEvent>,
    ) -> Result<()> {
        loop {
            let event = match stream.next().await {
                Some(Ok(e)) => e,
                Some(Err(e)) => return Err(map_err("reading the binlog", e)),
                None => {
                    return Err(ConnectorError::external(
                        "the server ended the binlog stream",
                    ));
                }
            };
            let ty = event.header().event_type_raw();
            let mut committed = None;
            match ty {
                TABLE_MAP => self.table_map(&event).await?,
                23..=25 | 30..=32 | 39 => self.rows(&event, stream)?,
                _ => committed = self.other(&event)?,
            }
            self.advance(&event);
            if let Some((changes, commit_ms)) = committed {
                let position = self.committed.to_source();
                let tx = ChangeTransaction {
                    changes,
                    commit_ms,
                    position,
                };
                self.send(out, ChangeEvent::Transaction(tx)).await?;
            } else if self.last_sent.elapsed() >= HEARTBEAT_EVERY
                && (ty == HEARTBEAT || self.committed != *self.sent)
                && !self.committed.file.is_empty()
            {
                let position = self.committed.to_source();
                self.send(out, ChangeEvent::Heartbeat { position }).await?;
            }
        }
    }

    async fn send(&mut self, out: &mpsc::Sender<ChangeEvent>, ev: ChangeEvent) -> Result<()> {
        send(out, ev).await?;
        *self.sent = self.committed.clone();
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Events other than table maps and rows; returns the changes and commit time of a
    /// transaction that committed with changes of captured tables.
    fn other(&mut self, event: &Event) -> Result<Option<(Vec<RowChange>, i64)>> {
        let h = event.header();
        match h.event_type_raw() {
            ROTATE => {
                let mut data = event.data();
                // The stream's first, made-up rotate comes before the format description that
                // tells the reader about checksums: its name still ends with one.
                if !self.seen_fde && self.checksum && data.len() >= 12 {
                    data = &data[..data.len() - 4];
                }
                if data.len() >= 8 {
                    let pos = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
                    let name = String::from_utf8_lossy(&data[8..]).into_owned();
                    let real = h.flags_raw() & ARTIFICIAL == 0;
                    if !self.in_group && (real || self.committed.file.is_empty()) {
                        self.committed.file = name.clone();
                        self.committed.pos = pos;
                    }
                    self.file = name;
                }
                Ok(None)
            }
            FORMAT_DESCRIPTION => {
                self.seen_fde = true;
                Ok(None)
            }
            MARIADB_GTID => {
                let gtid = Gtid::decode(event.data(), h.server_id())
                    .ok_or_else(|| ConnectorError::external("MariaDB GTID event too short"))?;
                self.begin();
                self.standalone = gtid.standalone;
                self.pending_gtid = Some(gtid);
                Ok(None)
            }
            QUERY => {
                let Some(EventData::QueryEvent(q)) = event
                    .read_data()
                    .map_err(|e| ConnectorError::external(format!("binlog query event: {e}")))?
                else {
                    return Ok(None);
                };
                let sql = q.query();
                let word = sql
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                match word.as_str() {
                    "BEGIN" => {
                        // MariaDB's GTID event already began the group.
                        if !self.in_group || self.pending_gtid.is_none() {
                            self.begin();
                        }
                        Ok(None)
                    }
                    "COMMIT" => Ok(self.commit(h.timestamp())),
                    "ROLLBACK" if !sql.to_ascii_uppercase().contains(" TO ") => {
                        // Only non-transactional changes are logged with a ROLLBACK; what the
                        // group held is dropped.
                        self.changes.clear();
                        self.end_group();
                        Ok(None)
                    }
                    "SAVEPOINT" | "ROLLBACK" | "XA" if self.in_group && !self.standalone => {
                        Ok(None)
                    }
                    _ => {
                        // A statement of its own (DDL): column names and types may have changed.
                        self.tables.forget(&sql);
                        if self.in_group && !self.standalone {
                            return Ok(None);
                        }
                        Ok(self.commit(h.timestamp()))
                    }
                }
            }
            XID | XA_PREPARE => Ok(self.commit(h.timestamp())),
            MARIADB_QUERY_COMPRESSED..=MARIADB_ROWS_COMPRESSED_LAST => Err(ConnectorError::user(
                "the binlog holds compressed events (log_bin_compress=ON), which this reader \
                 cannot decode: turn log_bin_compress off",
            )),
            _ => Ok(None),
        }
    }

    fn begin(&mut self) {
        self.in_group = true;
        self.standalone = false;
        self.pending_gtid = None;
        self.changes.clear();
    }

    fn end_group(&mut self) {
        self.in_group = false;
        self.standalone = false;
        // The GTID state is only tracked from a known start (a partial state would make the
        // server resend whole domains).
        if let (Some(g), Some(state)) = (self.pending_gtid.take(), self.gtid.as_mut()) {
            state.apply(g);
        }
    }

    /// The group ends here: its changes of captured tables (if any) and commit time (the
    /// header's seconds as milliseconds).
    fn commit(&mut self, timestamp: u32) -> Option<(Vec<RowChange>, i64)> {
        self.end_group();
        if self.changes.is_empty() {
            return None;
        }
        Some((
            std::mem::take(&mut self.changes),
            i64::from(timestamp) * 1000,
        ))
    }

    /// Between groups, the position moves past every event the file holds.
    fn advance(&mut self, event: &Event) {
        let h = event.header();
        let ty = h.event_type_raw();
        if ty == TRANSACTION_PAYLOAD {
            // MySQL's compressed transaction: its events come next, out of the stream's
            // positions; the place after it counts once its group has ended.
            self.payload_end = Some(u64::from(h.log_pos()));
            self.in_group = true;
            return;
        }
        if self.in_group
            || h.flags_raw() & ARTIFICIAL != 0
            || ty == HEARTBEAT
            || ty == ROTATE
            || self.file.is_empty()
        {
            return;
        }
        let pos = match self.payload_end.take() {
            Some(end) => end,
            None => u64::from(h.log_pos()),
        };
        if pos == 0 {
            return;
        }
        self.committed.file = self.file.clone();
        self.committed.pos = pos;
        self.committed.gtid = self
            .gtid
            .as_ref()
            .filter(|g| !g.is_empty())
            .map(|g| g.to_string());
    }

    async fn table_map(&mut self, event: &Event) -> Result<()> {
        let tme: TableMapEvent<'_> = event
            .read_event()
            .map_err(|e| ConnectorError::external(format!("binlog table map: {e}")))?;
        let logged = TableId::new(tme.database_name(), tme.table_name());
        let wanted = self
            .tables
            .wanted
            .get(&fold(&logged, self.tables.fold_case))
            .cloned();
        let schema = match wanted {
            Some(id) => {
                let columns = tme.columns_count() as usize;
                Some(self.tables.for_map(self.opts, &id, columns).await?)
            }
            None => None,
        };
        self.table_ids.insert(tme.table_id(), schema);
        Ok(())
    }

    fn rows(&mut self, event: &Event, stream: &BinlogStream) -> Result<()> {
        let bad = |e: std::io::Error| ConnectorError::external(format!("binlog rows event: {e}"));
        let Some(EventData::RowsEvent(re)) = event.read_data().map_err(bad)? else {
            return Ok(());
        };
        let Some(Some(schema)) = self.table_ids.get(&re.table_id()) else {
            return Ok(());
        };
        let schema = schema.clone();
        let tme = stream.get_tme(re.table_id()).ok_or_else(|| {
            ConnectorError::external(format!(
                "binlog rows of table id {} without its table map",
                re.table_id()
            ))
        })?;
        let op = match &re {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
                ChangeOp::Insert
            }
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
                ChangeOp::Delete
            }
            _ => ChangeOp::Update,
        };
        if !self.in_group {
            self.begin();
        }
        let before_bits: Option<Vec<bool>> = re
            .columns_before_image()
            .map(|b| b.iter().map(|x| *x).collect());
        let after_bits: Option<Vec<bool>> = re
            .columns_after_image()
            .map(|b| b.iter().map(|x| *x).collect());
        for row in re.rows(tme) {
            let (before, after) = row.map_err(bad)?;
            let before = before
                .map(|r| image(&schema, r, before_bits.as_deref(), ChangeValue::Null))
                .transpose()?;
            let after = after
                .map(|r| image(&schema, r, after_bits.as_deref(), ChangeValue::Unchanged))
                .transpose()?;
            self.changes.push(RowChange {
                table: schema.table.clone(),
                op,
                before: if op == ChangeOp::Insert { None } else { before },
                after: if op == ChangeOp::Delete { None } else { after },
            });
        }
        Ok(())
    }
}

fn fold(id: &TableId, fold_case: bool) -> TableId {
    if fold_case {
        TableId::new(id.schema.to_lowercase(), id.name.to_lowercase())
    } else {
        id.clone()
    }
}

/// One row image in table order; columns the image leaves out are `missing`.
fn image(
    schema: &TableSchema,
    mut row: BinlogRow,
    present: Option<&[bool]>,
    missing: ChangeValue,
) -> Result<Vec<ChangeValue>> {
    let mut next = 0;
    let mut out = Vec::with_capacity(schema.len());
    for (i, kind) in schema.kinds.iter().enumerate() {
        let here = present.is_none_or(|bits| bits.get(i).copied().unwrap_or(false));
        if !here {
            out.push(missing.clone());
            continue;
        }
        let value = match row.take(next) {
            None => Value::NULL,
            Some(v) => Value::try_from(v).map_err(|e| {
                ConnectorError::external(format!(
                    "{}.{}: {e}",
                    schema.table.id, schema.table.columns[i].name
                ))
            })?,
        };
        next += 1;
        out.push(convert(kind, value, Origin::Binlog));
    }
    Ok(out)
}
