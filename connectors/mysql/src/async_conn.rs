//! What the `mysql_async` connections (the LOAD DATA writer's and the binlog reader's) share:
//! their options, built from the datasource's content as the sqlx pool's are and with their TLS
//! settled on first use ([`AsyncOpts`]); the time a connection step may take; and how driver
//! errors map to connector errors.

use std::future::Future;
use std::time::Duration;

use fdi_connector::{ConnectorError, Result};
use fdi_sql_core::content::ServerContent;
use mysql_async::{Opts, OptsBuilder};

use crate::tls::{self, TlsMode};

/// How long a connection step (connecting, taking a pooled connection) may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// `mysql_async` options of one datasource: the server, login, database and TLS of its content
/// (the URL's address part or host / port, and its TLS options as [`tls`] reads them; the URL's
/// other query options are sqlx's and not carried over), never switching to the server's Unix
/// socket behind the configured address. Or why the content gives none.
pub(crate) struct AsyncOpts {
    built: std::result::Result<(Opts, TlsMode), String>,
    /// The options every connection takes, settled on first use (under `ssl-mode=PREFERRED`,
    /// in the clear when the server offers no TLS).
    settled: tokio::sync::OnceCell<Opts>,
}

impl AsyncOpts {
    /// The options of `c`, with `with`'s additions (a pool, session setup).
    pub fn new(c: &ServerContent, with: impl FnOnce(OptsBuilder) -> OptsBuilder) -> Self {
        Self {
            built: builder(c).map(|(b, mode)| (with(b).into(), mode)),
            settled: tokio::sync::OnceCell::new(),
        }
    }

    /// Why the datasource's content gives no options, if it does not.
    pub fn unusable(&self) -> Option<&str> {
        self.built.as_ref().err().map(String::as_str)
    }

    /// The options every connection takes. The first call may connect once to settle TLS; its
    /// errors name `context` and are not kept (the next call tries again).
    pub async fn settled(&self, context: &str) -> Result<&Opts> {
        let (opts, mode) = self
            .built
            .as_ref()
            .map_err(|e| ConnectorError::user(e.clone()))?;
        self.settled
            .get_or_try_init(|| {
                within_connect_timeout(context, opts, tls::settle(opts.clone(), *mode))
            })
            .await
    }
}

fn builder(c: &ServerContent) -> std::result::Result<(OptsBuilder, TlsMode), String> {
    let mut b = match &c.url {
        Some(url) => {
            let url = url.replacen("mariadb://", "mysql://", 1);
            let base = url.split('?').next().unwrap_or(&url);
            OptsBuilder::from_opts(Opts::from_url(base).map_err(|e| format!("content.url: {e}"))?)
        }
        None => OptsBuilder::default()
            .ip_or_hostname(c.host.clone())
            .tcp_port(c.port.unwrap_or(3306)),
    };
    if let Some(u) = &c.user {
        b = b.user(Some(u));
    }
    if let Some(p) = &c.password {
        b = b.pass(Some(p));
    }
    if let Some(d) = &c.database {
        b = b.db_name(Some(d));
    }
    let tls = tls::UrlTls::of_url(c.url.as_deref())?;
    Ok((b.prefer_socket(false).ssl_opts(tls.ssl_opts()), tls.mode))
}

/// A connection step to the server of `opts`, given up after [`CONNECT_TIMEOUT`]; its errors
/// name `context`.
pub(crate) async fn within_connect_timeout<T>(
    context: &str,
    opts: &Opts,
    step: impl Future<Output = mysql_async::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(CONNECT_TIMEOUT, step).await {
        Ok(r) => r.map_err(|e| map_err(context, e)),
        Err(_) => Err(ConnectorError::external(format!(
            "{context}: {}:{} gave no answer within {}s",
            opts.ip_or_hostname(),
            opts.tcp_port(),
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// Driver errors: refused logins, missing privileges or binlog files and bad SQL or rows are
/// the user's; I/O and the like external (worth a retry).
pub(crate) fn map_err(context: &str, e: mysql_async::Error) -> ConnectorError {
    let message = format!("{context}: {e}");
    match &e {
        mysql_async::Error::Server(s) => match s.code {
            // Access denied / unknown database.
            1044 | 1045 | 1049 | 1698 => ConnectorError::refused(message),
            // Too many connections, shutdown, lock wait / deadlock, interrupted, killed.
            1040 | 1053 | 1205 | 1213 | 1317 | 1927 => ConnectorError::external(message),
            // 1236: the binlog position / GTID is gone (purged) or invalid; 1227 / 1142 /
            // 1143: privileges; other statement errors.
            _ if s.code < 2000 => ConnectorError::user(message),
            _ => ConnectorError::external(message),
        },
        mysql_async::Error::Url(_) => ConnectorError::user(message),
        _ => ConnectorError::external(message),
    }
}
