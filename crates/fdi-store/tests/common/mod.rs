//! One store test suite, run against each back end: a fresh SQLite file and a fresh PostgreSQL
//! database (on the machine's server, 127.0.0.1:5432, dropped afterwards).
#![allow(dead_code)]

use std::path::PathBuf;

pub struct Backend {
    pub name: &'static str,
    pub url: String,
    /// The data dir (the key file lives here).
    pub dir: PathBuf,
    pg_db: Option<String>,
}

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh SQLite store and a fresh PostgreSQL store.
pub async fn backends() -> Vec<Backend> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = |name: &str| {
        let d = std::env::temp_dir().join(format!("fdi-store-test-{id}-{name}"));
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (sqlite_dir, pg_dir) = (dir("sqlite"), dir("postgres"));
    let db = format!("fdi_store_test_{id}");
    let admin = sqlx::PgPool::connect(PG_ADMIN).await.expect("PostgreSQL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    vec![
        Backend {
            name: "sqlite",
            url: format!("sqlite://{}", sqlite_dir.join("fdi.db").display()),
            dir: sqlite_dir,
            pg_db: None,
        },
        Backend {
            name: "postgres",
            url: format!("postgres://postgres@127.0.0.1:5432/{db}"),
            dir: pg_dir,
            pg_db: Some(db),
        },
    ]
}

impl Backend {
    /// Run statements directly on the store's database (to build an old-format store).
    pub async fn exec_raw(&self, statements: &[&str]) {
        if self.pg_db.is_some() {
            let p = sqlx::PgPool::connect(&self.url).await.unwrap();
            for s in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(s.to_string()))
                    .execute(&p)
                    .await
                    .unwrap_or_else(|e| panic!("{s}: {e}"));
            }
            p.close().await;
        } else {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(self.url.trim_start_matches("sqlite://"))
                .create_if_missing(true);
            let p = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            let mut tx = p.begin().await.unwrap();
            for s in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(s.to_string()))
                    .execute(&mut *tx)
                    .await
                    .unwrap_or_else(|e| panic!("{s}: {e}"));
            }
            tx.commit().await.unwrap();
            p.close().await;
        }
    }

    /// A `SELECT COUNT(*)` on the store's database.
    pub async fn count(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        if self.pg_db.is_some() {
            let p = sqlx::PgPool::connect(&self.url).await.unwrap();
            let n = sqlx::query_scalar(sql).fetch_one(&p).await.unwrap();
            p.close().await;
            n
        } else {
            let p = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            let n = sqlx::query_scalar(sql).fetch_one(&p).await.unwrap();
            p.close().await;
            n
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(db) = &self.pg_db {
            let _ = std::process::Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "test",
                    "-q",
                    "-c",
                ])
                .arg(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}
