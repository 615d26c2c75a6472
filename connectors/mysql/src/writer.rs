//! Transactional MySQL writer: multi-row INSERT statements with escaped literals, sized to the
//! server's `max_allowed_packet`; upserts with `ON DUPLICATE KEY UPDATE`. It writes the table
//! sets of combination (CDC) tasks, and single-table runs where the server refuses
//! `LOAD DATA LOCAL` (their writer, `load.rs`, falls back to it).
//!
//! Statements run on a task of their own that owns the transaction, so the writer builds the
//! statements for batch n+1 while the server executes those of batch n. The first failed
//! statement stops the task; the failure surfaces on the next `write` or at `commit`, which then
//! refuses (MySQL keeps a transaction open after a failed statement, so committing would keep
//! a partial load).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use fdi_connector::{
    ConnectorError, Result, SinkWriter, TableSetWriter, WriteMode, WriteSpec, WriteStats,
};
use fdi_sql_core::insert::{insert_prefix, insert_statements, upsert_suffix};
use fdi_sql_core::table_set::{LendableWriter, TableSet};
use fdi_sql_core::{Dialect, map_sqlx_error};
use sqlx::{MySql, MySqlPool, Row, Transaction};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Upper bound of one INSERT statement.
const MAX_STATEMENT_BYTES: usize = 4 << 20;

/// Statements queued for the executing task.
const QUEUE: usize = 2;

type Tx = Transaction<'static, MySql>;

/// The task executing the statements, owning the transaction until joined.
struct Executor {
    queue: mpsc::Sender<String>,
    /// Set by abort: skip what is still queued.
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(Tx, Result<()>)>,
}

impl Executor {
    fn spawn(mut tx: Tx) -> Self {
        let (queue, mut rx) = mpsc::channel::<String>(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = tokio::spawn(async move {
            while let Some(sql) = rx.recv().await {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                fdi_sql_core::statement_log::debug("mysql write", &sql);
                if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await
                {
                    return (tx, Err(map_sqlx_error("write", e)));
                }
            }
            (tx, Ok(()))
        });
        Self {
            queue,
            stop,
            handle,
        }
    }

    /// Wait until every queued statement ran (or one failed) and take the transaction back.
    async fn join(self) -> (Option<Tx>, Result<()>) {
        drop(self.queue);
        match self.handle.await {
            Ok((tx, r)) => (Some(tx), r),
            Err(e) => (
                None,
                Err(ConnectorError::internal(format!(
                    "statement task failed: {e}"
                ))),
            ),
        }
    }
}

pub struct MySqlWriter {
    pool: MySqlPool,
    spec: WriteSpec,
    prefix: String,
    suffix: String,
    max_statement: usize,
    /// Running statements (owns the transaction) between begin and commit/abort.
    exec: Option<Executor>,
    /// The transaction, when no executor has it (after a failure, until abort).
    tx: Option<Tx>,
    /// A statement failed: the transaction can only be rolled back.
    failed: Option<String>,
}

impl MySqlWriter {
    pub fn new(pool: MySqlPool, spec: WriteSpec) -> Self {
        let d = Dialect::MySql;
        let columns: Vec<String> = spec.columns.iter().map(|c| c.name.clone()).collect();
        let prefix = insert_prefix(d, &spec.table, &columns);
        let suffix = match &spec.mode {
            WriteMode::Insert => String::new(),
            WriteMode::Upsert { keys, part_update } => {
                upsert_suffix(d, &columns, keys, *part_update)
            }
        };
        Self {
            pool,
            spec,
            prefix,
            suffix,
            max_statement: MAX_STATEMENT_BYTES,
            exec: None,
            tx: None,
            failed: None,
        }
    }

    fn poisoned(&self) -> Result<()> {
        match &self.failed {
            Some(cause) => Err(ConnectorError::external(format!(
                "the transaction failed earlier ({cause}) and can only be rolled back"
            ))),
            None => Ok(()),
        }
    }

