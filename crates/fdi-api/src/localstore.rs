//! A small metadata store used until `fdi-store` / `fdi-scheduler` publish their API: JSON
//! documents (apps, datasources, tasks, runs) in one table of a SQLite file or a PostgreSQL
//! database, datasource content encrypted at rest with AES-256-GCM.

use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;

use crate::error::{Error, Result};

#[derive(Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

/// The document kinds.
pub const APP: &str = "app";
pub const DATASOURCE: &str = "datasource";
pub const TASK: &str = "task";
pub const RUN: &str = "run";

#[derive(Clone)]
pub struct LocalStore {
    pool: Pool,
    cipher: Aes256Gcm,
}

fn db_err(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("metadata store: {e}"))
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS fdi_docs (
    kind TEXT NOT NULL, id TEXT NOT NULL, scope TEXT NOT NULL, parent TEXT NOT NULL,
    created BIGINT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, id))";

impl LocalStore {
    /// Open (creating when missing) `sqlite://PATH` or `postgres://...`; the secret key comes from
    /// `FDI_SECRET_KEY` (base64 of 32 bytes) or `<data_dir>/secret.key` (generated once).
    pub async fn open(url: &str, data_dir: &Path) -> Result<Self> {
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(8)
                .connect(url)
                .await
                .map_err(db_err)?;
            sqlx::query(CREATE).execute(&pool).await.map_err(db_err)?;
            sqlx::query("CREATE INDEX IF NOT EXISTS fdi_docs_parent ON fdi_docs (kind, parent)")
                .execute(&pool)
                .await
                .map_err(db_err)?;
            Pool::Pg(pool)
        } else {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or(url);
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(std::time::Duration::from_secs(10));
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await
                .map_err(db_err)?;
            sqlx::query(CREATE).execute(&pool).await.map_err(db_err)?;
            sqlx::query("CREATE INDEX IF NOT EXISTS fdi_docs_parent ON fdi_docs (kind, parent)")
                .execute(&pool)
                .await
                .map_err(db_err)?;
            Pool::Sqlite(pool)
        };
        Ok(Self {
            pool,
            cipher: Aes256Gcm::new(&load_key(data_dir)?),
        })
    }

    pub async fn insert<T: Serialize>(
        &self,
        kind: &str,
        id: &str,
        scope: &str,
        parent: &str,
        created: i64,
        doc: &T,
    ) -> Result<()> {
        let body = serde_json::to_string(doc).map_err(db_err)?;
        match &self.pool {
            Pool::Sqlite(p) => sqlx::query("INSERT INTO fdi_docs (kind, id, scope, parent, created, body) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(kind).bind(id).bind(scope).bind(parent).bind(created).bind(body).execute(p).await.map(|_| ()),
            Pool::Pg(p) => sqlx::query("INSERT INTO fdi_docs (kind, id, scope, parent, created, body) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(kind).bind(id).bind(scope).bind(parent).bind(created).bind(body).execute(p).await.map(|_| ()),
        }
        .map_err(db_err)
    }

    pub async fn update<T: Serialize>(&self, kind: &str, id: &str, doc: &T) -> Result<()> {
        let body = serde_json::to_string(doc).map_err(db_err)?;
        match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query("UPDATE fdi_docs SET body = ? WHERE kind = ? AND id = ?")
                    .bind(body)
                    .bind(kind)
                    .bind(id)
                    .execute(p)
                    .await
                    .map(|_| ())
            }
            Pool::Pg(p) => sqlx::query("UPDATE fdi_docs SET body = $1 WHERE kind = $2 AND id = $3")
                .bind(body)
                .bind(kind)
                .bind(id)
                .execute(p)
                .await
                .map(|_| ()),
        }
        .map_err(db_err)
    }

    pub async fn delete(&self, kind: &str, id: &str) -> Result<()> {
        match &self.pool {
            Pool::Sqlite(p) => sqlx::query("DELETE FROM fdi_docs WHERE kind = ? AND id = ?")
                .bind(kind)
                .bind(id)
                .execute(p)
                .await
                .map(|_| ()),
            Pool::Pg(p) => sqlx::query("DELETE FROM fdi_docs WHERE kind = $1 AND id = $2")
                .bind(kind)
                .bind(id)
                .execute(p)
                .await
                .map(|_| ()),
        }
        .map_err(db_err)
    }

    /// Delete every document of `kind` whose parent is `parent` (a task's runs).
    pub async fn delete_children(&self, kind: &str, parent: &str) -> Result<()> {
        match &self.pool {
            Pool::Sqlite(p) => sqlx::query("DELETE FROM fdi_docs WHERE kind = ? AND parent = ?")
                .bind(kind)
                .bind(parent)
                .execute(p)
                .await
                .map(|_| ()),
            Pool::Pg(p) => sqlx::query("DELETE FROM fdi_docs WHERE kind = $1 AND parent = $2")
                .bind(kind)
                .bind(parent)
                .execute(p)
                .await
                .map(|_| ()),
        }
        .map_err(db_err)
    }

    /// A document of `kind` in `scope`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        kind: &str,
        scope: &str,
        id: &str,
    ) -> Result<Option<T>> {
        let row = match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query("SELECT body FROM fdi_docs WHERE kind = ? AND id = ? AND scope = ?")
                    .bind(kind)
                    .bind(id)
                    .bind(scope)
                    .fetch_optional(p)
                    .await
                    .map_err(db_err)?
                    .map(|r| r.get::<String, _>(0))
            }
            Pool::Pg(p) => {
                sqlx::query("SELECT body FROM fdi_docs WHERE kind = $1 AND id = $2 AND scope = $3")
                    .bind(kind)
                    .bind(id)
                    .bind(scope)
                    .fetch_optional(p)
                    .await
                    .map_err(db_err)?
                    .map(|r| r.get::<String, _>(0))
            }
        };
        row.map(|b| serde_json::from_str(&b).map_err(db_err))
            .transpose()
    }

    /// Every document of `kind` in `scope`, oldest first.
    pub async fn list<T: DeserializeOwned>(&self, kind: &str, scope: &str) -> Result<Vec<T>> {
        let rows: Vec<String> = match &self.pool {
            Pool::Sqlite(p) => sqlx::query(
                "SELECT body FROM fdi_docs WHERE kind = ? AND scope = ? ORDER BY created, id",
            )
            .bind(kind)
            .bind(scope)
            .fetch_all(p)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|r| r.get(0))
            .collect(),
            Pool::Pg(p) => sqlx::query(
                "SELECT body FROM fdi_docs WHERE kind = $1 AND scope = $2 ORDER BY created, id",
            )
            .bind(kind)
            .bind(scope)
            .fetch_all(p)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|r| r.get(0))
            .collect(),
        };
        rows.iter()
            .map(|b| serde_json::from_str(b).map_err(db_err))
            .collect()
    }

    /// Every document of `kind` under `parent`, newest first.
    pub async fn children<T: DeserializeOwned>(&self, kind: &str, parent: &str) -> Result<Vec<T>> {
        let rows: Vec<String> = match &self.pool {
            Pool::Sqlite(p) => sqlx::query("SELECT body FROM fdi_docs WHERE kind = ? AND parent = ? ORDER BY created DESC, id DESC")
                .bind(kind).bind(parent).fetch_all(p).await.map_err(db_err)?.into_iter().map(|r| r.get(0)).collect(),
            Pool::Pg(p) => sqlx::query("SELECT body FROM fdi_docs WHERE kind = $1 AND parent = $2 ORDER BY created DESC, id DESC")
                .bind(kind).bind(parent).fetch_all(p).await.map_err(db_err)?.into_iter().map(|r| r.get(0)).collect(),
        };
        rows.iter()
            .map(|b| serde_json::from_str(b).map_err(db_err))
            .collect()
    }

    /// The newest document of `kind` under `parent`.
    pub async fn first_child<T: DeserializeOwned>(
        &self,
        kind: &str,
        parent: &str,
    ) -> Result<Option<T>> {
        let row: Option<String> = match &self.pool {
            Pool::Sqlite(p) => sqlx::query("SELECT body FROM fdi_docs WHERE kind = ? AND parent = ? ORDER BY created DESC, id DESC LIMIT 1")
                .bind(kind)
                .bind(parent)
                .fetch_optional(p)
                .await
                .map_err(db_err)?
                .map(|r| r.get(0)),
            Pool::Pg(p) => sqlx::query("SELECT body FROM fdi_docs WHERE kind = $1 AND parent = $2 ORDER BY created DESC, id DESC LIMIT 1")
                .bind(kind)
                .bind(parent)
                .fetch_optional(p)
                .await
                .map_err(db_err)?
                .map(|r| r.get(0)),
        };
        row.map(|b| serde_json::from_str(&b).map_err(db_err))
            .transpose()
    }

    /// Every document of `kind` (crash recovery).
    pub async fn all<T: DeserializeOwned>(&self, kind: &str) -> Result<Vec<T>> {
        let rows: Vec<String> = match &self.pool {
            Pool::Sqlite(p) => sqlx::query("SELECT body FROM fdi_docs WHERE kind = ?")
                .bind(kind)
                .fetch_all(p)
                .await
                .map_err(db_err)?
                .into_iter()
                .map(|r| r.get(0))
                .collect(),
            Pool::Pg(p) => sqlx::query("SELECT body FROM fdi_docs WHERE kind = $1")
                .bind(kind)
                .fetch_all(p)
                .await
                .map_err(db_err)?
                .into_iter()
                .map(|r| r.get(0))
                .collect(),
        };
        rows.iter()
            .map(|b| serde_json::from_str(b).map_err(db_err))
            .collect()
    }

    /// Encrypt a JSON value: base64(nonce || ciphertext).
    pub fn seal(&self, v: &serde_json::Value) -> Result<String> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(&nonce, v.to_string().as_bytes())
            .map_err(|_| Error::internal("encrypt"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(B64.encode(out))
    }

    pub fn open_sealed(&self, s: &str) -> Result<serde_json::Value> {
        let raw = B64
            .decode(s)
            .map_err(|_| Error::internal("sealed content is not base64"))?;
        if raw.len() < 12 {
            return Err(Error::internal("sealed content too short"));
        }
        let (n, ct) = raw.split_at(12);
        let pt = self.cipher.decrypt(Nonce::from_slice(n), ct).map_err(|_| {
            Error::internal("cannot decrypt datasource content (was the secret key changed?)")
        })?;
        serde_json::from_slice(&pt).map_err(db_err)
    }
}

fn load_key(data_dir: &Path) -> Result<Key<Aes256Gcm>> {
    let decode = |s: &str, from: &str| -> Result<Key<Aes256Gcm>> {
        let b = B64
            .decode(s.trim())
            .map_err(|_| Error::internal(format!("{from}: not base64")))?;
        if b.len() != 32 {
            return Err(Error::internal(format!(
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
        .map_err(|e| Error::internal(format!("write {}: {e}", path.display())))?;
    Ok(key)
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
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
