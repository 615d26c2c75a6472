//! What the change log reads and changes in the catalogs over ordinary (sqlx) connections: server
//! settings, the task's publication, table shapes, type names, and the slot itself (state, drop,
//! advance).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdi_connector::change::{ChangeColumn, ChangeTable, TableId};
use fdi_connector::{ConnectorError, Result};
use fdi_sql_core::{Dialect, map_sqlx_error};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row};

use super::values::ValueKind;

/// How long a slot may stay "active" (its previous walsender still exiting) before dropping,
/// starting or advancing it gives up.
const ACTIVE_WAIT: Duration = Duration::from_secs(5);

fn db(context: &str) -> impl FnOnce(sqlx::Error) -> ConnectorError + '_ {
    move |e| map_sqlx_error(context, e)
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

pub fn quote_table(t: &TableId) -> String {
    format!(
        "{}.{}",
        Dialect::Postgres.quote_ident(&t.schema),
        Dialect::Postgres.quote_ident(&t.name)
    )
}

/// `wal_level`, `max_replication_slots`, `max_wal_senders`.
pub async fn check_settings(pool: &PgPool) -> Result<()> {
    let row = sqlx::query(
        "SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int4, \
         current_setting('max_wal_senders')::int4",
    )
    .fetch_one(pool)
    .await
    .map_err(db("PostgreSQL settings"))?;
    let wal_level: String = row.get(0);
    if wal_level != "logical" {
        return Err(ConnectorError::user(format!(
            "PostgreSQL change capture needs wal_level = logical, the server has wal_level = \
             {wal_level} (set wal_level = logical in postgresql.conf and restart the server)"
        )));
    }
    for (i, name) in [(1, "max_replication_slots"), (2, "max_wal_senders")] {
        let n: i32 = row.get(i);
        if n < 1 {
            return Err(ConnectorError::user(format!(
                "PostgreSQL change capture needs {name} >= 1, the server has {name} = {n}"
            )));
        }
    }
    Ok(())
}

/// Make publication `name` publish exactly `tables` (inserts, updates and deletes): created
/// when missing, its table list set when it differs.
pub async fn ensure_publication(pool: &PgPool, name: &str, tables: &[TableId]) -> Result<()> {
    if tables.is_empty() {
        return Err(ConnectorError::user(
            "PostgreSQL change capture: no tables to capture",
        ));
    }
    for t in tables {
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
        )
        .bind(&t.schema)
        .bind(&t.name)
        .fetch_optional(pool)
        .await
        .map_err(db("PostgreSQL tables"))?;
        match kind.as_deref() {
            Some("r") | Some("p") => {}
            Some(_) => {
                return Err(ConnectorError::user(format!(
                    "table {t}: not a table (views and other relations have no change log)"
                )));
            }
            None => return Err(ConnectorError::user(format!("table {t} does not exist"))),
        }
    }
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int4")
        .fetch_one(pool)
        .await
        .map_err(db("PostgreSQL version"))?;
    let list = tables
        .iter()
        .map(quote_table)
        .collect::<Vec<_>>()
        .join(", ");
    let quoted = Dialect::Postgres.quote_ident(name);
    let with = if version >= 130000 {
        "WITH (publish = 'insert, update, delete', publish_via_partition_root = true)"
    } else {
        "WITH (publish = 'insert, update, delete')"
    };
    let existing = sqlx::query(
        "SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate \
         FROM pg_publication WHERE pubname = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
    .map_err(db("PostgreSQL publication"))?;
    let mut statements = Vec::new();
    match existing {
        None => statements.push(format!(
            "CREATE PUBLICATION {quoted} FOR TABLE {list} {with}"
        )),
        Some(row) if row.get::<bool, _>(0) => {
            statements.push(format!("DROP PUBLICATION {quoted}"));
            statements.push(format!(
                "CREATE PUBLICATION {quoted} FOR TABLE {list} {with}"
            ));
        }
        Some(row) => {
            let flags: [bool; 4] = [row.get(1), row.get(2), row.get(3), row.get(4)];
            if flags != [true, true, true, false] {
                statements.push(format!(
                    "ALTER PUBLICATION {quoted} SET (publish = 'insert, update, delete')"
                ));
            }
            let current: HashSet<(String, String)> = sqlx::query(
                "SELECT n.nspname::text, c.relname::text FROM pg_publication p \
                 JOIN pg_publication_rel pr ON pr.prpubid = p.oid \
                 JOIN pg_class c ON c.oid = pr.prrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.pubname = $1",
            )
            .bind(name)
            .fetch_all(pool)
            .await
            .map_err(db("PostgreSQL publication tables"))?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
            let wanted: HashSet<(String, String)> = tables
                .iter()
                .map(|t| (t.schema.clone(), t.name.clone()))
                .collect();
            if current != wanted {
                statements.push(format!("ALTER PUBLICATION {quoted} SET TABLE {list}"));
            }
        }
    }
    for sql in statements {
        tracing::info!(publication = name, "{sql}");
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(pool)
            .await
            .map_err(db(&format!("publication {name}")))?;
    }
    Ok(())
}

