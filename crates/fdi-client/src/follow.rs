//! Following one run until it ends: `GET tasks/{task_id}/monitor-logs/{tracking_id}/events`
//! (Server-Sent Events: `progress` events, then one `end`), or, when the server has no such
//! endpoint (404/405) or the stream breaks, polling `monitor-logs/{tracking_id}` every 500 ms.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::sse::{SseEvent, SseParser};
use crate::{Client, ClientError, Result, RunEntry, error_from_body, seg};

/// How often the follower polls when there is no event stream.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long a run may be unknown to `monitor-logs/{tracking_id}` right after it was started.
const UNKNOWN_RUN_GRACE: Duration = Duration::from_secs(5);
/// The FDI code of "the task does not exist": a 404 that is not a missing endpoint.
const TASK_NOT_FOUND: &str = "FDI.3081";

/// A change of the followed run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The run's entry changed while it goes on.
    Progress(RunEntry),
    /// The run ended; its final entry. The last event.
    End(RunEntry),
}

impl RunEvent {
    pub fn entry(&self) -> &RunEntry {
        match self {
            RunEvent::Progress(e) | RunEvent::End(e) => e,
        }
    }
}

/// Whether the follower streams or polls (for tests and for the curious).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowMode {
    Connecting,
    Events,
    Polling,
    Done,
}

enum State {
    Connecting,
    Events {
        response: reqwest::Response,
        parser: SseParser,
        queue: VecDeque<SseEvent>,
    },
    Polling {
        last: Option<RunEntry>,
        polled_once: bool,
    },
    Done,
}

/// Yields a run's changes in order with [`RunFollower::next`], ending with [`RunEvent::End`].
pub struct RunFollower {
    client: Client,
    task_id: String,
    tracking_id: String,
    since: Instant,
    state: State,
}

impl RunFollower {
    pub(crate) fn new(client: Client, task_id: &str, tracking_id: &str) -> Self {
        RunFollower {
            client,
            task_id: task_id.to_string(),
            tracking_id: tracking_id.to_string(),
            since: Instant::now(),
            state: State::Connecting,
        }
    }

    /// Poll `monitor-logs/{tracking_id}` from the start, without trying the event stream (what
    /// the follower does on a server without one).
    pub fn polling_only(mut self) -> Self {
        if matches!(self.state, State::Connecting) {
            self.start_polling(None);
        }
        self
    }

    pub fn tracking_id(&self) -> &str {
        &self.tracking_id
    }

    pub fn mode(&self) -> FollowMode {
        match self.state {
            State::Connecting => FollowMode::Connecting,
            State::Events { .. } => FollowMode::Events,
            State::Polling { .. } => FollowMode::Polling,
            State::Done => FollowMode::Done,
        }
    }

    /// The next change; `None` after the end.
    pub async fn next(&mut self) -> Result<Option<RunEvent>> {
        loop {
            let step = match &mut self.state {
                State::Done => return Ok(None),
                State::Connecting => self.connect().await?,
                State::Events { .. } => self.next_event().await?,
                State::Polling { .. } => self.poll().await?,
            };
            if let Some(event) = step {
                if matches!(event, RunEvent::End(_)) {
                    self.state = State::Done;
                }
                return Ok(Some(event));
            }
        }
    }

    /// Follow to the end; `on_event` sees every change; returns the final entry.
    pub async fn wait_end(&mut self, mut on_event: impl FnMut(&RunEvent)) -> Result<RunEntry> {
        while let Some(event) = self.next().await? {
            on_event(&event);
            if let RunEvent::End(entry) = event {
                return Ok(entry);
            }
        }
        Err(self.stream_error("ended without an end event"))
    }

    fn events_url(&self) -> String {
        self.client.url(&format!(
            "/tasks/{}/monitor-logs/{}/events",
            seg(&self.task_id),
            seg(&self.tracking_id)
        ))
    }

    /// Open the event stream, or switch to polling when the server has no such endpoint.
    async fn connect(&mut self) -> Result<Option<RunEvent>> {
        let url = self.events_url();
        let sent = self
            .client
            .request(reqwest::Method::GET, &url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(source) => return Err(ClientError::Transport { url, source }),
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            tracing::debug!(tracking_id = %self.tracking_id, "following the run's event stream");
            self.state = State::Events {
                response,
                parser: SseParser::new(),
                queue: VecDeque::new(),
            };
            return Ok(None);
        }
        let text = response.text().await.unwrap_or_default();
        let error = error_from_body(status, &text);
        if status == 405 || (status == 404 && error.error_code() != Some(TASK_NOT_FOUND)) {
            tracing::debug!(tracking_id = %self.tracking_id, status, "no event stream: polling the run");
            self.start_polling(None);
            return Ok(None);
        }
        Err(error)
    }

    fn start_polling(&mut self, last: Option<RunEntry>) {
        self.state = State::Polling {
            last,
            polled_once: false,
        };
    }

    /// The next `progress` / `end` event of the stream; a broken stream falls back to polling.
    async fn next_event(&mut self) -> Result<Option<RunEvent>> {
        let State::Events {
            response,
            parser,
            queue,
        } = &mut self.state
        else {
            return Ok(None);
        };
        if let Some(sse) = queue.pop_front() {
            return self.decode_event(&sse);
        }
        match response.chunk().await {
            Ok(Some(bytes)) => {
                queue.extend(parser.feed(&bytes));
                Ok(None)
            }
            Ok(None) | Err(_) => {
                tracing::debug!(tracking_id = %self.tracking_id, "event stream closed before the end: polling the run");
                self.start_polling(None);
                Ok(None)
            }
        }
    }

    fn decode_event(&self, sse: &SseEvent) -> Result<Option<RunEvent>> {
        let entry = || {
            serde_json::from_str::<RunEntry>(&sse.data).map_err(|e| {
                self.stream_error(&format!(
                    "{} event is not a monitor-log entry: {e}",
                    sse.event
                ))
            })
        };
        match sse.event.as_str() {
            "progress" => Ok(Some(RunEvent::Progress(entry()?))),
            "end" => Ok(Some(RunEvent::End(entry()?))),
            _ => Ok(None),
        }
    }

    /// Poll the run's entry: an end, a change, or nothing new.
    async fn poll(&mut self) -> Result<Option<RunEvent>> {
        let State::Polling { last, polled_once } = &mut self.state else {
            return Ok(None);
        };
        if *polled_once {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        *polled_once = true;
        let entry = match self.client.get_run(&self.task_id, &self.tracking_id).await {
            Ok(e) => e,
            Err(e)
                if e.status() == Some(404)
                    && e.error_code() != Some(TASK_NOT_FOUND)
                    && self.since.elapsed() < UNKNOWN_RUN_GRACE =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if entry.is_finished() {
            return Ok(Some(RunEvent::End(entry)));
        }
        if last.as_ref() == Some(&entry) {
            return Ok(None);
        }
        *last = Some(entry.clone());
        Ok(Some(RunEvent::Progress(entry)))
    }

    fn stream_error(&self, reason: &str) -> ClientError {
        ClientError::Stream {
            tracking_id: self.tracking_id.clone(),
            reason: reason.to_string(),
        }
    }
}
