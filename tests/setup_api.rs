//! Issue 4: first-run setup over HTTP needs the logged token and closes for good.

mod common;

use common::*;
use rocket::http::{Header, Status};
use serde_json::json;

#[test]
fn setup_needs_the_token_and_closes() {
    let s = server();
    assert_eq!(
        json_of(s.client.get("/api/auth/setup").dispatch()),
        json!({"open": true})
    );
    let token = s.app().setup_token.lock().unwrap().clone().unwrap();
    assert!(token.len() >= 22, "≥ 128 bits");
    let admin = |t: Option<&str>| {
        let mut b =
            json!({"email": "Admin@Example.com", "name": "Admin", "password": "a long password"});
        if let Some(t) = t {
            b["token"] = json!(t);
        }
        b
    };
    assert_error(
        s.post_json("/api/auth/setup", &admin(None), &[]),
        Status::Forbidden,
        "SETUP_TOKEN_INVALID",
    );
    assert_error(
        s.post_json("/api/auth/setup", &admin(Some("wrong")), &[]),
        Status::Forbidden,
        "SETUP_TOKEN_INVALID",
    );
    let evil = Header::new("Origin", "https://evil.example");
    assert_error(
        s.post_json("/api/auth/setup", &admin(Some(&token)), &[evil]),
        Status::Forbidden,
        "CSRF_REJECTED",
    );
    let mut short = admin(Some(&token));
    short["password"] = json!("short");
    let b = assert_error(
        s.post_json("/api/auth/setup", &short, &[]),
        Status::BadRequest,
        "WEAK_PASSWORD",
    );
    assert_eq!(b["details"]["field"], "password");
    let mut bad_email = admin(Some(&token));
    bad_email["email"] = json!("not-an-email");
    let b = assert_error(
        s.post_json("/api/auth/setup", &bad_email, &[]),
        Status::BadRequest,
        "VALIDATION_ERROR",
    );
    assert_eq!(b["details"]["field"], "email");

    let res = s.post_json("/api/auth/setup", &admin(Some(&token)), &[]);
    assert_eq!(res.status(), Status::Created);
    let sid = res
        .cookies()
        .get("slugbase.sid")
        .unwrap()
        .value()
        .to_string();
    let user = json_of(res);
    assert_eq!(user["email"], "admin@example.com");
    assert_eq!(user["is_admin"], true);
    let me = s
        .client
        .get("/api/auth/me")
        .cookie(cookie("slugbase.sid", &sid))
        .dispatch();
    assert_eq!(json_of(me)["email"], "admin@example.com");

    assert_eq!(
        json_of(s.client.get("/api/auth/setup").dispatch()),
        json!({"open": false})
    );
    let mut again = admin(Some(&token));
    again["email"] = json!("second@example.com");
    assert_error(
        s.post_json("/api/auth/setup", &again, &[]),
        Status::Forbidden,
        "SETUP_CLOSED",
    );
}

#[test]
fn setup_is_closed_when_an_account_exists_at_start() {
    let s = server();
    s.user("cli@example.com");
    let dir = s.dir;
    drop(s.client);
    let s = server_on(dir, &[]);
    assert!(s.app().setup_token.lock().unwrap().is_none());
    let body =
        json!({"token": "anything", "email": "a@b.c", "name": "A", "password": "a long password"});
    assert_error(
        s.post_json("/api/auth/setup", &body, &[]),
        Status::Forbidden,
        "SETUP_CLOSED",
    );
}
