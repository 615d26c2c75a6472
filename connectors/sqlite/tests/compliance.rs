//! The connector compliance suite on a real SQLite file.

use std::sync::Arc;

use fdi_connector_compliance::{SqlSubject, run_and_assert_compliance};
use serde_json::json;

#[tokio::test]
async fn sqlite_passes_the_compliance_suite() {
    let file = std::env::temp_dir().join(format!("fdi_compliance_{}.sqlite", fdi_types::new_id()));
    let path = file.clone();
    let subject = SqlSubject {
        factory: Arc::new(fdi_connector_sqlite::Factory::new(
            fdi_connector::FilesRoot::new(std::env::temp_dir()).unwrap(),
        )),
        content: json!({"url": file.display().to_string()}),
        exec: Arc::new(move |sql| {
            let path = path.clone();
            Box::pin(async move {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true);
                let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            })
        }),
        // SQLite's NUMERIC affinity keeps a decimal as a double (15 significant digits): an
        // exact decimal(38, 10) lives in TEXT.
        create_table: "CREATE TABLE {name} (id INTEGER PRIMARY KEY, name TEXT, amount TEXT, \
                       at DATETIME, ok BOOLEAN, data BLOB)",
        endless_query: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
        bad_contents: vec![
            (json!({}), "content.url"),
            (json!({"url": ""}), "content.url"),
            (json!({"url": "../../etc/passwd"}), "content.url"),
            (json!("not an object"), "content"),
        ],
    };
    (subject.exec)("SELECT 1".into()).await;
    run_and_assert_compliance(&subject).await;
    let _ = std::fs::remove_file(file);
}
