//! Same-server copies on MySQL / MariaDB: one `INSERT … SELECT` (`ON DUPLICATE KEY UPDATE` where
//! the task upserts) inside one transaction, the target table emptied with DELETE first when the
//! task clears it (TRUNCATE would commit on its own). A statement that raised warnings (a value
//! truncated or adjusted) is rolled back and fails, as the LOAD DATA path does.

use async_trait::async_trait;
use fdi_connector::in_server::{InServer, InServerCopy};
use fdi_connector::{ConnectorError, Result, SourceQuery};
use fdi_sql_core::Dialect;
use fdi_sql_core::error::map_sqlx_error;
use sqlx::{AssertSqlSafe, Connection};
use tokio_util::sync::CancellationToken;

use crate::MySqlConnector;

#[async_trait]
impl InServer for MySqlConnector {
    fn server_scope(&self) -> Option<String> {
        let o = self.pool.connect_options();
        if o.get_socket().is_some() {
            return None;
        }
        // The database is part of the scope: unqualified names resolve in it.
        Some(format!(
            "mysql://{}@{}:{}/{}",
            o.get_username(),
            o.get_host(),
            o.get_port(),
            o.get_database()?
        ))
    }

    fn select_sql(&self, query: &SourceQuery) -> Option<String> {
        fdi_sql_core::in_server::select_sql(Dialect::MySql, query, str::to_string)
    }

    async fn copy_in_server(&self, copy: &InServerCopy, cancel: CancellationToken) -> Result<u64> {
        let sql = fdi_sql_core::in_server::insert_select(Dialect::MySql, copy);
        fdi_sql_core::statement_log::debug("in-server copy", &sql);
        let mut conn = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ConnectorError::cancelled()),
            c = self.pool.acquire() => c.map_err(|e| map_sqlx_error("in-server copy", e))?,
        };
        let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| map_sqlx_error("in-server copy", e))?;
        let clear = copy.write.clear_table.then(|| {
            format!(
                "DELETE FROM {}",
                Dialect::MySql.quote_table(&copy.write.table)
            )
        });
        let work = async {
            let mut tx = conn.begin().await?;
            if let Some(clear) = clear {
                sqlx::query(AssertSqlSafe(clear)).execute(&mut *tx).await?;
            }
            let written = sqlx::query(AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let warnings: u64 = sqlx::query_scalar("SELECT @@warning_count")
                .fetch_one(&mut *tx)
                .await?;
            if warnings > 0 {
                let first: Option<(String, u32, String)> = sqlx::query_as("SHOW WARNINGS LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.rollback().await?;
                return Ok(Err(first.map_or_else(
                    || format!("{warnings} warnings"),
                    |(level, code, message)| {
                        format!("{level} {code}: {message} ({warnings} warnings)")
                    },
                )));
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Ok(written))
        };
        let done = tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            r = work => Some(r),
        };
        match done {
            Some(Ok(Ok(written))) => Ok(written),
            Some(Ok(Err(warning))) => Err(ConnectorError::user(format!(
                "in-server copy rolled back: the server adjusted values ({warning})"
            ))),
            Some(Err(e)) => Err(map_sqlx_error("in-server copy", e)),
            None => {
                // Left inside the statement: close this connection (its transaction rolls back)
                // and stop the statement on the server.
                drop(conn.detach());
                let pool = self.pool.clone();
                tokio::spawn(async move {
                    let stop =
                        sqlx::query(AssertSqlSafe(format!("KILL QUERY {id}"))).execute(&pool);
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stop).await;
                });
                Err(ConnectorError::cancelled())
            }
        }
    }
}
