//! The metadata store on sqlx: an SQLite file by default, PostgreSQL for several nodes.
//!
//! One set of migrations serves both back ends (portable types, `$N` parameters, which SQLite
//! also accepts). What lives here:
//! - documents (apps, datasources, tasks, runs) as JSON bodies keyed by kind + id, with the
//!   columns the API filters on (scope = project/instance, parent = owning task);
//! - datasource secrets sealed with AES-256-GCM ([`Store::seal`]);
//! - the scheduler's tables: run claims with leases ([`Claim`]), dispatch plans with their
//!   persisted next fire time ([`PlanRow`]), task enable status and incremental watermarks.

use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("metadata store: bad document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Secret(String),
    /// The scope already has an app / datasource / task of that name.
    #[error("a {0} with that name already exists")]
    NameTaken(&'static str),
}

impl StoreError {
    /// The store cannot be reached right now (connection refused or lost, no connection within
    /// the acquire timeout): worth answering "unavailable, retry" rather than "internal error".
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Db(
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Protocol(_)
            )
        )
    }
}

/// How long a request waits for a store connection before the store counts as unavailable.
pub const STORE_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

/// Run the same query builder against whichever pool the store has; its latency goes to the
/// store-query histogram (`fdi_store_query_duration_seconds`, one sample per use of this macro).
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {{
        let started = std::time::Instant::now();
        let result = match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Pg($p) => $body,
        };
        fdi_metrics::store_query(started.elapsed());
        result
    }};
}

mod catalog;
mod cdc;
mod migrate;
mod runs;
mod summaries;

pub use catalog::{AppRow, CatalogTable, DatasourceQuery, DatasourceRow, Scope, TaskRow};
pub use cdc::MappingRow;
pub use runs::{RunCounts, RunFilter, RunView, StepView, SubStepView, Trigger};
pub use summaries::{DatasourceBrief, RunBrief, TaskQuery, TaskSummary};

/// The claim that makes one node the runner of a task's active run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub task_id: String,
    pub run_id: String,
    pub node_id: String,
    pub lease_until: i64,
    pub cancel_requested: bool,
}

/// A stored dispatch plan: its JSON body (owned by the scheduler) and the next planned instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub dispatch_id: String,
    pub task_id: String,
    pub body: String,
    pub next_fire: Option<i64>,
    pub created: i64,
}

/// The file of an SQLite store URL (`sqlite://PATH`, `sqlite:PATH` or a bare path); `None` for
/// a PostgreSQL store.
pub fn sqlite_store_file(url: &str) -> Option<std::path::PathBuf> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return None;
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    Some(std::path::PathBuf::from(
        path.split('?').next().unwrap_or(path),
    ))
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    cipher: Aes256Gcm,
}

