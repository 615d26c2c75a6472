//! A typed client of the fdi HTTP API (`/v2/{project_id}/fdi/instances/{instance_id}/...`):
//! datasources, tasks, runs and their monitor logs, and a follower of one run's progress
//! (Server-Sent Events, or polling on servers without the events endpoint). Shared by the `fdi`
//! command line and the end-to-end tests.

mod error;
mod follow;
pub mod sse;
mod types;

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use error::{ClientError, Result};
pub use follow::{FollowMode, POLL_INTERVAL, RunEvent, RunFollower};
pub use types::*;

/// The header that carries the API token.
pub const TOKEN_HEADER: &str = "X-Auth-Token";

/// Where the API is and who calls it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://host:port`, without a path.
    pub server: String,
    pub token: String,
    pub project_id: String,
    pub instance_id: String,
    /// Limit for one request (an event stream is not limited).
    pub timeout: Duration,
}

impl ClientConfig {
    pub fn new(server: &str, token: &str, project_id: &str, instance_id: &str) -> Self {
        ClientConfig {
            server: server.trim_end_matches('/').to_string(),
            token: token.to_string(),
            project_id: project_id.to_string(),
            instance_id: instance_id.to_string(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// A client of one project/instance of one server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| ClientError::Transport {
                url: config.server.clone(),
                source,
            })?;
        Ok(Client { http, config })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// `{server}/v2/{project}/fdi/instances/{instance}{path}`
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}/v2/{}/fdi/instances/{}{path}",
            self.config.server, self.config.project_id, self.config.instance_id
        )
    }

    // ---- datasources ----------------------------------------------------------------------------

    pub async fn list_datasources(&self, page: PageQuery) -> Result<Page<Datasource>> {
        self.get(&with_page("/datasources", page)).await
    }

    /// `body` is usually a [`NewDatasource`]; any JSON is sent as it is (the server checks it).
    pub async fn create_datasource(&self, body: &impl Serialize) -> Result<Datasource> {
        self.send(reqwest::Method::POST, "/datasources", Some(body))
            .await
    }

    pub async fn get_datasource(&self, datasource_id: &str) -> Result<Datasource> {
        self.get(&format!("/datasources/{}", seg(datasource_id)))
            .await
    }

    /// Test the stored connection; a failed connection is an API error (`FDI.3111`, detail why).
    pub async fn test_connect(&self, datasource_id: &str) -> Result<TestConnect> {
        self.send(
            reqwest::Method::POST,
            &format!("/datasources/{}/test-connect", seg(datasource_id)),
            Some(&json!({})),
        )
        .await
    }

    // ---- tasks ----------------------------------------------------------------------------------

    pub async fn list_tasks(&self, page: PageQuery) -> Result<Page<TaskBrief>> {
        self.get(&with_page("/tasks", page)).await
    }

    /// Tasks whose name contains `name`.
    pub async fn find_tasks(&self, name: &str) -> Result<Page<TaskBrief>> {
        self.get(&format!("/tasks?limit=100&task_name={}", query_value(name)))
            .await
    }

    /// `body` is usually a [`NewTask`]; any JSON is sent as it is (the server checks it).
    pub async fn create_task(&self, body: &impl Serialize) -> Result<Task> {
        self.send(reqwest::Method::POST, "/tasks", Some(body)).await
    }

    pub async fn get_task(&self, task_id: &str) -> Result<Task> {
        self.get(&format!("/tasks/{}", seg(task_id))).await
    }

    /// Run the task now; the answer holds the new run's tracking id.
    pub async fn run_task(&self, task_id: &str) -> Result<RunStarted> {
        self.send(
            reqwest::Method::POST,
            &format!("/tasks/{}/run", seg(task_id)),
            Some(&json!({})),
        )
        .await
    }

    /// End the task's running run (it ends CANCELLED).
    pub async fn terminate_task(&self, task_id: &str) -> Result<Value> {
        self.send(
            reqwest::Method::POST,
            &format!("/tasks/{}/terminate", seg(task_id)),
            Some(&json!({})),
        )
        .await
    }

    /// Start or stop tasks (dispatch plans, realtime runs): `POST batch-operation/tasks`.
    pub async fn batch(&self, action: BatchAction, task_ids: &[String]) -> Result<BatchResult> {
        let list: Vec<Value> = task_ids.iter().map(|id| json!({ "task_id": id })).collect();
        self.send(
            reqwest::Method::POST,
            "/batch-operation/tasks",
            Some(&json!({ "action_id": action.as_str(), "list": list })),
        )
        .await
    }

    // ---- runs -----------------------------------------------------------------------------------

    /// The task's runs, newest first.
    pub async fn list_runs(&self, task_id: &str, page: PageQuery) -> Result<Page<RunEntry>> {
        self.get(&with_page(
            &format!("/tasks/{}/monitor-logs", seg(task_id)),
            page,
        ))
        .await
    }

    /// One run's entry.
    pub async fn get_run(&self, task_id: &str, tracking_id: &str) -> Result<RunEntry> {
        self.get(&format!(
            "/tasks/{}/monitor-logs/{}",
            seg(task_id),
            seg(tracking_id)
        ))
        .await
    }

    /// Follow a run until it ends: its event stream, or polling `monitor-logs/{tracking_id}`
    /// every 500 ms on a server without the events endpoint.
    pub fn follow_run(&self, task_id: &str, tracking_id: &str) -> RunFollower {
        RunFollower::new(self.clone(), task_id, tracking_id)
    }

    // ---- plumbing -------------------------------------------------------------------------------

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send::<T, ()>(reqwest::Method::GET, path, None).await
    }

    async fn send<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let url = self.url(path);
        let mut req = self
            .request(method, &url)
            .timeout(self.config.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|source| ClientError::Transport {
            url: url.clone(),
            source,
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|source| ClientError::Transport {
            url: url.clone(),
            source,
        })?;
        if !(200..300).contains(&status) {
            return Err(error_from_body(status, &text));
        }
        let text = if text.trim().is_empty() {
            "null"
        } else {
            &text
        };
        serde_json::from_str(text).map_err(|source| ClientError::Decode { url, source })
    }

    pub(crate) fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header(TOKEN_HEADER, &self.config.token)
    }
}

