//! Harness for end-to-end tests: starts the real `fdi` server process on a free port with a
//! temporary data dir (SQLite store by default, or a fresh PostgreSQL database), talks to it over
//! HTTP, and prepares source/target tables on the machine's real PostgreSQL and MariaDB.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const TOKEN: &str = "e2e-token";
/// A token limited to project `other-project`.
pub const SCOPED_TOKEN: &str = "scoped-token";
pub const PROJECT: &str = "proj-e2e";
pub const INSTANCE: &str = "inst-e2e";

pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this test process and call, safe as an SQL identifier.
/// Path of the `fdi-under-test` binary. Cargo sets `CARGO_BIN_EXE_*` only when compiling the
/// integration tests themselves (not this library), so look it up at run time: the variable if the
/// runner exported it, else next to the test executable (`target/<profile>/deps/..`).
pub fn server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("CARGO_BIN_EXE_fdi-under-test") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current test executable");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile> dir");
    let bin = profile_dir.join(format!("fdi-under-test{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not built; run the tests through `cargo test`",
        bin.display()
    );
    bin
}

/// Poll `f` until it yields a value (every 100 ms), failing the test after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{}_{n}", std::process::id(), nanos % 100_000)
}

/// Which metadata store the server under test uses.
#[derive(Clone, Debug)]
pub enum StoreKind {
    Sqlite,
    /// A fresh PostgreSQL database created for this server.
    Postgres,
}

impl StoreKind {
    /// The store the suite runs on: SQLite, or PostgreSQL with `FDI_E2E_STORE=postgres` (`.ci/run`
    /// runs the end-to-end suite once on each). Tests about one store name it explicitly.
    pub fn under_test() -> StoreKind {
        match std::env::var("FDI_E2E_STORE").as_deref() {
            Ok("postgres") => StoreKind::Postgres,
            _ => StoreKind::Sqlite,
        }
    }
}

