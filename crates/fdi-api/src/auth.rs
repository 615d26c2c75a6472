//! `X-Auth-Token` check: the token must be one of the configured tokens; a token configured as
//! `tok@proj` may only touch project `proj` (the path's `{project_id}`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fdi_types::ErrorCode;

use crate::error::Error;

/// Which tokens may call the API, and on which project.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// token -> `None` (any project) or `Some(project_id)`.
    tokens: HashMap<String, Option<String>>,
}

impl AuthConfig {
    /// Parse `FDI_AUTH_TOKENS` syntax: comma-separated `token` or `token@project` entries.
    pub fn parse(spec: &str) -> Self {
        let tokens = spec
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| match t.rsplit_once('@') {
                Some((tok, proj)) if !tok.is_empty() && !proj.is_empty() => {
                    (tok.to_string(), Some(proj.to_string()))
                }
                _ => (t.to_string(), None),
            })
            .collect();
        Self { tokens }
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Ok, or the 401/403 to answer with.
    pub fn check(&self, token: Option<&str>, project: Option<&str>) -> Result<(), Error> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(Error::new(
                ErrorCode::Unauthorized,
                "X-Auth-Token header is missing",
            ));
        };
        match self.tokens.get(token) {
            None => Err(Error::new(
                ErrorCode::Unauthorized,
                "X-Auth-Token is not a known token",
            )),
            Some(Some(allowed)) if project.is_some_and(|p| p != allowed) => Err(Error::new(
                ErrorCode::Forbidden,
                format!(
                    "this token may not access project {}",
                    project.unwrap_or_default()
                ),
            )),
            Some(_) => Ok(()),
        }
    }
}

/// The `{project_id}` of `/v2/{project_id}/...`.
fn project_of(path: &str) -> Option<&str> {
    let mut seg = path.trim_start_matches('/').split('/');
    match (seg.next(), seg.next()) {
        (Some("v2"), Some(p)) if !p.is_empty() => Some(p),
        _ => None,
    }
}

pub async fn require_token(
    State(auth): State<Arc<AuthConfig>>,
    req: Request,
    next: Next,
) -> Response {
    let token = req
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok());
    match auth.check(token, project_of(req.uri().path())) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_projects() {
        let a = AuthConfig::parse("t1, t2@p2 ,");
        assert!(a.check(Some("t1"), Some("any")).is_ok());
        assert_eq!(a.check(None, Some("p")).unwrap_err().0.status, 401);
        assert_eq!(a.check(Some("zz"), Some("p")).unwrap_err().0.status, 401);
        assert_eq!(a.check(Some("t2"), Some("p1")).unwrap_err().0.status, 403);
        assert!(a.check(Some("t2"), Some("p2")).is_ok());
        assert_eq!(project_of("/v2/abc/fdi/instances/x"), Some("abc"));
        assert_eq!(project_of("/nope"), None);
    }
}
