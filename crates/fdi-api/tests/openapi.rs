//! `GET /v2/openapi.json`: an OpenAPI 3.1 document served without a token, in which every route
//! of the router appears with each of its methods (a new endpoint without docs fails here), and
//! nothing else does.
//!
//! The routes are read from the router's source (`.route(path, method(handler)...)` calls in
//! `crates/fdi-api/src` and `crates/fdi-console/src`); each one read is then requested on the
//! live router to prove it is a real route (not the fallback's "no route" nor 405), so a parse
//! that missed or invented routes fails too.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use axum::body::Body;
use axum::http::Request;
use common::*;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// (path as OpenAPI spells it, lowercase method) of every `.route(...)` in the files.
fn routes_in_source(files: &[std::path::PathBuf]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for file in files {
        let src = std::fs::read_to_string(file).unwrap();
        let consts = string_consts(&src);
        for call in route_calls(&src) {
            let (path_expr, handlers) = split_first_arg(&call);
            let path = eval_path(path_expr.trim(), &consts).unwrap_or_else(|| {
                panic!(
                    "{}: cannot read the route path {path_expr:?}",
                    file.display()
                )
            });
            let methods = methods_of(handlers);
            assert!(
                !methods.is_empty(),
                "{}: no method in route {call:?}",
                file.display()
            );
            for m in methods {
                out.insert((openapi_path(&path), m));
            }
        }
    }
    out
}

/// `const NAME: &str = "...";` definitions.
fn string_consts(src: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in src.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("const ")
            && let Some((name, value)) = rest.split_once(": &str = \"")
            && let Some(value) = value.strip_suffix("\";")
        {
            m.insert(name.trim().to_string(), value.to_string());
        }
    }
    m
}

/// The argument text of every `.route(` call (balanced parentheses).
fn route_calls(src: &str) -> Vec<String> {
    let mut calls = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find(".route(") {
        let body = &rest[at + ".route(".len()..];
        let mut depth = 1;
        let mut end = 0;
        for (i, c) in body.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = i;
                break;
            }
        }
        calls.push(body[..end].to_string());
        rest = &body[end..];
    }
    calls
}

/// The first top-level argument and the rest.
fn split_first_arg(call: &str) -> (&str, &str) {
    let mut depth = 0;
    let mut in_str = false;
    for (i, c) in call.char_indices() {
        match c {
            '"' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => depth -= 1,
            ',' if !in_str && depth == 0 => return (&call[..i], &call[i + 1..]),
            _ => {}
        }
    }
    panic!("route call without a handler: {call:?}")
}

/// `"/x"`, `CONST`, `&f("/x")` (the FDI prefix + x) or `&format!("{CONST}/{{id}}")`.
fn eval_path(expr: &str, consts: &BTreeMap<String, String>) -> Option<String> {
    let expr = expr.trim_start_matches('&');
    if let Some(lit) = expr.strip_prefix('"').and_then(|e| e.strip_suffix('"')) {
        return Some(lit.to_string());
    }
    if let Some(v) = consts.get(expr) {
        return Some(v.clone());
    }
    if let Some(arg) = expr
        .strip_prefix("f(\"")
        .and_then(|e| e.strip_suffix("\")"))
    {
        return Some(format!("{}{arg}", consts.get("FDI")?));
    }
    let fmt = expr
        .strip_prefix("format!(\"")
        .and_then(|e| e.strip_suffix("\")"))?;
    let mut s = fmt.to_string();
    for (k, v) in consts {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    Some(s.replace("{{", "{").replace("}}", "}"))
}

/// Methods named in a route's handler expression: `get(...)`, `.post(...)`, `routing::put(...)`.
fn methods_of(handlers: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for m in METHODS {
        let pat = format!("{m}(");
        for (i, _) in handlers.match_indices(&pat) {
            let before = handlers[..i].chars().next_back();
            if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                found.insert(m.to_string());
            }
        }
    }
    found
}

/// axum's `{*rest}` is OpenAPI's `{rest}`.
fn openapi_path(p: &str) -> String {
    p.replace("{*", "{")
}