impl Store {
    /// Open (creating when missing) `sqlite://PATH` (or a bare path) or `postgres://...`, and run
    /// the migrations. The secret key comes from `FDI_SECRET_KEY` (base64 of 32 bytes) or
    /// `<data_dir>/secret.key` (generated once, mode 0600).
    pub async fn open(url: &str, data_dir: &Path) -> Result<Self> {
        use sqlx::ConnectOptions;
        let pool = if let Some(path) = sqlite_store_file(url) {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(10))
                .disable_statement_logging();
            Pool::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(opts)
                    .await?,
            )
        } else {
            let opts = url
                .parse::<sqlx::postgres::PgConnectOptions>()?
                .disable_statement_logging();
            Pool::Pg(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(20)
                    .acquire_timeout(STORE_ACQUIRE_TIMEOUT)
                    .connect_with(opts)
                    .await?,
            )
        };
        let store = Self {
            pool,
            cipher: Aes256Gcm::new(&load_key(data_dir)?),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// One trivial round trip: does the store answer?
    pub async fn ping(&self) -> Result<()> {
        on_pool!(&self.pool, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    // ---- documents ------------------------------------------------------------------------

    pub async fn insert<T: Serialize>(
        &self,
        kind: &str,
        id: &str,
        scope: &str,
        parent: &str,
        created: i64,
        doc: &T,
    ) -> Result<()> {
        let body = serde_json::to_string(doc)?;
        on_pool!(&self.pool, p => sqlx::query(
            "INSERT INTO fdi_docs (kind, id, scope, parent, created, body) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(kind).bind(id).bind(scope).bind(parent).bind(created).bind(&body)
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn update<T: Serialize>(&self, kind: &str, id: &str, doc: &T) -> Result<()> {
        let body = serde_json::to_string(doc)?;
        on_pool!(&self.pool, p => sqlx::query("UPDATE fdi_docs SET body = $1 WHERE kind = $2 AND id = $3")
            .bind(&body).bind(kind).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn delete(&self, kind: &str, id: &str) -> Result<()> {
        on_pool!(&self.pool, p => sqlx::query("DELETE FROM fdi_docs WHERE kind = $1 AND id = $2")
            .bind(kind).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Delete every document of `kind` whose parent is `parent` (a task's runs).
    pub async fn delete_children(&self, kind: &str, parent: &str) -> Result<()> {
        on_pool!(&self.pool, p => sqlx::query("DELETE FROM fdi_docs WHERE kind = $1 AND parent = $2")
            .bind(kind).bind(parent).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A document of `kind` in `scope`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        kind: &str,
        scope: &str,
        id: &str,
    ) -> Result<Option<T>> {
        let body: Option<String> = on_pool!(&self.pool, p => sqlx::query(
            "SELECT body FROM fdi_docs WHERE kind = $1 AND id = $2 AND scope = $3")
            .bind(kind).bind(id).bind(scope).fetch_optional(p).await?.map(|r| r.get(0)));
        Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
    }

    /// A document of `kind` whatever its scope, with that scope.
    pub async fn get_by_id<T: DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<(String, T)>> {
        let row: Option<(String, String)> = on_pool!(&self.pool, p => sqlx::query(
            "SELECT scope, body FROM fdi_docs WHERE kind = $1 AND id = $2")
            .bind(kind).bind(id).fetch_optional(p).await?.map(|r| (r.get(0), r.get(1))));
        row.map(|(scope, b)| Ok((scope, serde_json::from_str(&b)?)))
            .transpose()
    }

    /// Every document of `kind` in `scope`, oldest first.
    pub async fn list<T: DeserializeOwned>(&self, kind: &str, scope: &str) -> Result<Vec<T>> {
        let rows: Vec<String> = on_pool!(&self.pool, p => sqlx::query(
            "SELECT body FROM fdi_docs WHERE kind = $1 AND scope = $2 ORDER BY created, id")
            .bind(kind).bind(scope).fetch_all(p).await?.into_iter().map(|r| r.get(0)).collect());
        decode_all(&rows)
    }

    /// Every document of `kind` under `parent`, newest first.
    pub async fn children<T: DeserializeOwned>(&self, kind: &str, parent: &str) -> Result<Vec<T>> {
        let rows: Vec<String> = on_pool!(&self.pool, p => sqlx::query(
            "SELECT body FROM fdi_docs WHERE kind = $1 AND parent = $2 ORDER BY created DESC, id DESC")
            .bind(kind).bind(parent).fetch_all(p).await?.into_iter().map(|r| r.get(0)).collect());
        decode_all(&rows)
    }

    /// The newest document of `kind` under `parent`.
    pub async fn first_child<T: DeserializeOwned>(
        &self,
        kind: &str,
        parent: &str,
    ) -> Result<Option<T>> {
        let body: Option<String> = on_pool!(&self.pool, p => sqlx::query(
            "SELECT body FROM fdi_docs WHERE kind = $1 AND parent = $2 ORDER BY created DESC, id DESC LIMIT 1")
            .bind(kind).bind(parent).fetch_optional(p).await?.map(|r| r.get(0)));
        Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
    }

    /// Every document of `kind` (crash recovery).
    pub async fn all<T: DeserializeOwned>(&self, kind: &str) -> Result<Vec<T>> {
        let rows: Vec<String> = on_pool!(&self.pool, p => sqlx::query(
            "SELECT body FROM fdi_docs WHERE kind = $1")
            .bind(kind).fetch_all(p).await?.into_iter().map(|r| r.get(0)).collect());
        decode_all(&rows)
    }

    // ---- run claims (one active run per task, one node per run) ----------------------------

    /// Claim `task_id` for a new run on `node_id` until `lease_until`; false when the task already
    /// has an active run (on any node) whose lease still holds.
    pub async fn try_claim(
        &self,
        task_id: &str,
        run_id: &str,
        node_id: &str,
        lease_until: i64,
    ) -> Result<bool> {
        let r = on_pool!(&self.pool, p => sqlx::query(
            "INSERT INTO fdi_claims (task_id, run_id, node_id, lease_until, cancel_requested)
             VALUES ($1, $2, $3, $4, 0) ON CONFLICT (task_id) DO NOTHING")
            .bind(task_id).bind(run_id).bind(node_id).bind(lease_until).execute(p).await?.rows_affected());
        Ok(r == 1)
    }

    /// The task's active claim, if any.
    pub async fn claim_of(&self, task_id: &str) -> Result<Option<Claim>> {
        let row = on_pool!(&self.pool, p => sqlx::query(
            "SELECT task_id, run_id, node_id, lease_until, cancel_requested FROM fdi_claims WHERE task_id = $1")
            .bind(task_id).fetch_optional(p).await?.map(|r| claim_from(&r)));
        Ok(row)
    }

    /// Drop the claim of a run that has ended (recorded its end); false if it was not held.
    pub async fn release_claim(&self, task_id: &str, run_id: &str) -> Result<bool> {
        let n = on_pool!(&self.pool, p => sqlx::query(
            "DELETE FROM fdi_claims WHERE task_id = $1 AND run_id = $2")
            .bind(task_id).bind(run_id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Extend the leases of every claim `node_id` holds; returns the task ids of those claims
    /// whose run someone asked to terminate.
    pub async fn renew_claims(&self, node_id: &str, lease_until: i64) -> Result<Vec<String>> {
        on_pool!(&self.pool, p => sqlx::query("UPDATE fdi_claims SET lease_until = $1 WHERE node_id = $2")
            .bind(lease_until).bind(node_id).execute(p).await.map(|r| r.rows_affected()))?;
        let ids = on_pool!(&self.pool, p => sqlx::query(
            "SELECT task_id FROM fdi_claims WHERE node_id = $1 AND cancel_requested = 1")
            .bind(node_id).fetch_all(p).await?.into_iter().map(|r| r.get::<String, _>(0)).collect());
        Ok(ids)
    }

    /// Ask the node running the task's active run to cancel it; false when there is none.
    pub async fn request_cancel(&self, task_id: &str) -> Result<bool> {
        let n = on_pool!(&self.pool, p => sqlx::query(
            "UPDATE fdi_claims SET cancel_requested = 1 WHERE task_id = $1")
            .bind(task_id).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Claims whose lease ran out before `now` (their node died), or that `node_id` held in a
    /// previous life (this process restarted with the same node id).
    pub async fn orphaned_claims(
        &self,
        now: i64,
        previous_life_of: Option<&str>,
    ) -> Result<Vec<Claim>> {
        let rows = on_pool!(&self.pool, p => sqlx::query(
            "SELECT task_id, run_id, node_id, lease_until, cancel_requested FROM fdi_claims
             WHERE lease_until < $1 OR node_id = $2")
            .bind(now).bind(previous_life_of).fetch_all(p).await?.iter().map(claim_from).collect());
        Ok(rows)
    }

    // ---- dispatch plans -------------------------------------------------------------------

    pub async fn insert_plan(&self, plan: &PlanRow) -> Result<()> {
        on_pool!(&self.pool, p => sqlx::query(
            "INSERT INTO fdi_plans (dispatch_id, task_id, body, next_fire, created) VALUES ($1, $2, $3, $4, $5)")
            .bind(&plan.dispatch_id).bind(&plan.task_id).bind(&plan.body).bind(plan.next_fire).bind(plan.created)
            .execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Replace a plan's body and next fire time.
    pub async fn update_plan(&self, plan: &PlanRow) -> Result<()> {
        on_pool!(&self.pool, p => sqlx::query(
            "UPDATE fdi_plans SET body = $1, next_fire = $2 WHERE dispatch_id = $3")
            .bind(&plan.body).bind(plan.next_fire).bind(&plan.dispatch_id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn plans_of_task(&self, task_id: &str) -> Result<Vec<PlanRow>> {
        let rows = on_pool!(&self.pool, p => sqlx::query(
            "SELECT dispatch_id, task_id, body, next_fire, created FROM fdi_plans WHERE task_id = $1 ORDER BY created, dispatch_id")
            .bind(task_id).fetch_all(p).await?.iter().map(plan_from).collect());
        Ok(rows)
    }

    /// Plans of started tasks whose next fire is at or before `until`, earliest first.
    pub async fn due_plans(&self, until: i64, limit: i64) -> Result<Vec<PlanRow>> {
        let rows = on_pool!(&self.pool, p => sqlx::query(
            "SELECT p.dispatch_id, p.task_id, p.body, p.next_fire, p.created FROM fdi_plans p
             JOIN fdi_task_status s ON s.task_id = p.task_id
             WHERE s.status = 1 AND p.next_fire IS NOT NULL AND p.next_fire <= $1
             ORDER BY p.next_fire LIMIT $2")
            .bind(until).bind(limit).fetch_all(p).await?.iter().map(plan_from).collect());
        Ok(rows)
    }

    /// The earliest next fire of any started task's plan.
    pub async fn earliest_fire(&self) -> Result<Option<i64>> {
        let v: Option<i64> = on_pool!(&self.pool, p => sqlx::query(
            "SELECT MIN(p.next_fire) FROM fdi_plans p JOIN fdi_task_status s ON s.task_id = p.task_id
             WHERE s.status = 1")
            .fetch_one(p).await?.get(0));
        Ok(v)
    }

    /// Move a plan's next fire from `expected` to `next` only if no other node did it first and
    /// its task is still started: true means this caller owns the fire at `expected`.
    pub async fn advance_plan(
        &self,
        dispatch_id: &str,
        expected: i64,
        next: Option<i64>,
    ) -> Result<bool> {
        let n = on_pool!(&self.pool, p => sqlx::query(
            "UPDATE fdi_plans SET next_fire = $1 WHERE dispatch_id = $2 AND next_fire = $3
             AND EXISTS (SELECT 1 FROM fdi_task_status s WHERE s.task_id = fdi_plans.task_id AND s.status = 1)")
            .bind(next).bind(dispatch_id).bind(expected).execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    // ---- task status and watermarks -------------------------------------------------------

    /// 1 = started, 0 = stopped (the default for a task never started); `realtime` marks the
    /// tasks the realtime supervisor keeps running.
    pub async fn set_task_status(
        &self,
        task_id: &str,
        status: i32,
        realtime: bool,
        now: i64,
    ) -> Result<()> {
        on_pool!(&self.pool, p => sqlx::query(
            "INSERT INTO fdi_task_status (task_id, status, realtime, updated) VALUES ($1, $2, $3, $4)
             ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, realtime = excluded.realtime,
             updated = excluded.updated")
            .bind(task_id).bind(status).bind(i32::from(realtime)).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn task_status(&self, task_id: &str) -> Result<i32> {
        let v: Option<i32> = on_pool!(&self.pool, p => sqlx::query(
            "SELECT status FROM fdi_task_status WHERE task_id = $1")
            .bind(task_id).fetch_optional(p).await?.map(|r| r.get(0)));
        Ok(v.unwrap_or(0))
    }

    /// Ids of every started realtime task.
    pub async fn started_realtime_tasks(&self) -> Result<Vec<String>> {
        let v = on_pool!(&self.pool, p => sqlx::query(
            "SELECT task_id FROM fdi_task_status WHERE status = 1 AND realtime = 1 ORDER BY task_id")
            .fetch_all(p).await?.into_iter().map(|r| r.get::<String, _>(0)).collect());
        Ok(v)
    }

    pub async fn delete_task_state(&self, task_id: &str) -> Result<()> {
        for sql in [
            "DELETE FROM fdi_task_status WHERE task_id = $1",
            "DELETE FROM fdi_watermarks WHERE task_id = $1",
            "DELETE FROM fdi_plans WHERE task_id = $1",
        ] {
            on_pool!(&self.pool, p => sqlx::query(sql).bind(task_id).execute(p).await.map(|r| r.rows_affected()))?;
        }
        Ok(())
    }

    /// The end of the last committed incremental window.
    pub async fn watermark(&self, task_id: &str) -> Result<Option<i64>> {
        let v = on_pool!(&self.pool, p => sqlx::query(
            "SELECT end_ms FROM fdi_watermarks WHERE task_id = $1")
            .bind(task_id).fetch_optional(p).await?.map(|r| r.get::<i64, _>(0)));
        Ok(v)
    }

    pub async fn set_watermark(&self, task_id: &str, end_ms: i64, now: i64) -> Result<()> {
        on_pool!(&self.pool, p => sqlx::query(
            "INSERT INTO fdi_watermarks (task_id, end_ms, updated) VALUES ($1, $2, $3)
             ON CONFLICT (task_id) DO UPDATE SET end_ms = excluded.end_ms, updated = excluded.updated")
            .bind(task_id).bind(end_ms).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn clear_watermark(&self, task_id: &str) -> Result<()> {
        on_pool!(&self.pool, p => sqlx::query("DELETE FROM fdi_watermarks WHERE task_id = $1")
            .bind(task_id).execute(p).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    // ---- secrets --------------------------------------------------------------------------

    /// Encrypt a JSON value: base64(nonce || ciphertext).
    pub fn seal(&self, v: &serde_json::Value) -> Result<String> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(&nonce, v.to_string().as_bytes())
            .map_err(|_| StoreError::Secret("cannot encrypt datasource content".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(B64.encode(out))
    }

    pub fn open_sealed(&self, s: &str) -> Result<serde_json::Value> {
        let raw = B64
            .decode(s)
            .map_err(|_| StoreError::Secret("sealed content is not base64".into()))?;
        if raw.len() < 12 {
            return Err(StoreError::Secret("sealed content too short".into()));
        }
        let (n, ct) = raw.split_at(12);
        let pt = self.cipher.decrypt(Nonce::from_slice(n), ct).map_err(|_| {
            StoreError::Secret(
                "cannot decrypt datasource content (was the secret key changed?)".into(),
            )
        })?;
        Ok(serde_json::from_slice(&pt)?)
    }
}

fn decode_all<T: DeserializeOwned>(rows: &[String]) -> Result<Vec<T>> {
    rows.iter()
        .map(|b| serde_json::from_str(b).map_err(StoreError::from))
        .collect()
}

fn claim_from<R: Row>(r: &R) -> Claim
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i32: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Claim {
        task_id: r.get("task_id"),
        run_id: r.get("run_id"),
        node_id: r.get("node_id"),
        lease_until: r.get("lease_until"),
        cancel_requested: r.get::<i32, _>("cancel_requested") != 0,
    }
}

fn plan_from<R: Row>(r: &R) -> PlanRow
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    PlanRow {
        dispatch_id: r.get("dispatch_id"),
        task_id: r.get("task_id"),
        body: r.get("body"),
        next_fire: r.get("next_fire"),
        created: r.get("created"),
    }
}

fn load_key(data_dir: &Path) -> Result<Key<Aes256Gcm>> {
    let decode = |s: &str, from: &str| -> Result<Key<Aes256Gcm>> {
        let b = B64
            .decode(s.trim())
            .map_err(|_| StoreError::Secret(format!("{from}: not base64")))?;
        if b.len() != 32 {
            return Err(StoreError::Secret(format!(
                "{from}: the key must be 32 bytes (base64)"
            )));
        }
        Ok(*Key::<Aes256Gcm>::from_slice(&b))
    };
    if let Ok(k) = std::env::var("FDI_SECRET_KEY")
        && !k.trim().is_empty()
    {
        return decode(&k, "FDI_SECRET_KEY");
    }
    let path = data_dir.join("secret.key");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return decode(&s, &path.display().to_string());
    }
    let key = Aes256Gcm::generate_key(OsRng);
    write_private(&path, &B64.encode(key))
        .map_err(|e| StoreError::Secret(format!("write {}: {e}", path.display())))?;
    Ok(key)
}

/// Write a new file readable by its owner only (0600).
pub fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(content.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite_store() -> (Store, tempdir::Dir) {
        let dir = tempdir::Dir::new();
        let url = format!("sqlite://{}", dir.0.join("meta.db").display());
        (Store::open(&url, &dir.0).await.unwrap(), dir)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let p = std::env::temp_dir().join(format!("fdi-store-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[tokio::test]
    async fn claims_are_exclusive_and_cancel_reaches_the_owner() {
        let (s, _d) = sqlite_store().await;
        assert!(s.try_claim("t1", "r1", "n1", 1_000).await.unwrap());
        assert!(!s.try_claim("t1", "r2", "n2", 1_000).await.unwrap());
        assert!(s.request_cancel("t1").await.unwrap());
        assert!(!s.request_cancel("t2").await.unwrap());
        assert_eq!(s.renew_claims("n1", 5_000).await.unwrap(), vec!["t1"]);
        assert!(s.renew_claims("n2", 5_000).await.unwrap().is_empty());
        assert_eq!(s.claim_of("t1").await.unwrap().unwrap().lease_until, 5_000);
        assert!(s.orphaned_claims(4_000, None).await.unwrap().is_empty());
        assert_eq!(s.orphaned_claims(6_000, Some("n9")).await.unwrap().len(), 1);
        assert_eq!(s.orphaned_claims(0, Some("n1")).await.unwrap().len(), 1);
        assert!(!s.release_claim("t1", "r2").await.unwrap());
        assert!(s.release_claim("t1", "r1").await.unwrap());
        assert!(s.try_claim("t1", "r3", "n2", 1_000).await.unwrap());
    }

    #[tokio::test]
    async fn plans_fire_once_per_instant_and_only_for_started_tasks() {
        let (s, _d) = sqlite_store().await;
        let plan = PlanRow {
            dispatch_id: "d1".into(),
            task_id: "t1".into(),
            body: "{}".into(),
            next_fire: Some(100),
            created: 1,
        };
        s.insert_plan(&plan).await.unwrap();
        assert!(
            s.due_plans(200, 10).await.unwrap().is_empty(),
            "task not started"
        );
        s.set_task_status("t1", 1, false, 5).await.unwrap();
        assert_eq!(s.due_plans(200, 10).await.unwrap(), vec![plan.clone()]);
        assert_eq!(s.earliest_fire().await.unwrap(), Some(100));
        assert!(s.advance_plan("d1", 100, Some(300)).await.unwrap());
        assert!(
            !s.advance_plan("d1", 100, Some(300)).await.unwrap(),
            "second owner"
        );
        assert!(s.due_plans(200, 10).await.unwrap().is_empty());
        s.set_task_status("t1", 0, false, 6).await.unwrap();
        assert_eq!(s.task_status("t1").await.unwrap(), 0);
        assert!(s.due_plans(1_000, 10).await.unwrap().is_empty());
        s.set_watermark("t1", 42, 7).await.unwrap();
        s.set_watermark("t1", 43, 8).await.unwrap();
        assert_eq!(s.watermark("t1").await.unwrap(), Some(43));
    }

    #[tokio::test]
    async fn sealed_content_round_trips_and_is_not_clear_text() {
        let (s, _d) = sqlite_store().await;
        let v = serde_json::json!({"password": "hunter2-secret"});
        let sealed = s.seal(&v).unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(s.open_sealed(&sealed).unwrap(), v);
    }
}
