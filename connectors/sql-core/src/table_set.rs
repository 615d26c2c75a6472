//! Several tables' writers sharing one transaction ([`TableSetWriter`]).
//!
//! Each SQL writer already runs its own transaction on one connection it takes and gives back
//! around every statement. [`TableSet`] opens one transaction and lends it to the writer of the
//! table a call addresses, taking it back (every pending statement finished) before the next
//! call; `commit` then commits that one transaction.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use fdi_connector::{ConnectorError, Result, SinkWriter, TableSetWriter, WriteStats};

/// A writer whose transaction can be lent to it and taken back.
#[async_trait]
pub trait LendableWriter: SinkWriter {
    /// The open transaction (a connection inside `BEGIN`).
    type Tx: Send;
    /// Open a transaction on a connection of this writer's pool.
    async fn open_tx(&self) -> Result<Self::Tx>;
    /// Take the transaction; with `first`, run the per-transaction setup of this table (clear
    /// it in the first transaction, staging tables). On failure the writer keeps the transaction
    /// (for [`LendableWriter::give_back`]).
    async fn adopt(&mut self, tx: Self::Tx, first: bool) -> Result<()>;
    /// Finish what is pending and hand the transaction back (None when it was lost), with the
    /// first failure of the pending work.
    async fn give_back(&mut self) -> (Option<Self::Tx>, Result<()>);
    async fn commit_tx(tx: Self::Tx) -> Result<()>;
    /// Roll back; `reusable`: no statement failed, the connection may be pooled again.
    async fn rollback_tx(tx: Self::Tx, reusable: bool) -> Result<()>;
    /// A transaction this writer took part in committed (the table is no longer to be cleared).
    fn committed(&mut self);
}

pub struct TableSet<W: LendableWriter> {
    writers: Vec<W>,
    tx: Option<W::Tx>,
    /// Tables whose per-transaction setup ran in the open transaction.
    entered: Vec<bool>,
    /// A call failed in this transaction: it can only be rolled back.
    failed: bool,
}

impl<W: LendableWriter> TableSet<W> {
    pub fn new(writers: Vec<W>) -> Self {
        let n = writers.len();
        Self {
            writers,
            tx: None,
            entered: vec![false; n],
            failed: false,
        }
    }

    /// Lend the transaction to table `i`'s writer.
    async fn enter(&mut self, i: usize) -> Result<&mut W> {
        if self.failed {
            return Err(ConnectorError::external(
                "the transaction failed earlier and can only be rolled back",
            ));
        }
        if i >= self.writers.len() {
            return Err(ConnectorError::internal(format!("no table {i} in the set")));
        }
        let tx = self
            .tx
            .take()
            .ok_or_else(|| ConnectorError::internal("table set used outside begin/commit"))?;
        let first = !std::mem::replace(&mut self.entered[i], true);
        let w = &mut self.writers[i];
        if let Err(e) = w.adopt(tx, first).await {
            self.failed = true;
            let (tx, _) = w.give_back().await;
            self.tx = tx;
            return Err(e);
        }
        Ok(&mut self.writers[i])
    }

    /// Take the transaction back from table `i`'s writer; `r` is what the call returned.
    async fn leave<T>(&mut self, i: usize, r: Result<T>) -> Result<T> {
        let (tx, finished) = self.writers[i].give_back().await;
        self.tx = tx;
        if r.is_err() || finished.is_err() || self.tx.is_none() {
            self.failed = true;
        }
        let v = r?;
        finished?;
        if self.tx.is_none() {
            return Err(ConnectorError::internal("the transaction was lost"));
        }
        Ok(v)
    }
}

#[async_trait]
impl<W: LendableWriter + 'static> TableSetWriter for TableSet<W>
where
    W::Tx: 'static,
{
    async fn begin(&mut self) -> Result<()> {
        if self.tx.is_some() {
            return Err(ConnectorError::internal("begin called twice"));
        }
        let first = self
            .writers
            .first()
            .ok_or_else(|| ConnectorError::internal("a table set without tables"))?;
        self.tx = Some(first.open_tx().await?);
        self.entered.iter_mut().for_each(|e| *e = false);
        self.failed = false;
        Ok(())
    }

    async fn prepare(&mut self, table: usize) -> Result<()> {
        if self.entered.get(table).copied().unwrap_or(false) {
            return Ok(());
        }
        self.enter(table).await?;
        self.leave(table, Ok(())).await
    }

    async fn write(&mut self, table: usize, batch: RecordBatch) -> Result<WriteStats> {
        let w = self.enter(table).await?;
        let r = w.write(batch).await;
        self.leave(table, r).await
    }

    async fn delete(&mut self, table: usize, keys: RecordBatch) -> Result<u64> {
        let w = self.enter(table).await?;
        let r = w.delete(keys).await;
        self.leave(table, r).await
    }

    async fn commit(&mut self) -> Result<()> {
        if self.failed {
            return Err(ConnectorError::external(
                "the transaction failed earlier and can only be rolled back",
            ));
        }
        let tx = self
            .tx
            .take()
            .ok_or_else(|| ConnectorError::internal("commit without begin"))?;
        W::commit_tx(tx).await?;
        for (w, entered) in self.writers.iter_mut().zip(&self.entered) {
            if *entered {
                w.committed();
            }
        }
        Ok(())
    }

    async fn abort(&mut self) -> Result<()> {
        let reusable = !std::mem::take(&mut self.failed);
        match self.tx.take() {
            Some(tx) => W::rollback_tx(tx, reusable).await,
            None => Ok(()),
        }
    }
}
