//! The connector compliance suite on the machine's PostgreSQL (127.0.0.1:5432, database test).

use std::sync::Arc;

use fdi_connector_compliance::{SqlSubject, run_and_assert_compliance};
use serde_json::json;

#[tokio::test]
async fn postgres_passes_the_compliance_suite() {
    let subject = SqlSubject {
        factory: Arc::new(fdi_connector_postgres::Factory),
        content: json!({"host": "127.0.0.1", "port": 5432, "user_name": "postgres",
                        "database_name": "test"}),
        exec: Arc::new(|sql| {
            Box::pin(async move {
                let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
                    .await
                    .unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            })
        }),
        create_table: "CREATE TABLE {name} (id bigint PRIMARY KEY, name text, \
                       amount numeric(38,10), at timestamptz, ok boolean, data bytea)",
        endless_query: "SELECT g FROM generate_series(1, 1000000000) g",
        bad_contents: vec![
            (json!({"user_name": "u"}), "content.host"),
            (
                json!({"host": "h", "port": "x", "user_name": "u"}),
                "content.port",
            ),
            (json!({"url": "mysql://h/db"}), "content.url"),
        ],
    };
    run_and_assert_compliance(&subject).await;
}
