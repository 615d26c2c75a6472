//! The web console: a single-page app (plain HTML, CSS and JavaScript modules, no build step)
//! embedded in the binary with `include_bytes!`.
//!
//! [`router`] serves `GET /` (the app) and `GET /console/{file}` (its assets) with their content
//! types, an `ETag` and `Cache-Control: no-cache` (the browser revalidates and gets `304 Not
//! Modified` while the binary is unchanged). Nothing here needs a token: the page asks for one and
//! sends it as `X-Auth-Token` on the API calls it makes. An unknown asset is a bare 404, which the
//! API's error layer turns into an FDI error body.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file.
pub struct Asset {
    /// The name under `/console/` (the app's page is `index.html`, served at `/`).
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the app.
pub static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("ui.js", JS),
    asset!("monitors.js", JS),
    asset!("runs.js", JS),
    asset!("live.js", JS),
    asset!("datasources.js", JS),
];

/// The console's routes, for any router state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/console/{*file}", get(console_file))
}

/// The embedded file named `name`, if any.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

async fn index(headers: HeaderMap) -> Response {
    serve(
        asset("index.html").expect("index.html is embedded"),
        &headers,
    )
}

async fn console_file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match asset(&file) {
        Some(a) => serve(a, &headers),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The entity tags of the assets, in [`ASSETS`] order: a hash of the body, so they change
/// exactly when a file does.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            HeaderValue::from_str(&format!("\"{:016x}\"", fnv1a(a.body)))
                .expect("a hex string is a valid header value")
        })
        .collect()
});

/// FNV-1a, 64 bits: stable across Rust releases (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn etag_of(a: &Asset) -> &'static HeaderValue {
    let i = ASSETS
        .iter()
        .position(|x| std::ptr::eq(x, a))
        .expect("an asset of ASSETS");
    &ETAGS[i]
}

/// 200 with the body, or 304 when the browser already holds this version.
fn serve(a: &'static Asset, request: &HeaderMap) -> Response {
    let etag = etag_of(a);
    let cached = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == etag.to_str().unwrap_or(""))
        });
    let headers = [
        (ETAG, etag.clone()),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    ];
    if cached {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [(CONTENT_TYPE, HeaderValue::from_static(a.content_type))],
        a.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::get(path);
        if let Some(tag) = if_none_match {
            req = req.header(IF_NONE_MATCH, tag);
        }
        router::<()>()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header(r: &Response, name: axum::http::HeaderName) -> &str {
        r.headers().get(name).unwrap().to_str().unwrap()
    }

    #[tokio::test]
    async fn root_serves_the_app_page_as_html() {
        let r = get("/", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, CONTENT_TYPE), "text/html; charset=utf-8");
        assert_eq!(header(&r, CACHE_CONTROL), "no-cache");
        let body = to_bytes(r.into_body(), usize::MAX).await.unwrap();
        let html = std::str::from_utf8(&body).unwrap();
        assert!(html.contains(r#"src="/console/app.js""#), "{html}");
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_content_type_and_body() {
        for a in ASSETS {
            let r = get(&format!("/console/{}", a.name), None).await;
            assert_eq!(r.status(), StatusCode::OK, "{}", a.name);
            assert_eq!(header(&r, CONTENT_TYPE), a.content_type, "{}", a.name);
            let body = to_bytes(r.into_body(), usize::MAX).await.unwrap();
            assert_eq!(&body[..], a.body, "{}", a.name);
        }
    }

    #[tokio::test]
    async fn a_matching_etag_answers_304_without_a_body() {
        let first = get("/console/app.js", None).await;
        let tag = header(&first, ETAG).to_string();
        let again = get("/console/app.js", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let body = to_bytes(again.into_body(), usize::MAX).await.unwrap();
        assert!(body.is_empty());
        let other = get("/console/app.js", Some("\"0000000000000000\"")).await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn an_unknown_asset_is_404() {
        assert_eq!(
            get("/console/nope.js", None).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/console/../Cargo.toml", None).await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn every_file_the_page_links_is_embedded() {
        let html = std::str::from_utf8(asset("index.html").unwrap().body).unwrap();
        let linked: Vec<&str> = html
            .split("\"/console/")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        assert!(linked.contains(&"app.js"), "{linked:?}");
        for name in linked {
            assert!(asset(name).is_some(), "index.html links {name}");
        }
    }

    #[test]
    fn every_module_the_app_imports_is_embedded() {
        let mut imported = Vec::new();
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).unwrap();
            // Static (`from './x.js'`) and dynamic (`import('./x.js')`) imports alike.
            for rest in text.split("'./").skip(1) {
                let name = rest.split('\'').next().unwrap();
                assert!(asset(name).is_some(), "{} imports {name}", a.name);
                imported.push(name);
            }
        }
        assert!(imported.contains(&"runs.js"), "{imported:?}");
    }
}
