//! The replication connection (pg_walstream's pure-Rust `PgReplicationConnection`, rustls on
//! aws-lc-rs): how to reach it, and its blocking commands run off the async threads.
//!
//! pg_walstream 0.9 runs commands (`connect`, `CREATE_REPLICATION_SLOT`, `START_REPLICATION`,
//! `SET`) synchronously; only the COPY stream and the status updates are async. Each blocking
//! command runs on tokio's blocking pool with the connection moved there and back, so no
//! runtime thread is blocked and a cancelled run does not wait for a command that waits on
//! the server (`CREATE_REPLICATION_SLOT` waits for every running transaction to end).

use std::fmt;

use fdi_connector::{ConnectorError, Result};
use pg_walstream::{PgReplicationConnection, ReplicationError};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio_util::sync::CancellationToken;

/// Where the replication connection goes: a libpq-style `key=value` string with
/// `replication=database` (it holds the password: never printed).
#[derive(Clone)]
pub struct ReplicationTarget {
    conninfo: std::result::Result<String, String>,
}

impl fmt::Debug for ReplicationTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplicationTarget(..)")
    }
}

impl ReplicationTarget {
    /// From the datasource's connect options; the password is not readable back from sqlx's
    /// options, so it comes along (content.password, or the URL's).
    pub fn new(o: &PgConnectOptions, password: Option<&str>, sslrootcert: Option<&str>) -> Self {
        if o.get_socket().is_some() {
            return Self {
                conninfo: Err("change capture needs a TCP host, not a Unix socket".to_string()),
            };
        }
        let mut s = String::new();
        let mut kv = |k: &str, v: &str| {
            s.push_str(k);
            s.push_str("='");
            // pg_walstream's parser folds a doubled quote; it has no backslash escapes.
            s.push_str(&v.replace('\'', "''"));
            s.push_str("' ");
        };
        kv("host", o.get_host());
        kv("port", &o.get_port().to_string());
        kv("user", o.get_username());
        if let Some(p) = password {
            kv("password", p);
        }
        kv("dbname", o.get_database().unwrap_or(o.get_username()));
        kv(
            "sslmode",
            match o.get_ssl_mode() {
                PgSslMode::Disable => "disable",
                PgSslMode::Allow => "allow",
                PgSslMode::Prefer => "prefer",
                PgSslMode::Require => "require",
                PgSslMode::VerifyCa => "verify-ca",
                PgSslMode::VerifyFull => "verify-full",
            },
        );
        if let Some(r) = sslrootcert {
            kv("sslrootcert", r);
        }
        kv("connect_timeout", "15");
        kv("replication", "database");
        Self {
            conninfo: Ok(s.trim_end().to_string()),
        }
    }

    /// Open a replication connection (cancellable).
    pub async fn connect(&self, cancel: &CancellationToken) -> Result<ReplConn> {
        let conninfo = self.conninfo.clone().map_err(ConnectorError::user)?;
        let task = tokio::task::spawn_blocking(move || PgReplicationConnection::connect(&conninfo));
        let conn = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ConnectorError::cancelled()),
            r = task => r.map_err(|e| ConnectorError::internal(format!("replication connect: {e}")))?,
        };
        conn.map(|c| ReplConn(Some(c)))
            .map_err(|e| map_replication_error("replication connection", e))
    }
}

/// The password of a `postgres://user:password@host/...` URL, percent-decoded.
pub fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, pw) = userinfo.split_once(':')?;
    Some(fdi_connector::content::percent_decode(pw))
}

/// An open replication connection. The `Option` lets a blocking command take it to the blocking
/// pool and bring it back; it is `None` only after a cancelled command (the connection is then
/// closed by that command's thread when it ends).
pub struct ReplConn(Option<PgReplicationConnection>);

impl ReplConn {
    fn get(&mut self) -> Result<&mut PgReplicationConnection> {
        self.0
            .as_mut()
            .ok_or_else(|| ConnectorError::internal("replication connection already gone"))
    }

