//! TLS of the `mysql_async` connections (the LOAD DATA writer's and the binlog reader's), taken
//! from the datasource URL options sqlx reads for the connector's pool, with the same meaning:
//!
//! | `ssl-mode` (or `sslmode`)   | TLS                        | server certificate          |
//! |-----------------------------|----------------------------|-----------------------------|
//! | `DISABLED`                  | never                      |                             |
//! | `PREFERRED` (the default)   | when the server offers it  | not checked                 |
//! | `REQUIRED`                  | always                     | not checked                 |
//! | `VERIFY_CA`                 | always                     | signed by `ssl-ca` or a root |
//! | `VERIFY_IDENTITY`           | always                     | as VERIFY_CA, naming the host |
//!
//! `ssl-cert` with `ssl-key` present a client certificate. A datasource given as host and port
//! (no URL) is PREFERRED, as on the sqlx pool.

use std::path::PathBuf;

use fdi_connector::content::url_param;
use mysql_async::{ClientIdentity, Conn, DriverError, Opts, OptsBuilder, SslOpts};

/// How a connection uses TLS (`ssl-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsMode {
    Disabled,
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

/// The TLS a datasource URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlTls {
    pub mode: TlsMode,
    ca: Option<String>,
    client: Option<(String, String)>,
}

impl UrlTls {
    /// The TLS options of `url` (None: a datasource given as host and port, PREFERRED).
    pub fn of_url(url: Option<&str>) -> Result<Self, String> {
        let param = |names: [&str; 2]| url.and_then(|u| names.iter().find_map(|n| url_param(u, n)));
        let mode = match param(["ssl-mode", "sslmode"]) {
            None => TlsMode::Preferred,
            Some(m) => match m.to_ascii_lowercase().as_str() {
                "disabled" => TlsMode::Disabled,
                "preferred" => TlsMode::Preferred,
                "required" => TlsMode::Required,
                "verify_ca" => TlsMode::VerifyCa,
                "verify_identity" => TlsMode::VerifyIdentity,
                _ => {
                    return Err(format!(
                        "content.url: ssl-mode {m:?} is none of DISABLED, PREFERRED, REQUIRED, \
                         VERIFY_CA, VERIFY_IDENTITY"
                    ));
                }
            },
        };
        let client = match (param(["ssl-cert", "sslcert"]), param(["ssl-key", "sslkey"])) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => return Err("content.url: ssl-cert needs ssl-key".into()),
            (None, Some(_)) => return Err("content.url: ssl-key needs ssl-cert".into()),
        };
        Ok(Self {
            mode,
            ca: param(["ssl-ca", "sslca"]),
            client,
        })
    }

    /// `mysql_async`'s TLS options for this mode; None: in the clear.
    pub fn ssl_opts(&self) -> Option<SslOpts> {
        let opts = match self.mode {
            TlsMode::Disabled => return None,
            TlsMode::Preferred | TlsMode::Required => {
                SslOpts::default().with_danger_accept_invalid_certs(true)
            }
            TlsMode::VerifyCa => SslOpts::default().with_danger_skip_domain_validation(true),
            TlsMode::VerifyIdentity => SslOpts::default(),
        };
        let opts = match &self.ca {
            Some(ca) => opts.with_root_certs(vec![PathBuf::from(ca).into()]),
            None => opts,
        };
        Some(match &self.client {
            Some((cert, key)) => opts.with_client_identity(Some(ClientIdentity::new(
                PathBuf::from(cert).into(),
                PathBuf::from(key).into(),
            ))),
            None => opts,
        })
    }
}

/// `opts` without TLS.
fn in_clear(opts: &Opts) -> Opts {
    OptsBuilder::from_opts(opts.clone())
        .ssl_opts(None::<SslOpts>)
        .into()
}

fn offers_no_tls(e: &mysql_async::Error) -> bool {
    matches!(
        e,
        mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)
    )
}

