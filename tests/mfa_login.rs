//! Issue 3: the login step-up, replay protection and backup codes.

mod common;

use common::*;
use rocket::http::{ContentType, Status};
use serde_json::{json, Value};

fn password_step(s: &TestServer, email: &str) -> String {
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": email, "password": PASSWORD}),
        &[],
    );
    assert_eq!(res.status(), Status::Ok);
    let set: Vec<String> = res
        .headers()
        .get("Set-Cookie")
        .map(str::to_string)
        .collect();
    assert_eq!(set.len(), 1, "only the pending cookie: {set:?}");
    assert!(set[0].starts_with("slugbase.mfa_pending="), "{set:?}");
    assert!(
        set[0].contains("HttpOnly") && set[0].contains("SameSite=Lax"),
        "{set:?}"
    );
    pending_of(res)
}

fn enrolled(s: &TestServer) -> (String, Vec<u8>, Vec<String>) {
    let (_, jwt) = s.bearer_for("ann@example.com");
    let (secret, codes) = s.enroll(&jwt);
    (jwt, secret, codes)
}

#[test]
fn step_up_with_totp() {
    let s = server();
    let (_, secret, _) = enrolled(&s);
    let pending = password_step(&s, "ann@example.com");
    s.next_step();
    let res = verify(&s, &pending, &code_at(&secret, s.clock.now_()));
    assert_eq!(res.status(), Status::Ok);
    let set: Vec<String> = res
        .headers()
        .get("Set-Cookie")
        .map(str::to_string)
        .collect();
    assert!(
        set.iter()
            .any(|c| c.starts_with("slugbase.sid=") && !c.starts_with("slugbase.sid=;")),
        "{set:?}"
    );
    assert!(
        set.iter()
            .any(|c| c.starts_with("token=") && !c.starts_with("token=;")),
        "{set:?}"
    );
    assert!(
        set.iter().any(|c| c.starts_with("slugbase.mfa_pending=;")),
        "pending cleared: {set:?}"
    );
    let jwt = res.cookies().get("token").unwrap().value().to_string();
    let user = json_of(res);
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["mfa_enabled"], true);
    assert_eq!(s.get_auth("/api/auth/me", &jwt).status(), Status::Ok);
    // The pending token is single use.
    s.next_step();
    let res = verify(&s, &pending, &code_at(&secret, s.clock.now_()));
    assert_error(res, Status::Unauthorized, "MFA_PENDING_INVALID");
}

#[test]
fn step_up_with_backup_code_works_once() {
    let s = server();
    let (_, _, codes) = enrolled(&s);
    let pending = password_step(&s, "ann@example.com");
    assert_eq!(verify(&s, &pending, &codes[3]).status(), Status::Ok);
    let pending = password_step(&s, "ann@example.com");
    assert_error(
        verify(&s, &pending, &codes[3]),
        Status::Unauthorized,
        "INVALID_CODE",
    );
    // Case and separators do not matter.
    let loose = codes[4].to_uppercase().replace('-', "");
    assert_eq!(verify(&s, &pending, &loose).status(), Status::Ok);
}

