//! Combination (CDC) tasks: their table mappings and where their change stream continues.

use sqlx::Row;

use crate::{Pool, Result, Store};

/// One mapping of a combination task: a source table to a target table, with its column pairs
/// and the columns of both sides (`body`, the API's JSON of them).
#[derive(Debug, Clone, PartialEq)]
pub struct MappingRow {
    pub id: String,
    pub task_id: String,
    pub source_table: String,
    pub target_table: String,
    /// AUTO, MANUAL, ADD, UPDATE, DELETE or USING.
    pub status: String,
    pub mapping_percent: i32,
    pub body: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

const MAPPING_COLUMNS: &str =
    "id, task_id, source_table, target_table, status, mapping_percent, body, created, updated";

macro_rules! mapping_from_row {
    ($r:expr) => {{
        let r = $r;
        Ok::<MappingRow, crate::StoreError>(MappingRow {
            id: r.try_get("id")?,
            task_id: r.try_get("task_id")?,
            source_table: r.try_get("source_table")?,
            target_table: r.try_get("target_table")?,
            status: r.try_get("status")?,
            mapping_percent: r.try_get("mapping_percent")?,
            body: r.try_get("body")?,
            created_ms: r.try_get("created")?,
            updated_ms: r.try_get("updated")?,
        })
    }};
}

impl Store {
    /// Store mappings; a mapping of a source table the task already maps replaces it (keeping
    /// its id and creation time).
    pub async fn put_mappings(&self, rows: &[MappingRow]) -> Result<()> {
        let sql = "INSERT INTO fdi_cdc_mappings (id, task_id, source_table, target_table, status, mapping_percent, body, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (task_id, source_table) DO UPDATE SET target_table = excluded.target_table, \
             status = excluded.status, mapping_percent = excluded.mapping_percent, body = excluded.body, \
             updated = excluded.updated";
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            for m in rows {
                sqlx::query(sql)
                    .bind(&m.id).bind(&m.task_id).bind(&m.source_table).bind(&m.target_table)
                    .bind(&m.status).bind(m.mapping_percent).bind(&m.body).bind(m.created_ms)
                    .bind(m.updated_ms)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// A page of the task's mappings by source table, and how many it has.
    pub async fn mappings(
        &self,
        task_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(u64, Vec<MappingRow>)> {
        let sql = format!(
            "SELECT {MAPPING_COLUMNS} FROM fdi_cdc_mappings WHERE task_id = $1 ORDER BY source_table, id LIMIT $2 OFFSET $3"
        );
        on_pool!(&self.pool, p => {
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fdi_cdc_mappings WHERE task_id = $1")
                .bind(task_id).fetch_one(p).await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(task_id).bind(limit).bind(offset)
                .fetch_all(p).await?;
            let rows = rows.iter().map(|r| mapping_from_row!(r)).collect::<Result<Vec<_>>>()?;
            Ok((total as u64, rows))
        })
    }

    pub async fn mapping(&self, task_id: &str, id: &str) -> Result<Option<MappingRow>> {
        let sql = format!(
            "SELECT {MAPPING_COLUMNS} FROM fdi_cdc_mappings WHERE task_id = $1 AND id = $2"
        );
        on_pool!(&self.pool, p => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(task_id).bind(id)
                .fetch_optional(p).await?;
            row.map(|r| mapping_from_row!(&r)).transpose()
        })
    }

    /// Set the status of the task's mapping of `source_table`; whether it exists.
    pub async fn set_mapping_status(
        &self,
        task_id: &str,
        source_table: &str,
        status: &str,
        now: i64,
    ) -> Result<bool> {
        let n = on_pool!(&self.pool, p => sqlx::query(
            "UPDATE fdi_cdc_mappings SET status = $1, updated = $2 WHERE task_id = $3 AND source_table = $4")
            .bind(status).bind(now).bind(task_id).bind(source_table)
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Whether the mapping existed.
    pub async fn delete_mapping(&self, task_id: &str, id: &str) -> Result<bool> {
        let n = on_pool!(&self.pool, p => sqlx::query("DELETE FROM fdi_cdc_mappings WHERE task_id = $1 AND id = $2")
            .bind(task_id).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    // ---- stream positions ---------------------------------------------------------------------

    /// Where the task's change stream continues (the source's position, JSON), if it has copied
    /// its tables already.
    pub async fn cdc_position(&self, task_id: &str) -> Result<Option<String>> {
        Ok(
            on_pool!(&self.pool, p => sqlx::query_scalar("SELECT position FROM fdi_cdc_positions WHERE task_id = $1")
            .bind(task_id).fetch_optional(p).await?),
        )
    }

    pub async fn set_cdc_position(&self, task_id: &str, position: &str, now: i64) -> Result<()> {
        on_pool!(&self.pool, p => sqlx::query(
            "INSERT INTO fdi_cdc_positions (task_id, position, updated) VALUES ($1, $2, $3)
             ON CONFLICT (task_id) DO UPDATE SET position = excluded.position, updated = excluded.updated")
            .bind(task_id).bind(position).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Forget the position: the next start copies the tables again.
    pub async fn clear_cdc_position(&self, task_id: &str) -> Result<()> {
        on_pool!(&self.pool, p => sqlx::query("DELETE FROM fdi_cdc_positions WHERE task_id = $1")
            .bind(task_id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}