    /// Queue statements on the executing task.
    async fn send(&mut self, statements: Vec<String>) -> Result<()> {
        let queue = match &self.exec {
            Some(e) => e.queue.clone(),
            None => return Err(ConnectorError::internal("writer used outside begin/commit")),
        };
        for s in statements {
            if queue.send(s).await.is_err() {
                // The task stopped at a failed statement; join() has the cause.
                self.join().await?;
                let e = ConnectorError::internal("statement task ended early");
                self.failed = Some(e.message.clone());
                return Err(e);
            }
        }
        Ok(())
    }

    /// The first statements of a transaction: the statement size bound from the server's
    /// `max_allowed_packet`, and clearing the table when asked.
    async fn setup(&mut self, tx: &mut Tx) -> Result<()> {
        let packet: i64 = sqlx::query("SELECT CAST(@@max_allowed_packet AS SIGNED)")
            .fetch_one(&mut **tx)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| map_sqlx_error("begin", e))?;
        self.max_statement = MAX_STATEMENT_BYTES.min((packet.max(64 << 10) as usize) / 2);
        if self.spec.clear_table {
            // DELETE, not TRUNCATE: TRUNCATE would commit implicitly.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {}",
                Dialect::MySql.quote_table(&self.spec.table)
            )))
            .execute(&mut **tx)
            .await
            .map_err(|e| map_sqlx_error("write", e))?;
        }
        Ok(())
    }

    /// Join the executing task, keeping the transaction; a failure poisons the writer.
    async fn join(&mut self) -> Result<()> {
        let Some(exec) = self.exec.take() else {
            return Ok(());
        };
        let (tx, r) = exec.join().await;
        self.tx = tx;
        if let Err(e) = &r {
            self.failed.get_or_insert_with(|| e.message.clone());
        }
        r
    }
}

#[async_trait]
impl SinkWriter for MySqlWriter {
    async fn begin(&mut self) -> Result<()> {
        if self.exec.is_some() || self.tx.is_some() {
            return Err(ConnectorError::internal("begin called twice"));
        }
        let tx = self.open_tx().await?;
        self.adopt(tx, true).await
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<WriteStats> {
        self.poisoned()?;
        if batch.num_rows() == 0 {
            return Ok(WriteStats::default());
        }
        let (statements, bytes) = insert_statements(
            &batch,
            Dialect::MySql,
            &self.prefix,
            &self.suffix,
            self.max_statement,
        )?;
        self.send(statements).await?;
        Ok(WriteStats {
            rows: batch.num_rows() as u64,
            bytes,
            dirty_rows: 0,
        })
    }

    async fn commit(&mut self) -> Result<()> {
        if self.exec.is_none() && self.tx.is_none() {
            return Err(ConnectorError::internal("commit without begin"));
        }
        self.join().await?;
        self.poisoned()?;
        let tx = self
            .tx
            .take()
            .ok_or_else(|| ConnectorError::internal("transaction lost"))?;
        Self::commit_tx(tx).await?;
        self.committed();
        Ok(())
    }

    async fn delete(&mut self, keys: RecordBatch) -> Result<u64> {
        self.poisoned()?;
        let table = Dialect::MySql.quote_table(&self.spec.table);
        let statements =
            fdi_sql_core::insert::delete_statements(Dialect::MySql, &table, &keys, 1000)?;
        self.send(statements).await?;
        Ok(keys.num_rows() as u64)
    }

    async fn abort(&mut self) -> Result<()> {
        if let Some(exec) = &self.exec {
            exec.stop.store(true, Ordering::Relaxed);
        }
        let _ = self.join().await;
        self.failed = None;
        match self.tx.take() {
            Some(tx) => Self::rollback_tx(tx, true).await,
            // No transaction, or its task died and dropping it rolled back.
            None => Ok(()),
        }
    }
}

#[async_trait]
impl LendableWriter for MySqlWriter {
    type Tx = Tx;

    async fn open_tx(&self) -> Result<Tx> {
        self.pool
            .begin()
            .await
            .map_err(|e| map_sqlx_error("begin", e))
    }

    async fn adopt(&mut self, mut tx: Tx, first: bool) -> Result<()> {
        self.failed = None;
        if first && let Err(e) = self.setup(&mut tx).await {
            self.tx = Some(tx);
            return Err(e);
        }
        self.exec = Some(Executor::spawn(tx));
        Ok(())
    }