#[test]
fn pending_token_errors() {
    let s = server();
    let (_, secret, _) = enrolled(&s);
    let res = s
        .client
        .post("/api/auth/mfa/verify")
        .header(ContentType::JSON)
        .body(r#"{"code":"123456"}"#)
        .dispatch();
    assert_error(res, Status::Unauthorized, "MFA_PENDING_INVALID");
    assert_error(
        verify(&s, "garbage", "123456"),
        Status::Unauthorized,
        "MFA_PENDING_INVALID",
    );
    let res = s
        .client
        .post("/api/auth/mfa/verify")
        .header(ContentType::JSON)
        .cookie(cookie("slugbase.mfa_pending", "x"))
        .body("{}")
        .dispatch();
    let b = assert_error(res, Status::BadRequest, "VALIDATION_ERROR");
    assert_eq!(b["details"]["field"], "code");
    // Expired after five minutes.
    let pending = password_step(&s, "ann@example.com");
    s.clock.advance(301);
    assert_error(
        verify(&s, &pending, &code_at(&secret, s.clock.now_())),
        Status::Unauthorized,
        "MFA_PENDING_INVALID",
    );
    // Five wrong codes kill it, even for the right code afterwards; from the third wrong
    // code on the answer tells how many attempts are left, and the fifth says the sign-in
    // was cancelled.
    let pending = password_step(&s, "ann@example.com");
    for i in 1..=4 {
        let body = assert_error(
            verify(&s, &pending, "000000"),
            Status::Unauthorized,
            "INVALID_CODE",
        );
        let left = &body["details"]["attempts_left"];
        if i < 3 {
            assert!(left.is_null(), "wrong code {i}: {body}");
        } else {
            assert_eq!(left, &json!(5 - i), "wrong code {i}: {body}");
        }
    }
    let res = verify(&s, &pending, "000000");
    assert!(
        res.headers()
            .get("Set-Cookie")
            .any(|c| c.starts_with("slugbase.mfa_pending=;")),
        "the cancelled sign-in's cookie is cleared"
    );
    assert_error(res, Status::Unauthorized, "MFA_PENDING_LOCKED");
    s.next_step();
    assert_error(
        verify(&s, &pending, &code_at(&secret, s.clock.now_())),
        Status::Unauthorized,
        "MFA_PENDING_LOCKED",
    );
    // A code from a clock a few minutes off says so.
    let pending = password_step(&s, "ann@example.com");
    let off = slugbase::mfa::totp::code_for_step(
        &secret,
        slugbase::mfa::totp::step_of(s.clock.now_()) - 4,
        6,
    );
    let body = assert_error(
        verify(&s, &pending, &off),
        Status::Unauthorized,
        "INVALID_CODE",
    );
    assert_eq!(body["details"]["reason"], "clock_drift");
}

#[test]
fn pending_token_authenticates_nothing_else() {
    let s = server();
    enrolled(&s);
    let pending = password_step(&s, "ann@example.com");
    assert_error(
        s.get_auth("/api/auth/me", &pending),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    let res = s
        .client
        .get("/api/auth/me")
        .cookie(cookie("token", &pending))
        .dispatch();
    assert_error(res, Status::Unauthorized, "UNAUTHORIZED");
    let res = s
        .client
        .get("/api/auth/me")
        .cookie(cookie("slugbase.mfa_pending", &pending))
        .dispatch();
    assert_error(res, Status::Unauthorized, "UNAUTHORIZED");
    let res = s.post_auth("/api/auth/mfa/enroll/cancel", &pending, None);
    assert_error(res, Status::Unauthorized, "UNAUTHORIZED");
}

fn body(code: &str) -> Value {
    json!({ "code": code, "password": PASSWORD })
}

#[test]
fn replayed_totp_is_rejected_everywhere() {
    let s = server();
    let (jwt, secret, _) = enrolled(&s);
    // The confirm code (this step) cannot be used again anywhere.
    let used = code_at(&secret, s.clock.now_());
    let pending = password_step(&s, "ann@example.com");
    assert_error(
        verify(&s, &pending, &used),
        Status::Unauthorized,
        "CODE_ALREADY_USED",
    );
    assert_error(
        s.post_auth("/api/auth/mfa/disable", &jwt, Some(&body(&used))),
        Status::BadRequest,
        "CODE_ALREADY_USED",
    );
    assert_error(
        s.post_auth("/api/auth/mfa/backup/regenerate", &jwt, Some(&body(&used))),
        Status::BadRequest,
        "CODE_ALREADY_USED",
    );
    // A later step works once, and then neither it nor the earlier steps do.
    s.next_step();
    let fresh = code_at(&secret, s.clock.now_());
    assert_eq!(verify(&s, &pending, &fresh).status(), Status::Ok);
    let pending = password_step(&s, "ann@example.com");
    assert_error(
        verify(&s, &pending, &fresh),
        Status::Unauthorized,
        "CODE_ALREADY_USED",
    );
    assert_error(
        s.post_auth("/api/auth/mfa/backup/regenerate", &jwt, Some(&body(&fresh))),
        Status::BadRequest,
        "CODE_ALREADY_USED",
    );
    s.next_step();
    let next = code_at(&secret, s.clock.now_());
    assert_eq!(
        s.post_auth("/api/auth/mfa/backup/regenerate", &jwt, Some(&body(&next)))
            .status(),
        Status::Ok
    );
    assert_error(
        s.post_auth("/api/auth/mfa/disable", &jwt, Some(&body(&next))),
        Status::BadRequest,
        "CODE_ALREADY_USED",
    );
    let names: Vec<String> = json_of(s.get_auth("/api/auth/mfa/events", &jwt))
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names
            .iter()
            .filter(|n| *n == "totp_replay_rejected")
            .count()
            >= 5,
        "{names:?}"
    );
    // Re-enrolling does not reopen old steps: the replay floor is per user, for good.
    s.next_step();
    let last = code_at(&secret, s.clock.now_());
    assert_eq!(
        s.post_auth("/api/auth/mfa/disable", &jwt, Some(&body(&last)))
            .status(),
        Status::Ok
    );
}

#[test]
fn confirm_code_cannot_be_replayed_after_reenrollment_in_same_step() {
    let s = server();
    let (_, jwt) = s.bearer_for("ann@example.com");
    let (_, codes) = s.enroll(&jwt);
    assert_eq!(
        s.post_auth("/api/auth/mfa/disable", &jwt, Some(&body(&codes[0])))
            .status(),
        Status::Ok
    );
    // Same 30-second step: a new secret's current code is still a step already used.
    let secret = decode_secret(
        json_of(s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None))["secret"]
            .as_str()
            .unwrap(),
    );
    let res = s.post_auth(
        "/api/auth/mfa/enroll/confirm",
        &jwt,
        Some(&json!({"code": code_at(&secret, s.clock.now_())})),
    );
    // The setup answer says so (the page then says "wait for the next code").
    assert_error(res, Status::BadRequest, "CODE_ALREADY_USED");
    s.next_step();
    let res = s.post_auth(
        "/api/auth/mfa/enroll/confirm",
        &jwt,
        Some(&json!({"code": code_at(&secret, s.clock.now_())})),
    );
    assert_eq!(res.status(), Status::Ok);
}

#[test]
fn admin_reset_clears_mfa_and_sessions() {
    let s = server();
    let (jwt, _, _) = enrolled(&s);
    let app = s.app().clone();
    let id = json_of(s.get_auth("/api/auth/me", &jwt))["id"]
        .as_i64()
        .unwrap();
    let mut conn = app.db.get().unwrap();
    slugbase::mfa::service::admin_reset(&app, &mut conn, id).unwrap();
    assert_error(
        s.get_auth("/api/auth/me", &jwt),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    let (_, jwt) = s.login("ann@example.com");
    let events = json_of(s.get_auth("/api/auth/mfa/events", &jwt));
    // The sign-in just now, then the reset.
    assert_eq!(events[0]["event"], "password_sign_in");
    assert_eq!(events[1]["event"], "admin_reset");
    assert_eq!(
        json_of(s.get_auth("/api/auth/mfa/status", &jwt))["enabled"],
        false
    );
}
