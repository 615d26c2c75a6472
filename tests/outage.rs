//! The metadata store goes away (a PostgreSQL store behind a proxy the test stops): the API
//! answers 503 with the FDI body within seconds instead of hanging, `/health` says DOWN, and
//! everything works again by itself once the store is back.

use std::time::{Duration, Instant};

use fdi_e2e::*;

#[tokio::test]
async fn an_unreachable_store_answers_503_fast_and_recovers_by_itself() {
    let db = unique("fdi_outage");
    pg_exec(&format!("CREATE DATABASE {db}")).await;
    let mut proxy = TcpProxy::start("127.0.0.1:5432").await;
    let url = format!("postgres://postgres@127.0.0.1:{}/{db}", proxy.port);
    let dir = std::env::temp_dir().join(unique("fdi-outage"));
    std::fs::create_dir_all(&dir).unwrap();
    let s = TestServer::start_on(dir, Some(url), &[]).await;
    let app = s.create_app().await;
    assert!(!app.is_empty());

    proxy.stop();
    for path in ["/tasks", "/datasources", "/task-monitors"] {
        let t = Instant::now();
        let got = s.get(path).await;
        let took = t.elapsed();
        assert_fdi_error(&got, 503, "FDI.9999", "unavailable");
        assert!(took < Duration::from_secs(5), "{path} took {took:?}");
    }
    let t = Instant::now();
    let (st, h) = s
        .call_with("GET", &format!("{}/health", s.base), None, None)
        .await;
    assert_eq!((st, h["store"].as_str()), (503, Some("DOWN")), "{h}");
    assert!(t.elapsed() < Duration::from_secs(5));

    proxy.resume().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, body) = s.get("/tasks").await;
        if st == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "not back: {st} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (st, h) = s
        .call_with("GET", &format!("{}/health", s.base), None, None)
        .await;
    assert_eq!((st, h["store"].as_str()), (200, Some("UP")), "{h}");
    // Writes work again too.
    let again = s.create_app().await;
    assert_ne!(again, app);
}