fn router_sources() -> Vec<std::path::PathBuf> {
    let api = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [api.join("src"), api.join("../fdi-console/src")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// The path with every `{param}` filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push_str("x1");
            }
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out.replace("/v2/x1/", &format!("/v2/{PROJECT}/"))
}

async fn request(t: &TestApp, method: &str, uri: &str, token: bool) -> (u16, String, Vec<u8>) {
    let mut req = Request::builder()
        .method(method.to_ascii_uppercase().as_str())
        .uri(uri)
        .header("content-type", "application/json");
    if token {
        req = req.header("x-auth-token", TOKEN);
    }
    let resp = t
        .router
        .clone()
        .oneshot(req.body(Body::from("{}")).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // SSE streams may not end: the status and headers are enough.
    if ct.starts_with("text/event-stream") {
        return (status, ct, Vec::new());
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, ct, body)
}

async fn document(t: &TestApp) -> Value {
    let (st, ct, body) = request(t, "get", "/v2/openapi.json", false).await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert!(ct.starts_with("application/json"), "{ct}");
    serde_json::from_slice(&body).unwrap()
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((path.clone(), m.to_string()));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_covers_every_route() {
    let t = TestApp::new().await;
    let doc = document(&t).await;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1"), "openapi: {version:?}");

    let routes = routes_in_source(&router_sources());
    // The parse found the router: a few routes known to exist.
    for known in [
        ("/health", "get"),
        ("/v2/openapi.json", "get"),
        (
            "/v2/{project_id}/fdi/instances/{instance_id}/datasources",
            "post",
        ),
        (
            "/v2/{project_id}/instances/{instance_id}/apps/{app_id}",
            "delete",
        ),
    ] {
        assert!(
            routes.contains(&(known.0.to_string(), known.1.to_string())),
            "{known:?} not read from the router source: {routes:#?}"
        );
    }
    // Each route read is a real route of the router.
    for (path, method) in &routes {
        let uri = concrete(path);
        let (st, _, body) = request(&t, method, &uri, true).await;
        let text = String::from_utf8_lossy(&body);
        let fallback = serde_json::from_slice::<Value>(&body).is_ok_and(|v| {
            v["error_msg"]
                .as_str()
                .is_some_and(|m| m.ends_with(&format!("no route for {uri}")))
        });
        assert!(
            st != 405 && !fallback,
            "{method} {path}: read from the source but the router answers {st} {text}"
        );
    }
    let docs = documented(&doc);
    let undocumented: Vec<_> = routes.difference(&docs).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from /v2/openapi.json: {undocumented:#?}"
    );
    let stale: Vec<_> = docs.difference(&routes).collect();
    assert!(stale.is_empty(), "documented but not routed: {stale:#?}");
}

#[tokio::test]
async fn every_operation_documents_its_errors_and_the_token() {
    let t = TestApp::new().await;
    let doc = document(&t).await;
    let scheme = &doc["components"]["securitySchemes"]["token"];
    assert_eq!(scheme["type"], "apiKey", "{scheme}");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "X-Auth-Token");
    let error = &doc["components"]["schemas"]["ErrorBody"];
    let required: BTreeSet<&str> = error["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        required,
        BTreeSet::from(["error_code", "error_msg"]),
        "{error}"
    );
    for (path, method) in documented(&doc) {
        let op = &doc["paths"][&path][&method];
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{method} {path}: no success response"
        );
        if !path.starts_with("/v2/{project_id}") {
            continue;
        }
        assert_eq!(
            op["security"][0]["token"],
            serde_json::json!([]),
            "{method} {path}"
        );
        for status in ["400", "401", "403", "404", "503"] {
            assert_eq!(
                responses[status]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path}: {status}"
            );
        }
    }
}

#[tokio::test]
async fn the_document_needs_no_token_but_the_api_does() {
    let t = TestApp::new().await;
    let (st, _, _) = request(&t, "get", "/v2/openapi.json", false).await;
    assert_eq!(st, 200);
    let (st, _, body) = request(&t, "get", &t.url("/tasks"), false).await;
    assert_eq!(st, 401, "{}", String::from_utf8_lossy(&body));
}