    async fn give_back(&mut self) -> (Option<Tx>, Result<()>) {
        let r = self.join().await;
        self.failed = None;
        (self.tx.take(), r)
    }

    async fn commit_tx(tx: Tx) -> Result<()> {
        tx.commit().await.map_err(|e| map_sqlx_error("commit", e))
    }

    async fn rollback_tx(tx: Tx, _reusable: bool) -> Result<()> {
        // sqlx pools the connection again only after a clean rollback.
        tx.rollback()
            .await
            .map_err(|e| map_sqlx_error("rollback", e))
    }

    fn committed(&mut self) {
        // The table is emptied by the first transaction only (a streaming run commits again).
        self.spec.clear_table = false;
    }
}

/// Writers of several tables in one transaction on one connection.
pub fn table_set(pool: MySqlPool, specs: Vec<WriteSpec>) -> Box<dyn TableSetWriter> {
    let writers = specs
        .into_iter()
        .map(|spec| MySqlWriter::new(pool.clone(), spec))
        .collect();
    Box::new(TableSet::new(writers))
}

#[cfg(test)]
mod tests {
    //! Against the real server (127.0.0.1:3306, root, db test), like tests/mysql.rs.

    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use fdi_connector::{Connector, ConnectorFactory};
    use sqlx::mysql::MySqlPoolOptions;

    use super::*;

    const URL: &str = "mysql://root@127.0.0.1:3306/test";

    fn unique(p: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{p}_{}_{nanos}", std::process::id())
    }