/// The options every connection should take: `opts`, or under PREFERRED, `opts` in the clear
/// when a first connection finds the server offers no TLS. That connection's other errors are
/// returned (nothing is settled by them: the next call tries again).
pub(crate) async fn settle(opts: Opts, mode: TlsMode) -> mysql_async::Result<Opts> {
    if mode != TlsMode::Preferred || opts.ssl_opts().is_none() {
        return Ok(opts);
    }
    match Conn::new(opts.clone()).await {
        Ok(conn) => {
            let _ = conn.disconnect().await;
            Ok(opts)
        }
        Err(e) if offers_no_tls(&e) => Ok(in_clear(&opts)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use fdi_sql_core::content::ServerContent;
    use mysql_async::prelude::Queryable;

    use super::*;

    /// The test CA and certificates of the 3307 server (`scripts/services.sh up mysql-cdc`).
    pub(crate) fn tls_dir() -> String {
        std::env::var("FDI_MYSQL_CDC_TLS")
            .unwrap_or_else(|_| "/var/tmp/fdi-services/mysql-cdc-tls".into())
    }

    /// Settled options and a connection for `url`, as the LOAD DATA pool and the binlog reader
    /// make them; the connection's TLS version ("" in the clear).
    async fn tls_version(url: &str) -> fdi_connector::Result<String> {
        let c = ServerContent::parse(&serde_json::json!({ "url": url }), &["mysql"]).unwrap();
        let opts = crate::async_conn::AsyncOpts::new(&c, |b| b);
        let opts = opts.settled("connecting").await?;
        let query = async {
            let mut conn = Conn::new(opts.clone()).await?;
            let v: Option<(String, String)> = conn
                .query_first("SHOW SESSION STATUS LIKE 'Ssl_version'")
                .await?;
            let _ = conn.disconnect().await;
            Ok(v.map(|(_, v)| v).unwrap_or_default())
        };
        query
            .await
            .map_err(|e| crate::async_conn::map_err("connecting", e))
    }

    /// Against the machine's MariaDB (3306, no TLS) and the 3307 one (TLS with the test CA).
    #[tokio::test]
    async fn connections_use_tls_as_the_mode_says() {
        let d = tls_dir();
        let ca = format!("ssl-ca={d}/ca.pem");
        // PREFERRED (the default): TLS where offered, in the clear where not.
        assert_eq!(
            tls_version("mysql://root@127.0.0.1:3306/test")
                .await
                .unwrap(),
            ""
        );
        assert!(
            tls_version("mysql://root@127.0.0.1:3307/test")
                .await
                .unwrap()
                .starts_with("TLS")
        );
        assert_eq!(
            tls_version("mysql://root@127.0.0.1:3307/test?ssl-mode=DISABLED")
                .await
                .unwrap(),
            ""
        );
        // REQUIRED: never in the clear.
        assert!(
            tls_version("mysql://root@127.0.0.1:3306/test?ssl-mode=REQUIRED")
                .await
                .is_err()
        );
        // The certificate checked against the CA, and against the host name.
        for host in ["127.0.0.1", "localhost"] {
            let url = format!("mysql://root@{host}:3307/test?ssl-mode=VERIFY_IDENTITY&{ca}");
            assert!(
                tls_version(&url).await.unwrap().starts_with("TLS"),
                "{host}"
            );
        }
        // A CA that did not sign the server's certificate (the client's certificate is no CA).
        let wrong = format!("ssl-ca={d}/client.pem");
        for mode in ["VERIFY_CA", "VERIFY_IDENTITY"] {
            let url = format!("mysql://root@127.0.0.1:3307/test?ssl-mode={mode}&{wrong}");
            assert!(tls_version(&url).await.is_err(), "{mode}");
        }
        // REQUIRED does not check the certificate.
        let url = format!("mysql://root@127.0.0.1:3307/test?ssl-mode=REQUIRED&{wrong}");
        assert!(tls_version(&url).await.unwrap().starts_with("TLS"));
        // A client certificate for the user that requires one.
        let x509 = format!(
            "mysql://x509@127.0.0.1:3307/test?ssl-mode=VERIFY_CA&{ca}\
             &ssl-cert={d}/client.pem&ssl-key={d}/client-key.pem"
        );
        assert!(tls_version(&x509).await.unwrap().starts_with("TLS"));
        let bare = format!("mysql://x509@127.0.0.1:3307/test?ssl-mode=VERIFY_CA&{ca}");
        assert!(tls_version(&bare).await.is_err());
    }

    #[test]
    fn url_options_read_as_sqlx_reads_them() {
        let of = |u: &str| UrlTls::of_url(Some(u));
        assert_eq!(UrlTls::of_url(None).unwrap().mode, TlsMode::Preferred);
        assert_eq!(of("mysql://h/db").unwrap().mode, TlsMode::Preferred);
        assert_eq!(
            of("mysql://h/db?ssl-mode=DISABLED").unwrap().mode,
            TlsMode::Disabled
        );
        assert!(
            of("mysql://h/db?ssl-mode=disabled")
                .unwrap()
                .ssl_opts()
                .is_none()
        );
        let t = of("mysql://h/db?sslmode=verify_ca&ssl-ca=%2Ftmp%2Fca.pem").unwrap();
        assert_eq!(t.mode, TlsMode::VerifyCa);
        let o = t.ssl_opts().unwrap();
        assert!(o.skip_domain_validation() && !o.accept_invalid_certs());
        assert_eq!(o.root_certs().len(), 1);
        let o = of("mysql://h/db?ssl-mode=VERIFY_IDENTITY")
            .unwrap()
            .ssl_opts()
            .unwrap();
        assert!(!o.skip_domain_validation() && !o.accept_invalid_certs());
        let o = of("mysql://h/db?ssl-mode=REQUIRED")
            .unwrap()
            .ssl_opts()
            .unwrap();
        assert!(o.accept_invalid_certs());
        assert!(
            of("mysql://h/db?ssl-mode=REQUIRED&ssl-cert=/c.pem&ssl-key=/k.pem")
                .unwrap()
                .ssl_opts()
                .unwrap()
                .client_identity()
                .is_some()
        );
        let e = of("mysql://h/db?ssl-mode=always").unwrap_err();
        assert!(e.contains("ssl-mode \"always\""), "{e}");
        let e = of("mysql://h/db?ssl-cert=/c.pem").unwrap_err();
        assert!(e.contains("ssl-cert needs ssl-key"), "{e}");
    }
}