    /// Run a blocking command on the blocking pool; cancelling leaves it to finish there (then
    /// `after_cancel` runs on the connection before it closes, e.g. to drop a slot just made).
    pub async fn blocking<T: Send + 'static>(
        &mut self,
        cancel: &CancellationToken,
        what: &'static str,
        f: impl FnOnce(&mut PgReplicationConnection) -> std::result::Result<T, ReplicationError>
        + Send
        + 'static,
        after_cancel: impl FnOnce(&mut PgReplicationConnection, &T) + Send + 'static,
    ) -> Result<T> {
        let mut conn = self
            .0
            .take()
            .ok_or_else(|| ConnectorError::internal("replication connection already gone"))?;
        let token = cancel.clone();
        let task = tokio::task::spawn_blocking(move || {
            let r = f(&mut conn);
            if token.is_cancelled()
                && let Ok(v) = &r
            {
                after_cancel(&mut conn, v);
            }
            (conn, r)
        });
        let (conn, r) = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ConnectorError::cancelled()),
            r = task => r.map_err(|e| ConnectorError::internal(format!("{what}: {e}")))?,
        };
        self.0 = Some(conn);
        r.map_err(|e| map_replication_error(what, e))
    }

    /// A plain command (`SET ...`, `START_REPLICATION ...`) whose result is not needed.
    pub async fn exec(&mut self, cancel: &CancellationToken, sql: String) -> Result<()> {
        self.blocking(
            cancel,
            "replication command",
            move |c| c.exec(&sql).map(|_| ()),
            |_, _| {},
        )
        .await
    }

    /// Next CopyData message of the replication stream (`w` XLogData or `k` keepalive).
    /// Cancel-safe: its buffers live in the connection, so dropping the future loses nothing.
    pub async fn next_copy_data(&mut self, cancel: &CancellationToken) -> Result<bytes::Bytes> {
        match self.get()?.get_copy_data_async(cancel).await {
            Ok(b) => Ok(b),
            Err(e) if e.is_cancelled() => Err(ConnectorError::cancelled()),
            Err(e) => Err(map_replication_error("replication stream", e)),
        }
    }

    /// Standby status update: `write` = the WAL received, `flush` = what may be released
    /// (0: no change).
    pub async fn status_update(&mut self, write: u64, flush: u64) -> Result<()> {
        self.get()?
            .send_standby_status_update(write, flush, flush, false)
            .await
            .map_err(|e| map_replication_error("replication status update", e))
    }

    /// Close the connection (CopyDone + Terminate) on the blocking pool.
    pub async fn close(mut self) {
        if let Some(c) = self.0.take() {
            let _ = tokio::task::spawn_blocking(move || drop(c)).await;
        }
    }
}

impl Drop for ReplConn {
    fn drop(&mut self) {
        // Dropped without `close` (a cancelled run): close off the runtime threads when there
        // is a runtime, else inline.
        if let Some(c) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(h) => {
                    h.spawn_blocking(move || drop(c));
                }
                Err(_) => drop(c),
            }
        }
    }
}

/// pg_walstream's error -> the connector's kind: a refused login is `refused`, the server's
/// "no" to a request (privileges, missing or invalidated slot, bad settings) is the user's,
/// the rest external (retry).
pub fn map_replication_error(context: &str, e: ReplicationError) -> ConnectorError {
    let message = format!("{context}: {e}");
    match e {
        ReplicationError::Cancelled(_) => ConnectorError::cancelled(),
        ReplicationError::Authentication(_) => ConnectorError::refused(message),
        ReplicationError::PermanentConnection(_)
        | ReplicationError::ReplicationSlot(_)
        | ReplicationError::Config(_) => ConnectorError::user(message),
        _ => ConnectorError::external(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conninfo_quotes_and_carries_what_sqlx_parsed() {
        let o: PgConnectOptions = "postgres://u%40x:p%27w@db.example:6543/app?sslmode=require"
            .parse()
            .unwrap();
        let pw = url_password("postgres://u%40x:p%27w@db.example:6543/app?sslmode=require");
        assert_eq!(pw.as_deref(), Some("p'w"));
        let t = ReplicationTarget::new(&o, pw.as_deref(), None);
        assert_eq!(
            t.conninfo.unwrap(),
            "host='db.example' port='6543' user='u@x' password='p''w' dbname='app' \
             sslmode='require' connect_timeout='15' replication='database'"
        );
        assert_eq!(
            format!("{:?}", ReplicationTarget::new(&o, Some("s"), None)),
            "ReplicationTarget(..)"
        );
    }

    #[test]
    fn url_parts() {
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(url_password("postgres://h/db"), None);
        assert_eq!(
            url_password("postgres://u:a%2Fb@h/db").as_deref(),
            Some("a/b")
        );
        assert_eq!(
            fdi_connector::content::url_param(
                "postgres://h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
                "sslrootcert"
            )
            .as_deref(),
            Some("/etc/ca.pem")
        );
    }
}