    async fn scalar(sql: &str) -> i64 {
        let pool = MySqlPool::connect(URL).await.unwrap();
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("note", DataType::Utf8, true),
        ]));
        let id: ArrayRef = Arc::new(Int64Array::from_iter_values(ids.clone()));
        let n: ArrayRef = Arc::new(StringArray::from_iter_values(
            ids.map(|i| format!("n{i} {}", "x".repeat(200))),
        ));
        RecordBatch::try_new(schema, vec![id, n]).unwrap()
    }

    /// A failed statement in the pipeline fails the write or the commit and nothing lands;
    /// abort with statements queued rolls back; the (single) pooled connection stays usable.
    #[tokio::test]
    async fn failed_statement_never_commits() {
        let t = unique("c_my_pipe");
        let pool = MySqlPoolOptions::new()
            .max_connections(1)
            .connect(URL)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {t} (id bigint PRIMARY KEY, note text)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let c: Arc<dyn Connector> = crate::Factory
            .create(&serde_json::json!({"host": "127.0.0.1", "port": 3306, "user": "root", "database": "test"}))
            .unwrap();
        let columns = c.columns(&t).await.unwrap();
        // Small statements (set after begin, which sizes them to the server): many in flight.
        let writer = |clear: bool| {
            MySqlWriter::new(
                pool.clone(),
                WriteSpec {
                    table: t.clone(),
                    columns: columns.clone(),
                    mode: WriteMode::Insert,
                    clear_table: clear,
                },
            )
        };

        let mut w = writer(false);
        w.begin().await.unwrap();
        w.max_statement = 16 << 10;
        w.write(batch(0..1000)).await.unwrap();
        // A duplicate key in the middle of the stream.
        let mut failed = w.write(batch(500..501)).await.is_err();
        for k in 0..20 {
            if failed {
                break;
            }
            failed = w
                .write(batch(2000 + k * 100..2100 + k * 100))
                .await
                .is_err();
        }
        if !failed {
            failed = w.commit().await.is_err();
        }
        assert!(failed, "a failed statement must not commit");
        assert!(w.write(batch(9000..9001)).await.is_err());
        assert!(w.commit().await.is_err());
        w.abort().await.unwrap();
        assert_eq!(scalar(&format!("SELECT count(*) FROM {t}")).await, 0);

        // Abort with statements queued.
        let mut w = writer(false);
        w.begin().await.unwrap();
        w.max_statement = 16 << 10;
        for k in 0..10 {
            w.write(batch(k * 1000..k * 1000 + 1000)).await.unwrap();
        }
        w.abort().await.unwrap();
        assert_eq!(scalar(&format!("SELECT count(*) FROM {t}")).await, 0);

        // The same connection still works: a clean load commits.
        let mut w = writer(true);
        w.begin().await.unwrap();
        w.max_statement = 16 << 10;
        for k in 0..10 {
            w.write(batch(k * 1000..k * 1000 + 1000)).await.unwrap();
        }
        w.commit().await.unwrap();
        assert_eq!(scalar(&format!("SELECT count(*) FROM {t}")).await, 10_000);
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
            .execute(&pool)
            .await
            .unwrap();
    }

    /// A table set commits every table in one transaction: nothing is visible before `commit`,
    /// a failure in one table leaves every table as it was, and the set can go on afterwards
    /// (clearing a table in the first transaction only).
    #[tokio::test]
    async fn table_set_commits_all_tables_at_once_or_none() {
        let (a, b) = (unique("c_set_a"), unique("c_set_b"));
        let count = |t: String| async move { scalar(&format!("SELECT count(*) FROM {t}")).await };
        let create = |sql: String| async move {
            let pool = MySqlPool::connect(URL).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
        };
        let rows = batch;
        for t in [&a, &b] {
            create(format!(
                "CREATE TABLE {t} (id bigint PRIMARY KEY, note varchar(300))"
            ))
            .await;
        }
        let c: Arc<dyn Connector> = crate::Factory
            .create(&serde_json::json!({"host": "127.0.0.1", "port": 3306, "user": "root", "database": "test"}))
            .unwrap();
        let mut seed = c
            .table_set_writer(vec![WriteSpec {
                table: a.clone(),
                columns: c.columns(&a).await.unwrap(),
                mode: WriteMode::Insert,
                clear_table: false,
            }])
            .await
            .unwrap()
            .expect("a table set");
        seed.begin().await.unwrap();
        seed.write(0, rows(0..10)).await.unwrap();
        seed.commit().await.unwrap();
        assert_eq!(count(a.clone()).await, 10);

        let specs = vec![
            WriteSpec {
                table: a.clone(),
                columns: c.columns(&a).await.unwrap(),
                mode: WriteMode::Upsert {
                    keys: vec!["id".into()],
                    part_update: false,
                },
                clear_table: false,
            },
            WriteSpec {
                table: b.clone(),
                columns: c.columns(&b).await.unwrap(),
                mode: WriteMode::Insert,
                clear_table: true,
            },
        ];
        let mut set = c
            .table_set_writer(specs)
            .await
            .unwrap()
            .expect("a table set");
        set.begin().await.unwrap();
        set.write(0, rows(5..15)).await.unwrap();
        let keys = rows(0..2).project(&[0]).unwrap();
        assert_eq!(set.delete(0, keys).await.unwrap(), 2);
        set.write(1, rows(0..100)).await.unwrap();
        set.write(0, rows(20..25)).await.unwrap();
        assert_eq!(
            (count(a.clone()).await, count(b.clone()).await),
            (10, 0),
            "nothing visible before commit"
        );
        set.commit().await.unwrap();
        assert_eq!((count(a.clone()).await, count(b.clone()).await), (18, 100));

        // A duplicate key in b: neither table changes.
        set.begin().await.unwrap();
        set.write(0, rows(100..110)).await.unwrap();
        let failed = match set.write(1, rows(50..51)).await {
            Err(_) => true,
            Ok(_) => set.commit().await.is_err(),
        };
        assert!(failed, "a duplicate key must fail the set");
        assert!(set.commit().await.is_err(), "a failed set must not commit");
        set.abort().await.unwrap();
        assert_eq!((count(a.clone()).await, count(b.clone()).await), (18, 100));

        // The set goes on; b is not cleared again.
        set.begin().await.unwrap();
        set.prepare(1).await.unwrap();
        set.write(0, rows(100..110)).await.unwrap();
        set.commit().await.unwrap();
        assert_eq!((count(a.clone()).await, count(b.clone()).await), (28, 100));
        for t in [&a, &b] {
            create(format!("DROP TABLE {t}")).await;
        }
    }
}
