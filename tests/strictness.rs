//! Issue 17's strictness items: 405 with Allow, duplicate JSON keys, email normalisation,
//! setup status following the database, start-up errors that name the setting.

mod common;

use std::net::TcpListener;
use std::process::{Command, Stdio};

use common::*;
use rocket::http::{ContentType, Method, Status};
use serde_json::json;

#[test]
fn unrouted_methods_get_405_with_allow() {
    let s = server();
    let res = s.client.req(Method::Put, "/api/health").dispatch();
    assert_eq!(res.headers().get_one("Allow"), Some("GET, HEAD"));
    assert_error(res, Status::MethodNotAllowed, "METHOD_NOT_ALLOWED");
    let res = s.client.delete("/api/auth/mfa/status").dispatch();
    assert_error(res, Status::MethodNotAllowed, "METHOD_NOT_ALLOWED");
    let res = s.client.get("/api/tokens/5").dispatch();
    assert_eq!(res.headers().get_one("Allow"), Some("DELETE"));
    assert_error(res, Status::MethodNotAllowed, "METHOD_NOT_ALLOWED");
    // Unknown paths stay 404.
    assert_error(
        s.client.put("/api/nothing-here").dispatch(),
        Status::NotFound,
        "NOT_FOUND",
    );
}

#[test]
fn duplicate_json_keys_are_refused() {
    let s = server();
    s.user("alice@example.com");
    let body = format!(
        r#"{{"email":"nobody@example.com","password":"{PASSWORD}","email":"alice@example.com"}}"#
    );
    let res = s
        .client
        .post("/api/auth/login")
        .header(ContentType::JSON)
        .body(body)
        .dispatch();
    assert!(res.cookies().get("slugbase.sid").is_none());
    let b = assert_error(res, Status::BadRequest, "VALIDATION_ERROR");
    assert_eq!(b["details"]["field"], "email");
}

#[test]
fn emails_are_one_address_in_every_unicode_form() {
    let s = server();
    let nfc = "\u{dc}n\u{ef}c\u{f6}d\u{e9}@ex\u{e4}mple.com";
    let nfd = "U\u{308}ni\u{308}co\u{308}de\u{301}@exa\u{308}mple.com";
    // Created through the same entry point the CLI and setup use.
    let email = slugbase::db::users::normalize_email(nfc).unwrap();
    s.user(&email);
    for form in [nfc, nfd, &nfd.to_uppercase()] {
        let res = s.post_json(
            "/api/auth/login",
            &json!({"email": form, "password": PASSWORD}),
            &[],
        );
        assert_eq!(res.status(), Status::Ok, "{form:?}");
    }
    // Full-width letters name the same account.
    let wide = "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}@example.com";
    assert_eq!(
        slugbase::db::users::normalize_email(wide).unwrap(),
        "alice@example.com"
    );
    s.user("alice@example.com");
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": wide, "password": PASSWORD}),
        &[],
    );
    assert_eq!(res.status(), Status::Ok);
}

#[test]
fn setup_status_follows_the_database() {
    let s = server();
    assert_eq!(
        json_of(s.client.get("/api/auth/setup").dispatch())["open"],
        true
    );
    // An account made behind the server's back (as the CLI does).
    s.user("admin@example.com");
    assert_eq!(
        json_of(s.client.get("/api/auth/setup").dispatch())["open"],
        false
    );
}

fn start(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slugbase"));
    cmd.arg("serve")
        .env("SLUGBASE_DATA_DIR", dir.path())
        .env("ROCKET_CONFIG", dir.path().join("none.toml"))
        .env_remove("SLUGBASE_SECRET_KEY")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_port_in_use_names_the_port_and_the_setting() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, err) = start(&[("SLUGBASE_PORT", &port)]);
    assert_eq!(code, Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("slugbase: error"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(line.contains("SLUGBASE_PORT"), "{line}");
    assert!(line.to_lowercase().contains("in use"), "{line}");
}

#[test]
fn settings_below_their_floor_stop_start_up() {
    let (code, err) = start(&[("SLUGBASE_ACCESS_TTL_SECS", "30")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("access_ttl_secs") && err.contains("60"),
        "{err}"
    );
}