pub async fn drop_publication(pool: &PgPool, name: &str) -> Result<()> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP PUBLICATION IF EXISTS {}",
        Dialect::Postgres.quote_ident(name)
    )))
    .execute(pool)
    .await
    .map(|_| ())
    .map_err(db(&format!("drop publication {name}")))
}

/// A table as the change log carries it, and how each column's text converts.
#[derive(Debug, Clone)]
pub struct TableShape {
    pub table: Arc<ChangeTable>,
    pub kinds: Vec<ValueKind>,
}

/// The key columns of a table, as the change log's key: the replica identity (`DEFAULT`: the
/// primary key; `USING INDEX`: that index); for `FULL` the primary key when there is one, else
/// every column; for `NOTHING` none.
fn key_rule(replident: &str, pk: &[String], index: &[String], all: &[String]) -> Vec<String> {
    match replident {
        "d" => pk.to_vec(),
        "i" => index.to_vec(),
        "f" if !pk.is_empty() => pk.to_vec(),
        "f" => all.to_vec(),
        _ => Vec::new(),
    }
}

/// Describe `id` from the catalogs (in the snapshot's transaction, so as of the snapshot):
/// columns in table order without dropped and generated ones (pgoutput sends neither), type
/// names (`typname`; a domain converts as its base type) and key flags.
pub async fn describe(conn: &mut PgConnection, id: &TableId) -> Result<TableShape> {
    let rel = sqlx::query(
        "SELECT c.oid::int8, c.relreplident::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
    )
    .bind(&id.schema)
    .bind(&id.name)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db("PostgreSQL table"))?
    .ok_or_else(|| ConnectorError::user(format!("table {id} does not exist")))?;
    let oid: i64 = rel.get(0);
    let replident: String = rel.get(1);
    let cols = sqlx::query(
        "SELECT a.attname::text, t.typname::text, coalesce(bt.typname, t.typname)::text \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
         WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped \
         AND a.attgenerated = '' ORDER BY a.attnum",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await
    .map_err(db("PostgreSQL columns"))?;
    let index_cols = |primary: bool| {
        sqlx::query_scalar::<_, String>(
            "SELECT a.attname::text FROM pg_index i \
             JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) ON true \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1::int8::oid AND (CASE WHEN $2 THEN i.indisprimary \
             ELSE i.indisreplident END) ORDER BY k.ord",
        )
        .bind(oid)
        .bind(primary)
    };
    let pk = index_cols(true)
        .fetch_all(&mut *conn)
        .await
        .map_err(db("PostgreSQL primary key"))?;
    let ri = index_cols(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(db("PostgreSQL replica identity"))?;
    let names: Vec<String> = cols.iter().map(|r| r.get::<String, _>(0)).collect();
    let keys = key_rule(&replident, &pk, &ri, &names);
    let mut columns = Vec::with_capacity(cols.len());
    let mut kinds = Vec::with_capacity(cols.len());
    for r in cols {
        let name: String = r.get(0);
        let native_type: String = r.get(1);
        let base: String = r.get(2);
        kinds.push(ValueKind::of(&base));
        columns.push(ChangeColumn {
            key: keys.contains(&name),
            name,
            native_type,
        });
    }
    Ok(TableShape {
        table: Arc::new(ChangeTable {
            id: id.clone(),
            columns,
        }),
        kinds,
    })
}

/// The primary key's column names of a table (by OID).
pub async fn primary_key(pool: &PgPool, relid: u32) -> Result<Vec<String>> {
    sqlx::query_scalar::<_, String>(
        "SELECT a.attname::text FROM pg_index i \
         JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) ON true \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = $1::int8::oid AND i.indisprimary ORDER BY k.ord",
    )
    .bind(i64::from(relid))
    .fetch_all(pool)
    .await
    .map_err(db("PostgreSQL primary key"))
}

/// Type OID -> (type name, conversion), looked up once per OID.
#[derive(Default)]
pub struct TypeNames {
    known: HashMap<u32, (String, ValueKind)>,
}

impl TypeNames {
    pub async fn resolve(&mut self, pool: &PgPool, oids: &[u32]) -> Result<()> {
        let missing: Vec<i64> = oids
            .iter()
            .filter(|o| !self.known.contains_key(o))
            .map(|&o| i64::from(o))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query(
            "SELECT t.oid::int8, t.typname::text, coalesce(bt.typname, t.typname)::text \
             FROM pg_type t LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
             WHERE t.oid = ANY($1::int8[]::oid[])",
        )
        .bind(&missing)
        .fetch_all(pool)
        .await
        .map_err(db("PostgreSQL types"))?;
        for r in rows {
            let oid: i64 = r.get(0);
            let base: String = r.get(2);
            self.known
                .insert(oid as u32, (r.get(1), ValueKind::of(&base)));
        }
        Ok(())
    }

    /// The name and conversion of a resolved OID (an unknown one reads as text).
    pub fn get(&self, oid: u32) -> (String, ValueKind) {
        self.known
            .get(&oid)
            .cloned()
            .unwrap_or_else(|| (oid.to_string(), ValueKind::Text))
    }
}

/// A replication slot's state.
#[derive(Debug, Clone)]
pub struct SlotState {
    pub active_pid: Option<i32>,
    pub confirmed_flush: Option<String>,
    /// The database the slot decodes, when it is not this one (the name then belongs to
    /// another reader: it is left alone).
    pub other_database: Option<String>,
    /// `reserved` / `extended` / `unreserved` / `lost` (PostgreSQL 13+).
    pub wal_status: Option<String>,
}

pub async fn slot_state(pool: &PgPool, slot: &str) -> Result<Option<SlotState>> {
    let row = sqlx::query(
        "SELECT active_pid, confirmed_flush_lsn::text, \
         CASE WHEN database IS DISTINCT FROM current_database() THEN coalesce(database::text, '') END, \
         to_jsonb(s) ->> 'wal_status' FROM pg_replication_slots s WHERE slot_name = $1",
    )
    .bind(slot)
    .fetch_optional(pool)
    .await
    .map_err(db("PostgreSQL replication slots"))?;
    let state = row.map(|r| SlotState {
        active_pid: r.get(0),
        confirmed_flush: r.get(1),
        other_database: r.get(2),
        wal_status: r.get(3),
    });
    if let Some(SlotState {
        other_database: Some(other),
        ..
    }) = &state
    {
        return Err(ConnectorError::user(format!(
            "replication slot {slot} belongs to database {other:?}, not this datasource's \
             (another reader uses the name)"
        )));
    }
    Ok(state)
}

/// Wait (up to [`ACTIVE_WAIT`]) until no walsender holds the slot: a reader that just stopped
/// releases it when its server process has ended.
pub async fn wait_inactive(pool: &PgPool, slot: &str) -> Result<Option<SlotState>> {
    let deadline = Instant::now() + ACTIVE_WAIT;
    loop {
        let s = slot_state(pool, slot).await?;
        match &s {
            Some(SlotState {
                active_pid: Some(pid),
                ..
            }) => {
                if Instant::now() >= deadline {
                    return Err(ConnectorError::external(format!(
                        "replication slot {slot} is in use by server process {pid} (another \
                         reader of this task still running?)"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return Ok(s),
        }
    }
}

/// Drop the slot when it exists (waiting for a just-stopped reader to release it).
pub async fn drop_slot(pool: &PgPool, slot: &str) -> Result<()> {
    let deadline = Instant::now() + ACTIVE_WAIT;
    loop {
        if wait_inactive(pool, slot).await?.is_none() {
            return Ok(());
        }
        match sqlx::query("SELECT pg_drop_replication_slot($1)")
            .bind(slot)
            .execute(pool)
            .await
        {
            Ok(_) => return Ok(()),
            // Gone meanwhile.
            Err(e) if sqlstate(&e).as_deref() == Some("42704") => return Ok(()),
            // Taken again between the look and the drop.
            Err(e) if sqlstate(&e).as_deref() == Some("55006") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(map_sqlx_error(&format!("drop replication slot {slot}"), e)),
        }
    }
}

/// Move the slot's confirmed flush position forward to `lsn` over SQL (when no replication
/// connection is streaming from it). Not before where it is; a slot that is gone or held by
/// another reader is left alone (that reader confirms its own progress).
pub async fn advance_slot(pool: &PgPool, slot: &str, lsn: u64) -> Result<()> {
    let target = pg_walstream::format_lsn(lsn);
    let deadline = Instant::now() + ACTIVE_WAIT;
    loop {
        let r = sqlx::query(
            "SELECT pg_replication_slot_advance(slot_name, $2::pg_lsn) FROM pg_replication_slots \
             WHERE slot_name = $1 AND confirmed_flush_lsn < $2::pg_lsn",
        )
        .bind(slot)
        .bind(&target)
        .execute(pool)
        .await;
        match r {
            Ok(_) => return Ok(()),
            Err(e) if sqlstate(&e).as_deref() == Some("42704") => return Ok(()),
            Err(e) if sqlstate(&e).as_deref() == Some("55006") => {
                if Instant::now() >= deadline {
                    tracing::warn!(
                        slot,
                        lsn = %target,
                        "replication slot still in use; its position is confirmed by its reader"
                    );
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(map_sqlx_error(
                    &format!("advance replication slot {slot} to {target}"),
                    e,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_replica_identity() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (pk, idx, all) = (s(&["a"]), s(&["b", "c"]), s(&["a", "b", "c", "d"]));
        assert_eq!(key_rule("d", &pk, &idx, &all), pk);
        assert_eq!(key_rule("i", &pk, &idx, &all), idx);
        assert_eq!(key_rule("f", &pk, &idx, &all), pk);
        assert_eq!(key_rule("f", &[], &idx, &all), all);
        assert!(key_rule("n", &pk, &idx, &all).is_empty());
    }
}