/// The error of a non-2xx answer: its FDI error body, else the raw text.
pub(crate) fn error_from_body(status: u16, text: &str) -> ClientError {
    #[derive(serde::Deserialize)]
    struct Body {
        error_code: String,
        #[serde(default)]
        error_msg: String,
        #[serde(default)]
        detail: Option<String>,
    }
    match serde_json::from_str::<Body>(text) {
        Ok(b) => ClientError::Api {
            status,
            error_code: b.error_code,
            error_msg: b.error_msg,
            detail: b.detail,
        },
        Err(_) => ClientError::Http {
            status,
            body: text.chars().take(500).collect(),
        },
    }
}

fn with_page(path: &str, page: PageQuery) -> String {
    let mut params = Vec::new();
    if let Some(o) = page.offset {
        params.push(format!("offset={o}"));
    }
    if let Some(l) = page.limit {
        params.push(format!("limit={l}"));
    }
    if params.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", params.join("&"))
    }
}

/// An id as one path segment: percent-encode what would leave the segment.
fn seg(id: &str) -> String {
    percent_encode(id, |b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
}

fn query_value(v: &str) -> String {
    percent_encode(v, |b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
}

fn percent_encode(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdi_error_bodies_become_api_errors() {
        let e = error_from_body(
            400,
            r#"{"error_code":"FDI.3002","error_msg":"task_name: is required","detail":"x"}"#,
        );
        assert_eq!(e.error_code(), Some("FDI.3002"));
        assert_eq!(e.status(), Some(400));
        assert_eq!(
            e.to_string(),
            "FDI.3002 task_name: is required: x (HTTP 400)"
        );
        let e = error_from_body(502, "Bad Gateway");
        assert!(matches!(e, ClientError::Http { status: 502, .. }), "{e:?}");
    }

    #[test]
    fn urls() {
        let c = Client::new(ClientConfig::new("http://h:1/", "t", "p", "i")).unwrap();
        assert_eq!(c.url("/tasks"), "http://h:1/v2/p/fdi/instances/i/tasks");
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(
            with_page(
                "/x",
                PageQuery {
                    offset: Some(2),
                    limit: Some(5)
                }
            ),
            "/x?offset=2&limit=5"
        );
    }
}
