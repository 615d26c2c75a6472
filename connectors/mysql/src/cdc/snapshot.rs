//! The initial copy: every table read in one consistent-snapshot transaction whose binlog
//! position is known exactly.

use fdi_connector::change::{ChangeEvent, SnapshotBatcher};
use fdi_connector::{ConnectorError, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use tokio::sync::mpsc;

use super::position::{BinlogPosition, GtidState};
use super::schema::TableSchema;
use super::value::{Origin, convert};
use super::{connect, map_err, send};

/// Copy `tables` and return the binlog position of the copy.
///
/// MariaDB: `START TRANSACTION WITH CONSISTENT SNAPSHOT` and the status variables
/// `binlog_snapshot_file` / `binlog_snapshot_position` give the exact position without locking.
/// MySQL has no such variables: it holds `FLUSH TABLES WITH READ LOCK` for the moment it takes to
/// start the transaction and read `SHOW MASTER STATUS` (needs the RELOAD privilege; not tested
/// here, only MariaDB runs in CI).
pub async fn copy(
    opts: &mysql_async::Opts,
    tables: &[TableSchema],
    batch_rows: usize,
    out: &mpsc::Sender<ChangeEvent>,
) -> Result<BinlogPosition> {
    let mut conn = connect(opts).await?;
    q(&mut conn, "SET SESSION time_zone = '+00:00'").await?;
    // The copy waits while the pipeline takes its batches: the server must not give up on it.
    q(&mut conn, "SET SESSION net_write_timeout = 86400").await?;
    q(
        &mut conn,
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    )
    .await?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| map_err("SELECT VERSION()", e))?
        .unwrap_or_default();
    let (file, pos) = if version.contains("MariaDB") {
        q(&mut conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT").await?;
        let file = status(&mut conn, "binlog_snapshot_file").await?;
        let pos = status(&mut conn, "binlog_snapshot_position").await?;
        (file, pos)
    } else {
        q(&mut conn, "FLUSH TABLES WITH READ LOCK").await?;
        q(&mut conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT").await?;
        let row: Option<Row> = match conn.query_first("SHOW MASTER STATUS").await {
            Ok(r) => r,
            Err(_) => conn
                .query_first("SHOW BINARY LOG STATUS")
                .await
                .map_err(|e| map_err("SHOW BINARY LOG STATUS", e))?,
        };
        q(&mut conn, "UNLOCK TABLES").await?;
        let row = row.ok_or_else(|| ConnectorError::user("the binary log is off (log_bin)"))?;
        let file: Option<String> = row.get(0);
        let pos: Option<u64> = row.get(1);
        (
            file.unwrap_or_default(),
            pos.unwrap_or_default().to_string(),
        )
    };
    if file.is_empty() {
        return Err(ConnectorError::user(
            "the binary log is off (log_bin): no snapshot position",
        ));
    }
    let pos: u64 = pos
        .parse()
        .map_err(|_| ConnectorError::internal(format!("binlog snapshot position {pos:?}")))?;
    let gtid = gtid_at(&mut conn, &file, pos).await;
    for t in tables {
        copy_table(&mut conn, t, batch_rows.max(1), out).await?;
    }
    q(&mut conn, "COMMIT").await?;
    let _ = conn.disconnect().await;
    Ok(BinlogPosition::new(file, pos, gtid.as_ref()))
}

async fn status(conn: &mut Conn, name: &str) -> Result<String> {
    let row: Option<(String, String)> = conn
        .exec_first("SHOW STATUS WHERE Variable_name = ?", (name,))
        .await
        .map_err(|e| map_err(&format!("SHOW STATUS {name}"), e))?;
    row.map(|(_, v)| v)
        .ok_or_else(|| ConnectorError::external(format!("the server has no status {name}")))
}

/// MariaDB's GTID state at a binlog position (`BINLOG_GTID_POS`); None on MySQL or when the
/// server cannot tell.
pub async fn gtid_at(conn: &mut Conn, file: &str, pos: u64) -> Option<GtidState> {
    let text: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file, pos))
        .await
        .ok()?;
    GtidState::parse(&text.flatten()?).ok()
}

async fn q(conn: &mut Conn, sql: &'static str) -> Result<()> {
    conn.query_drop(sql).await.map_err(|e| map_err(sql, e))
}

pub fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

async fn copy_table(
    conn: &mut Conn,
    t: &TableSchema,
    batch_rows: usize,
    out: &mpsc::Sender<ChangeEvent>,
) -> Result<()> {
    let cols: Vec<String> = t.table.columns.iter().map(|c| quote(&c.name)).collect();
    let sql = format!(
        "SELECT {} FROM {}.{}",
        cols.join(", "),
        quote(&t.table.id.schema),
        quote(&t.table.id.name)
    );
    let context = format!("copying {}", t.table.id);
    // The binary protocol: numbers, floats and dates arrive typed, not as text.
    let mut result = conn
        .exec_iter(sql.as_str(), ())
        .await
        .map_err(|e| map_err(&context, e))?;
    let mut batcher = SnapshotBatcher::new(batch_rows);
    while let Some(row) = result.next().await.map_err(|e| map_err(&context, e))? {
        let values = row.unwrap_raw();
        let full = batcher.push(
            values
                .into_iter()
                .zip(&t.kinds)
                .map(|(v, k)| convert(k, v.unwrap_or(mysql_async::Value::NULL), Origin::Snapshot))
                .collect(),
        );
        if let Some(batch) = full {
            send(
                out,
                ChangeEvent::SnapshotRows {
                    table: t.table.clone(),
                    rows: batch,
                },
            )
            .await?;
        }
    }
    let rows = batcher.take();
    if !rows.is_empty() {
        send(
            out,
            ChangeEvent::SnapshotRows {
                table: t.table.clone(),
                rows,
            },
        )
        .await?;
    }
    Ok(())
}