pub struct TestServer {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    pub port: u16,
    pub store_url: Option<String>,
    /// Extra environment variables given to the server process (e.g. `FDI_LEASE_MS`).
    pub env: Vec<(String, String)>,
    http: reqwest::Client,
    /// The PostgreSQL store database this server created (dropped with it); joined nodes don't own it.
    owns_db: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestServer {
    pub async fn start(kind: StoreKind) -> TestServer {
        Self::start_with_env(kind, &[]).await
    }

    /// Start with extra environment variables for the server process (kept across `spawn`).
    pub async fn start_with_env(kind: StoreKind, env: &[(&str, &str)]) -> TestServer {
        let data_dir = std::env::temp_dir().join(unique("fdi-e2e"));
        std::fs::create_dir_all(&data_dir).unwrap();
        let store_url = match kind {
            StoreKind::Sqlite => None,
            StoreKind::Postgres => {
                let db = unique("fdi_store");
                pg_exec(&format!("CREATE DATABASE {db}")).await;
                Some(format!("postgres://postgres@127.0.0.1:5432/{db}"))
            }
        };
        Self::start_on(data_dir, store_url, env).await
    }

    /// Start on an existing data dir (and store): e.g. one written by an earlier release.
    pub async fn start_on(
        data_dir: PathBuf,
        store_url: Option<String>,
        env: &[(&str, &str)],
    ) -> TestServer {
        let mut s = TestServer {
            child: None,
            base: String::new(),
            data_dir,
            port: 0,
            owns_db: store_url.is_some(),
            store_url,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        s.spawn().await;
        s
    }

    /// Start (or restart) the process on a new free port with the same data dir and store.
    pub async fn spawn(&mut self) {
        self.port = free_port();
        self.base = format!("http://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(server_binary());
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env(
                "FDI_AUTH_TOKENS",
                format!("{TOKEN},{SCOPED_TOKEN}@other-project"),
            )
            .env_remove("FDI_SECRET_KEY")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(self.data_dir.join("stdout.log")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.data_dir.join("server.log"))
                    .unwrap(),
            ));
        if let Some(url) = &self.store_url {
            cmd.arg("--store").arg(url);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn fdi server"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self
                .http
                .get(self.url("/tasks"))
                .header("X-Auth-Token", TOKEN)
                .send()
                .await
                && r.status().as_u16() == 200
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("fdi server exited early ({status}); log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "fdi server did not become ready; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Another node of the same cluster: a new process with its own data dir (so its own node
    /// id), the same PostgreSQL store, the same secret key (copied, so it can open the
    /// datasources the others created) and the same extra environment.
    pub async fn join(&self) -> TestServer {
        assert!(
            self.store_url.is_some(),
            "nodes share a store: start the first with StoreKind::Postgres"
        );
        let data_dir = std::env::temp_dir().join(unique("fdi-e2e-node"));
        std::fs::create_dir_all(&data_dir).unwrap();
        let key = self.data_dir.join("secret.key");
        if key.exists() {
            std::fs::copy(&key, data_dir.join("secret.key")).expect("copy secret.key");
        }
        // The nodes share one files root (on a real cluster: a shared mount), the first's.
        let mut env = self.env.clone();
        if !env.iter().any(|(k, _)| k == "FDI_FILES_ROOT") {
            env.push((
                "FDI_FILES_ROOT".into(),
                self.files_dir().to_string_lossy().into(),
            ));
        }
        let mut s = TestServer {
            child: None,
            base: String::new(),
            data_dir,
            port: 0,
            store_url: self.store_url.clone(),
            env,
            http: self.http.clone(),
            owns_db: false,
        };
        s.spawn().await;
        s
    }

    /// The server's files root (`<data-dir>/files`, the default): SQLite datasources live here.
    pub fn files_dir(&self) -> PathBuf {
        let d = self.data_dir.join("files");
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: the process dies without any cleanup.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the process to exit (graceful shutdown).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `/v2/{project}/fdi/instances/{instance}{path}`
    pub fn url(&self, path: &str) -> String {
        format!("{}/v2/{PROJECT}/fdi/instances/{INSTANCE}{path}", self.base)
    }

    pub fn apps_url(&self, path: &str) -> String {
        format!("{}/v2/{PROJECT}/instances/{INSTANCE}/apps{path}", self.base)
    }

    /// The typed API client (crates/fdi-client) of this server: the default token, the harness's
    /// project and instance.
    pub fn client(&self) -> fdi_client::Client {
        self.client_with_token(TOKEN)
    }

    /// The typed API client with another token.
    pub fn client_with_token(&self, token: &str) -> fdi_client::Client {
        fdi_client::Client::new(fdi_client::ClientConfig::new(
            &self.base, token, PROJECT, INSTANCE,
        ))
        .expect("API client")
    }

    /// Send a request with the default token; returns status and JSON body (Null when empty).
    pub async fn call(&self, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
        self.call_with(method, url, body, Some(TOKEN)).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        url: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, url);
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// Send a raw (possibly malformed) body.
    pub async fn call_raw(&self, method: &str, url: &str, body: &str) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = self
            .http
            .request(m, url)
            .header("X-Auth-Token", TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", &self.url(path), None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", &self.url(path), Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("PUT", &self.url(path), Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", &self.url(path), None).await
    }

    /// Create an app and return its id.
    pub async fn create_app(&self) -> String {
        let (st, body) = self
            .call(
                "POST",
                &self.apps_url(""),
                Some(json!({"name": unique("app"), "remark": "e2e"})),
            )
            .await;
        assert!(st == 200 || st == 201, "create app: {st} {body}");
        body["id"].as_str().expect("app id").to_string()
    }

    /// Create a datasource and return its id.
    pub async fn create_datasource(&self, app_id: &str, ds_type: &str, content: Value) -> String {
        let (st, body) = self
            .post(
                "/datasources",
                json!({"datasource_name": unique("ds"), "datasource_type": ds_type, "app_id": app_id, "content": content}),
            )
            .await;
        assert_eq!(st, 201, "create datasource: {body}");
        body["datasource_id"]
            .as_str()
            .expect("datasource_id")
            .to_string()
    }

    /// Create a normal task and return its id.
    pub async fn create_task(&self, source: &str, target: &str, detail: Value) -> String {
        let (st, body) = self
            .post(
                "/tasks",
                task_body(&unique("task"), source, target, &detail),
            )
            .await;
        assert!(st == 200 || st == 201, "create task: {st} {body}");
        body["task"]["task_id"]
            .as_str()
            .expect("task_id")
            .to_string()
    }

    /// Create a task of `task_type` (`TIMING` or `REALTIME`) and return its id.
    pub async fn create_task_of_type(
        &self,
        task_type: &str,
        source: &str,
        target: &str,
        detail: Value,
    ) -> String {
        let mut body = task_body(&unique("task"), source, target, &detail);
        body["task"]["task_type"] = json!(task_type);
        let (st, body) = self.post("/tasks", body).await;
        assert!(st == 200 || st == 201, "create task: {st} {body}");
        body["task"]["task_id"]
            .as_str()
            .expect("task_id")
            .to_string()
    }

    /// Start a task through `batch-operation/tasks` and check it started.
    pub async fn start_task(&self, task_id: &str) {
        let (st, body) = self
            .post(
                "/batch-operation/tasks",
                json!({"action_id": "start", "list": [{"task_id": task_id}]}),
            )
            .await;
        assert_eq!((st, &body["success_count"]), (200, &json!(1)), "{body}");
    }

    /// The task's monitor-log entries, newest first.
    pub async fn runs(&self, task_id: &str) -> Vec<Value> {
        let (st, body) = self
            .get(&format!("/tasks/{task_id}/monitor-logs?limit=100"))
            .await;
        assert_eq!(st, 200, "monitor-logs: {body}");
        body["entities"].as_array().cloned().unwrap_or_default()
    }

    /// Trigger a run and wait until it ends; returns its monitor-log entry.
    pub async fn run_to_end(&self, task_id: &str) -> Value {
        let before = self.runs(task_id).await.len();
        let (st, body) = self.post(&format!("/tasks/{task_id}/run"), json!({})).await;
        assert_eq!(st, 200, "run: {body}");
        self.wait_run_end(task_id, before + 1, Duration::from_secs(120))
            .await
    }

    /// Wait until the task has `count` runs and the newest has ended.
    pub async fn wait_run_end(&self, task_id: &str, count: usize, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let runs = self.runs(task_id).await;
            if runs.len() >= count {
                let st = runs[0]["execute_status"].as_str().unwrap_or("").to_string();
                if matches!(st.as_str(), "SUCCESS" | "ERROR" | "CANCELLED") {
                    return runs[0].clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "run did not end in time: {runs:?}\nlog:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until the newest run is RUNNING and has read at least one row.
    pub async fn wait_running(&self, task_id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let runs = self.runs(task_id).await;
            if let Some(r) = runs.first()
                && r["execute_status"] == "RUNNING"
            {
                return r.clone();
            }
            assert!(
                Instant::now() < deadline,
                "run did not start in time: {runs:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if self.owns_db
            && let Some(db) = self.store_url.as_deref().and_then(|u| u.rsplit('/').next())
        {
            // Other nodes of the cluster may still be connected: FORCE ends their sessions.
            let _ = Command::new("psql")
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
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A normal task's body (create / update). Same-server runs in these tests exercise the streaming path, so the
/// same-server shortcut is off unless `detail` sets `isSupportInServerCopy`.
pub fn task_body(name: &str, source: &str, target: &str, detail: &Value) -> Value {
    let mut detail = detail.clone();
    if let Some(d) = detail.as_object_mut() {
        let key = if d.contains_key("targetSelectedDatasource") {
            "targetSelectedDatasource"
        } else {
            "target_selected_datasource"
        };
        let target = d.entry(key).or_insert_with(|| json!({}));
        if let Some(t) = target.as_object_mut() {
            t.entry("isSupportInServerCopy").or_insert(json!(false));
        }
    }
    let detail = &detail;
    json!({
        "task": {
            "task_name": name,
            "task_type": "TIMING",
            "source_datasource_id": source,
            "target_datasource_id": target,
            "description": "e2e task",
        },
        "task_detail": detail.to_string(),
    })
}

pub fn pg_content() -> Value {
    json!({"host": "127.0.0.1", "port": "5432", "database_name": "test", "user_name": "postgres", "password": "pg-secret-pw"})
}

pub fn mysql_content() -> Value {
    json!({"host": "127.0.0.1", "port": "3306", "database_name": "test", "user_name": "root", "password": ""})
}

pub fn sqlite_content(path: &std::path::Path) -> Value {
    json!({"url": path.to_string_lossy()})
}

// ---- direct database access for preparing and checking data ------------------------------------

pub async fn pg() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(PG_URL)
        .await
        .expect("connect pg")
}

pub async fn mysql() -> sqlx::MySqlPool {
    sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect(MYSQL_URL)
        .await
        .expect("connect mysql")
}

pub async fn pg_exec(sql: &str) {
    let pool = pg().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub async fn mysql_exec(sql: &str) {
    let pool = mysql().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A new topic of `partitions` on the broker of `scripts/services.sh up kafka`.
pub async fn kafka_topic(partitions: i32) -> String {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let name = unique("fdi_e2e_t");
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:9092")
        .create()
        .unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new(&name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("the broker on 127.0.0.1:9092 (scripts/services.sh up kafka)")
    {
        r.unwrap();
    }
    name
}

/// Assert an FDI error body: status, code, and that the message names `needle`.
#[track_caller]
pub fn assert_fdi_error(got: &(u16, Value), status: u16, code: &str, needle: &str) {
    let (st, body) = got;
    assert_eq!(*st, status, "status for {body}");
    assert_eq!(body["error_code"], code, "code in {body}");
    let msg = body["error_msg"].as_str().unwrap_or("");
    let detail = body["detail"].as_str().unwrap_or("");
    assert!(
        msg.contains(needle) || detail.contains(needle),
        "message should name {needle:?}: {body}"
    );
}

/// A TCP proxy the test controls: stands for a store (or any server) that goes away and comes
/// back. `stop` closes every connection through it and the listening port; `start` listens again
/// on the same port.
pub struct TcpProxy {
    pub port: u16,
    target: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TcpProxy {
    pub async fn start(target: &str) -> TcpProxy {
        let mut p = TcpProxy {
            port: free_port(),
            target: target.to_string(),
            task: None,
        };
        p.resume().await;
        p
    }

    /// Listen again (after `stop`).
    pub async fn resume(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("proxy port");
        let target = self.target.clone();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let target = target.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Drop every connection and stop listening.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
