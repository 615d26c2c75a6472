//! What a call to the fdi API can fail with.

/// A failed call: the server's FDI error body, or why no such body could be had.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an FDI error body (`error_code`, `error_msg`, `detail`).
    #[error("{error_code} {error_msg}{} (HTTP {status})", detail_suffix(.detail))]
    Api {
        status: u16,
        error_code: String,
        error_msg: String,
        detail: Option<String>,
    },
    /// The server answered with an error status but no FDI error body.
    #[error("HTTP {status}: {body}")]
    Http { status: u16, body: String },
    /// The request could not be sent or its answer not read.
    #[error("cannot reach {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not the JSON this client expects.
    #[error("unexpected answer from {url}: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    /// The event stream broke the Server-Sent Events format or the run's rules.
    #[error("event stream of run {tracking_id}: {reason}")]
    Stream { tracking_id: String, reason: String },
}

fn detail_suffix(detail: &Option<String>) -> String {
    match detail.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => format!(": {d}"),
        None => String::new(),
    }
}

impl ClientError {
    /// The HTTP status of an error answer (none when no answer came).
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The FDI error code of an API error (`FDI.3002`, ...).
    pub fn error_code(&self) -> Option<&str> {
        match self {
            ClientError::Api { error_code, .. } => Some(error_code),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
