//! Same-server copies on PostgreSQL: one `INSERT … SELECT` (upsert form where asked) inside one
//! transaction, the target table truncated first when the task clears it (a large copy into the
//! emptied table then builds its indexes after the rows: [`crate::deferred_indexes`]).

use async_trait::async_trait;
use fdi_connector::in_server::{InServer, InServerCopy};
use fdi_connector::{ConnectorError, Result, SourceQuery, WriteMode};
use fdi_sql_core::Dialect;
use fdi_sql_core::error::map_sqlx_error;
use sqlx::{AssertSqlSafe, Connection};
use tokio_util::sync::CancellationToken;

use crate::PgConnector;
use crate::deferred_indexes::{self, DEFER_INDEX_ROWS};
use crate::discovery::planned_rows;

#[async_trait]
impl InServer for PgConnector {
    fn server_scope(&self) -> Option<String> {
        let o = self.pool.connect_options();
        if o.get_socket().is_some() {
            return None;
        }
        let user = o.get_username();
        Some(format!(
            "postgres://{user}@{}:{}/{}",
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or(user)
        ))
    }

    fn select_sql(&self, query: &SourceQuery) -> Option<String> {
        // Qualified with this connector's schema: the target's session may have another.
        fdi_sql_core::in_server::select_sql(Dialect::Postgres, query, |t| {
            let (schema, table) = self.qualify(t);
            format!("{schema}.{table}")
        })
    }

    async fn copy_in_server(&self, copy: &InServerCopy, cancel: CancellationToken) -> Result<u64> {
        let mut copy = copy.clone();
        let (schema, table) = self.qualify(&copy.write.table);
        copy.write.table = format!("{schema}.{table}");
        let sql = fdi_sql_core::in_server::insert_select(Dialect::Postgres, &copy);
        fdi_sql_core::statement_log::debug("in-server copy", &sql);
        let mut conn = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ConnectorError::cancelled()),
            c = self.pool.acquire() => c.map_err(|e| map_sqlx_error("in-server copy", e))?,
        };
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| map_sqlx_error("in-server copy", e))?;
        let table_sql = Dialect::Postgres.quote_table(&copy.write.table);
        // A large copy into the table it has just emptied builds the indexes after the rows.
        let defer_indexes = copy.write.clear_table
            && matches!(copy.write.mode, WriteMode::Insert)
            && planned_rows(&mut *conn, &copy.select_sql)
                .await
                .ok()
                .flatten()
                .is_some_and(|rows| rows >= DEFER_INDEX_ROWS);
        let work = async {
            let mut tx = conn.begin().await?;
            let mut deferred = None;
            if copy.write.clear_table {
                sqlx::query(AssertSqlSafe(format!("TRUNCATE TABLE {table_sql}")))
                    .execute(&mut *tx)
                    .await?;
                if defer_indexes {
                    deferred = deferred_indexes::defer(&mut tx, &table_sql).await?;
                }
            }
            let written = sqlx::query(AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if let Some(deferred) = deferred {
                deferred.rebuild(&mut tx).await?;
            }
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(written)
        };
        let done = tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            r = work => Some(r),
        };
        match done {
            Some(r) => r.map_err(|e| map_sqlx_error("in-server copy", e)),
            None => {
                // Left inside the statement: close this connection (its transaction rolls back)
                // and stop the statement on the server.
                drop(conn.detach());
                crate::reader::cancel_backend(&self.pool, pid);
                Err(ConnectorError::cancelled())
            }
        }
    }
}
