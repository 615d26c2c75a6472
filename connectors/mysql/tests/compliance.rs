//! The connector compliance suite on the machine's MariaDB (127.0.0.1:3306, database test).

use std::sync::Arc;

use fdi_connector_compliance::{SqlSubject, run_and_assert_compliance};
use serde_json::json;

#[tokio::test]
async fn mysql_passes_the_compliance_suite() {
    let subject = SqlSubject {
        factory: Arc::new(fdi_connector_mysql::Factory),
        content: json!({"host": "127.0.0.1", "port": "3306", "user_name": "root", "password": "",
                        "database_name": "test"}),
        exec: Arc::new(|sql| {
            Box::pin(async move {
                let pool = sqlx::MySqlPool::connect("mysql://root@127.0.0.1:3306/test")
                    .await
                    .unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            })
        }),
        // DATETIME(6): MySQL's TIMESTAMP stops at 1970 and 2038 (the suite's instants go past
        // both); the connection's zone is UTC, so a DATETIME holds the UTC wall clock.
        create_table: "CREATE TABLE {name} (id BIGINT PRIMARY KEY, name TEXT, \
                       amount DECIMAL(38,10), at DATETIME(6), ok BOOLEAN, data BLOB)",
        // MariaDB's sequence engine (a recursive CTE stops at cte_max_recursion_depth, 1000).
        endless_query: "SELECT seq FROM seq_1_to_1000000000",
        bad_contents: vec![
            (json!({"user_name": "u"}), "content.host"),
            (
                json!({"host": "h", "port": "x", "user_name": "u"}),
                "content.port",
            ),
            (json!({"url": "postgres://h/db"}), "content.url"),
            (json!({"host": "h"}), "content.user"),
        ],
    };
    run_and_assert_compliance(&subject).await;
}
