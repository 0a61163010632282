//! The served OpenAPI document covers every mounted `/api` route, and each route's own facts.

mod common;

use std::collections::BTreeSet;

use common::*;
use rocket::http::{ContentType, Status};
use serde_json::Value;

fn document(s: &TestServer) -> Value {
    let res = s.client.get("/api/openapi.json").dispatch();
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.content_type(), Some(ContentType::JSON));
    json_of(res)
}

/// `/api/tokens/<id>` → `/api/tokens/{id}`.
fn openapi_path(rocket_path: &str) -> String {
    rocket_path
        .split('/')
        .map(
            |seg| match seg.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
                Some(name) => format!("{{{}}}", name.trim_end_matches("..")),
                None => seg.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_mounted_api_route_is_documented_and_nothing_else() {
    let s = server();
    let doc = document(&s);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mounted: BTreeSet<(String, String)> = s
        .client
        .rocket()
        .routes()
        .filter(|r| r.uri.path().starts_with("/api/"))
        .map(|r| (r.method.as_str().to_lowercase(), openapi_path(r.uri.path())))
        .collect();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let undocumented: Vec<_> = mounted.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&mounted).collect();
    assert!(
        undocumented.is_empty(),
        "routes without docs: {undocumented:?}"
    );
    assert!(stale.is_empty(), "docs without routes: {stale:?}");
}

#[test]
fn the_document_describes_errors_security_and_the_seed_routes() {
    let s = server();
    let doc = document(&s);
    let error = &doc["components"]["schemas"]["Error"];
    for field in ["error", "message", "code", "details", "retryAfter"] {
        assert!(
            error["properties"][field].is_object(),
            "Error.{field}: {error}"
        );
    }
    let required: Vec<&str> = error["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(required, ["error", "message", "code"]);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["sid"]["name"], "slugbase.sid");
    assert_eq!(schemes["token_cookie"]["name"], "token");
    // The seed pages' routes carry the seeds' words and codes.
    let op = |m: &str, p: &str| doc["paths"][p][m].clone();
    let cancel = op("post", "/api/auth/mfa/enroll/cancel");
    assert_eq!(cancel["summary"], "Cancel MFA enrollment");
    assert!(cancel["description"]
        .as_str()
        .unwrap()
        .contains("Idempotent 200"));
    assert!(cancel["responses"]["409"]["description"]
        .as_str()
        .unwrap()
        .contains("MFA_ALREADY_ENABLED"));
    assert_eq!(
        op("post", "/api/auth/mfa/enroll/begin")["summary"],
        "Start MFA enrollment"
    );
    assert_eq!(
        op("post", "/api/auth/mfa/enroll/confirm")["summary"],
        "Confirm MFA enrollment"
    );
    let disable = op("post", "/api/auth/mfa/disable");
    assert_eq!(disable["summary"], "Disable MFA");
    assert!(disable["description"]
        .as_str()
        .unwrap()
        .contains("OIDC-only users omit password"));
    // Public routes need no credential; the rest take Bearer or the cookies.
    assert_eq!(
        op("get", "/api/health")["security"],
        serde_json::json!([{}])
    );
    assert!(doc["security"].as_array().unwrap().len() >= 3);
    // The path parameter of a Rocket `<id>` is declared.
    let params = &op("delete", "/api/tokens/{id}")["parameters"];
    assert_eq!(params[0]["name"], "id");
    assert_eq!(params[0]["in"], "path");
}
