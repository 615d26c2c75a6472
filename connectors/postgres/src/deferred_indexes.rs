//! Index builds deferred past a bulk load into a table the run has just emptied.
//!
//! Keeping a B-tree up to date row by row costs a large part of a bulk load: every row is one
//! more index insertion and one more WAL record. Building the index once over the loaded table
//! (a sort and a sequential write) is cheaper, which is why `pg_restore` creates indexes after the
//! data. A load may do the same when the table was truncated in its own transaction: that
//! `TRUNCATE` already holds the table's `ACCESS EXCLUSIVE` lock until the commit, so nobody sees the
//! table without its indexes, and a failure rolls the drops back with everything else.
//!
//! Only indexes a drop and re-create restore exactly are deferred: primary keys, unique
//! constraints and plain indexes of an ordinary table the session's role owns, in the table's
//! tablespace, without comments, not the replica identity or cluster index, and no foreign key
//! pointing at the table. Anything else leaves every index in place.

use fdi_sql_core::Dialect;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Row};

/// Loads expected to write at least this many rows build their indexes after the data.
pub(crate) const DEFER_INDEX_ROWS: u64 = 100_000;

/// Indexes dropped for a load, and how to build them again.
#[derive(Debug)]
pub(crate) struct DeferredIndexes {
    rebuild: Vec<String>,
}

/// Whether the table's indexes can be deferred, and if so the drop and re-create statements.
const INDEXES_SQL: &str = "
SELECT con.conname, pg_get_indexdef(i.indexrelid) AS index_def,
  i.indexrelid::regclass::text AS index_name,
  CASE WHEN con.oid IS NOT NULL THEN pg_get_constraintdef(con.oid) END AS constraint_def,
  (i.indisreplident OR i.indisclustered OR NOT i.indisvalid OR NOT i.indisready
    OR ic.reltablespace <> t.reltablespace
    OR obj_description(i.indexrelid, 'pg_class') IS NOT NULL
    OR (con.oid IS NOT NULL AND (con.contype NOT IN ('p', 'u')
        OR obj_description(con.oid, 'pg_constraint') IS NOT NULL))
    OR t.relkind <> 'r' OR t.relispartition OR NOT pg_has_role(t.relowner, 'USAGE')
    OR EXISTS (SELECT 1 FROM pg_constraint f WHERE f.confrelid = t.oid)
    OR EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhparent = t.oid OR h.inhrelid = t.oid)
  ) AS keep
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
  AND con.contype IN ('p', 'u', 'x')
WHERE i.indrelid = $1::regclass
ORDER BY con.contype = 'p' DESC NULLS LAST, con.oid IS NULL, ic.relname";

/// Drop the indexes of `table_sql` (the quoted, qualified name) for a load that rebuilds them
/// with [`DeferredIndexes::rebuild`] before its commit. None (nothing dropped) when the table has
/// no index or one that must stay as it is. Call it only inside the transaction that truncated
/// the table.
pub(crate) async fn defer(
    conn: &mut PgConnection,
    table_sql: &str,
) -> Result<Option<DeferredIndexes>, sqlx::Error> {
    let rows = sqlx::query(INDEXES_SQL)
        .bind(table_sql)
        .fetch_all(&mut *conn)
        .await?;
    if rows.is_empty() || rows.iter().any(|r| r.get::<bool, _>("keep")) {
        return Ok(None);
    }
    let d = Dialect::Postgres;
    let mut drop = Vec::with_capacity(rows.len());
    let mut rebuild = Vec::with_capacity(rows.len());
    for r in &rows {
        let constraint: Option<String> = r.get("conname");
        match (constraint, r.get::<Option<String>, _>("constraint_def")) {
            (Some(name), Some(def)) => {
                let name = d.quote_ident(&name);
                drop.push(format!("ALTER TABLE {table_sql} DROP CONSTRAINT {name}"));
                rebuild.push(format!(
                    "ALTER TABLE {table_sql} ADD CONSTRAINT {name} {def}"
                ));
            }
            _ => {
                let index: String = r.get("index_name");
                drop.push(format!("DROP INDEX {index}"));
                rebuild.push(r.get("index_def"));
            }
        }
    }
    for sql in drop {
        fdi_sql_core::statement_log::debug("pg defer index", &sql);
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await?;
    }
    tracing::debug!(
        table = table_sql,
        indexes = rebuild.len(),
        "indexes dropped for the load, rebuilt before the commit"
    );
    Ok(Some(DeferredIndexes { rebuild }))
}

impl DeferredIndexes {
    /// Build the dropped indexes over the loaded rows (primary key first). A unique index over
    /// duplicate rows fails here, as the load itself would have.
    pub(crate) async fn rebuild(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        for sql in self.rebuild {
            fdi_sql_core::statement_log::debug("pg rebuild index", &sql);
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}
