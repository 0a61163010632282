//! Issue 3: begin, confirm, cancel, disable, regenerate, status and events.

mod common;

use common::*;
use rocket::http::{Header, Status};
use serde_json::json;

#[test]
fn seed_happy_paths_with_bearer_only() {
    let s = server();
    let (_, jwt) = s.bearer_for("ann@example.com");
    // 003 begin: {otpauth_url, secret}
    let res = s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None);
    assert_eq!(res.status(), Status::Ok);
    let begin = json_of(res);
    let secret = begin["secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 32);
    assert!(secret
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
    assert_eq!(decode_secret(&secret).len(), 20);
    assert_eq!(
        begin["otpauth_url"],
        format!("otpauth://totp/SlugBase:ann%40example.com?secret={secret}&issuer=SlugBase")
    );
    assert_eq!(begin.as_object().unwrap().len(), 2);
    // 004 confirm: {backup_codes: [10]}
    let code = code_at(&decode_secret(&secret), s.clock.now_());
    let res = s.post_auth(
        "/api/auth/mfa/enroll/confirm",
        &jwt,
        Some(&json!({ "code": code })),
    );
    assert_eq!(res.status(), Status::Ok);
    let codes = json_of(res)["backup_codes"].as_array().unwrap().clone();
    assert_eq!(codes.len(), 10);
    let mut unique = codes.clone();
    unique.dedup();
    assert_eq!(unique.len(), 10);
    // 001/002 disable: {ok: true}
    let body = json!({"code": codes[0], "password": PASSWORD});
    let res = s.post_auth("/api/auth/mfa/disable", &jwt, Some(&body));
    assert_eq!(json_of(res), json!({"ok": true}));
    // 000 cancel: {ok: true}, idempotent
    for _ in 0..2 {
        let res = s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None);
        assert_eq!(json_of(res), json!({"ok": true}));
    }
}

#[test]
fn endpoints_require_authentication() {
    let s = server();
    for path in [
        "enroll/begin",
        "enroll/confirm",
        "enroll/cancel",
        "disable",
        "backup/regenerate",
    ] {
        let res = s
            .client
            .post(format!("/api/auth/mfa/{path}"))
            .body(r#"{"code":"123456"}"#)
            .dispatch();
        assert_error(res, Status::Unauthorized, "UNAUTHORIZED");
    }
    for path in ["status", "events"] {
        assert_error(
            s.client.get(format!("/api/auth/mfa/{path}")).dispatch(),
            Status::Unauthorized,
            "UNAUTHORIZED",
        );
    }
}

#[test]
fn enrollment_with_an_sb_token() {
    let s = server();
    let (_, jwt) = s.bearer_for("ann@example.com");
    let token = json_of(s.post_auth("/api/tokens", &jwt, Some(&json!({"name": "t"}))))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, codes) = s.enroll(&token);
    assert_eq!(codes.len(), 10);
    assert_eq!(
        json_of(s.get_auth("/api/auth/mfa/status", &token))["enabled"],
        true
    );
}

#[test]
fn begin_stores_sealed_and_replaces_pending() {
    let s = server();
    let (id, jwt) = s.bearer_for("ann@example.com");
    let first = decode_secret(
        json_of(s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None))["secret"]
            .as_str()
            .unwrap(),
    );
    let second = decode_secret(
        json_of(s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None))["secret"]
            .as_str()
            .unwrap(),
    );
    assert_ne!(first, second);
    let stored: Vec<u8> = s
        .app()
        .db
        .get()
        .unwrap()
        .query_row("SELECT mfa_secret FROM users WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored[0], 1, "versioned");
    assert!(
        !stored.windows(20).any(|w| w == second.as_slice()),
        "not plaintext"
    );
    let st = json_of(s.get_auth("/api/auth/mfa/status", &jwt));
    assert_eq!(
        st,
        json!({"enabled": false, "enrolled_at": null, "pending": true, "backup_codes_remaining": 0})
    );
    // The first secret is gone.
    let res = s.post_auth(
        "/api/auth/mfa/enroll/confirm",
        &jwt,
        Some(&json!({"code": code_at(&first, s.clock.now_())})),
    );
    assert_error(res, Status::BadRequest, "INVALID_CODE");
    let res = s.post_auth(
        "/api/auth/mfa/enroll/confirm",
        &jwt,
        Some(&json!({"code": code_at(&second, s.clock.now_())})),
    );
    assert_eq!(res.status(), Status::Ok);
    assert_error(
        s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None),
        Status::Conflict,
        "MFA_ALREADY_ENABLED",
    );
}

#[test]
fn confirm_errors() {
    let s = server();
    let (_, jwt) = s.bearer_for("ann@example.com");
    let confirm =
        |body: serde_json::Value| s.post_auth("/api/auth/mfa/enroll/confirm", &jwt, Some(&body));
    assert_error(
        confirm(json!({"code": "123456"})),
        Status::BadRequest,
        "MFA_NO_PENDING",
    );
    let b = assert_error(confirm(json!({})), Status::BadRequest, "VALIDATION_ERROR");
    assert_eq!(b["details"]["field"], "code");
    let b = assert_error(
        confirm(json!({"code": 123456})),
        Status::BadRequest,
        "VALIDATION_ERROR",
    );
    assert_eq!(b["details"]["field"], "code");
    let secret = decode_secret(
        json_of(s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None))["secret"]
            .as_str()
            .unwrap(),
    );
    let now = s.clock.now_();
    let wrong = format!(
        "{:06}",
        (code_at(&secret, now).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    assert_error(
        confirm(json!({"code": wrong})),
        Status::BadRequest,
        "INVALID_CODE",
    );
    assert_error(
        confirm(json!({"code": "abc"})),
        Status::BadRequest,
        "INVALID_CODE",
    );
    // Two steps away is outside the window.
    let far = slugbase::mfa::totp::code_for_step(&secret, slugbase::mfa::totp::step_of(now) + 2, 6);
    assert_error(
        confirm(json!({"code": far})),
        Status::BadRequest,
        "INVALID_CODE",
    );
    // Spaces and hyphens are ignored; the next step is accepted.
    let next =
        slugbase::mfa::totp::code_for_step(&secret, slugbase::mfa::totp::step_of(now) + 1, 6);
    let spaced = format!("{} {}", &next[..3], &next[3..]);
    assert_eq!(confirm(json!({"code": spaced})).status(), Status::Ok);
    let st = json_of(s.get_auth("/api/auth/mfa/status", &jwt));
    assert_eq!(st["enabled"], true);
    assert_eq!(st["pending"], false);
    assert_eq!(st["backup_codes_remaining"], 10);
    assert_eq!(st["enrolled_at"], "2027-01-15T08:00:00Z");
    assert_error(
        confirm(json!({"code": "123456"})),
        Status::Conflict,
        "MFA_ALREADY_ENABLED",
    );
}

#[test]
fn cancel_clears_pending_and_refuses_when_enabled() {
    let s = server();
    let (_, jwt) = s.bearer_for("ann@example.com");
    assert_eq!(
        s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None)
            .status(),
        Status::Ok
    );
    s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None);
    assert_eq!(
        json_of(s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None)),
        json!({"ok": true})
    );
    assert_eq!(
        json_of(s.get_auth("/api/auth/mfa/status", &jwt))["pending"],
        false
    );
    let res = s.post_auth(
        "/api/auth/mfa/enroll/confirm",
        &jwt,
        Some(&json!({"code": "123456"})),
    );
    assert_error(res, Status::BadRequest, "MFA_NO_PENDING");
    s.enroll(&jwt);
    assert_error(
        s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None),
        Status::Conflict,
        "MFA_ALREADY_ENABLED",
    );
}

#[test]
fn disable_checks_and_removes_everything() {
    let s = server();
    let (id, jwt) = s.bearer_for("ann@example.com");
    let disable = |body: serde_json::Value| s.post_auth("/api/auth/mfa/disable", &jwt, Some(&body));
    assert_error(
        disable(json!({"code": "123456", "password": PASSWORD})),
        Status::BadRequest,
        "MFA_NOT_ENABLED",
    );
    let (secret, codes) = s.enroll(&jwt);
    let b = assert_error(
        disable(json!({"password": PASSWORD})),
        Status::BadRequest,
        "VALIDATION_ERROR",
    );
    assert_eq!(b["details"]["field"], "code");
    let b = assert_error(
        disable(json!({"code": "123456", "password": 12})),
        Status::BadRequest,
        "VALIDATION_ERROR",
    );
    assert_eq!(b["details"]["field"], "password");
    assert_error(
        disable(json!({"code": codes[0]})),
        Status::BadRequest,
        "PASSWORD_REQUIRED",
    );
    assert_error(
        disable(json!({"code": codes[0], "password": "wrong password"})),
        Status::Unauthorized,
        "INVALID_PASSWORD",
    );
    assert_error(
        disable(json!({"code": "000000", "password": PASSWORD})),
        Status::BadRequest,
        "INVALID_CODE",
    );
    assert_error(
        disable(json!({"code": "aaaa-bbbb-cccc-dddd", "password": PASSWORD})),
        Status::BadRequest,
        "INVALID_CODE",
    );
    s.next_step();
    let code = code_at(&secret, s.clock.now_());
    assert_eq!(
        json_of(disable(json!({"code": code, "password": PASSWORD}))),
        json!({"ok": true})
    );
    let conn = s.app().db.get().unwrap();
    let (secret_col, enabled): (Option<Vec<u8>>, bool) = conn
        .query_row(
            "SELECT mfa_secret, mfa_enabled FROM users WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((secret_col, enabled), (None, false));
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM backup_codes WHERE user_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        json_of(s.get_auth("/api/auth/mfa/status", &jwt)),
        json!({"enabled": false, "enrolled_at": null, "pending": false, "backup_codes_remaining": 0})
    );
}

#[test]
fn oidc_only_account_disables_without_password() {
    let s = server();
    let id = s.user_with("sso@example.com", None);
    // An OIDC-only account has no password login, so mint a session for it directly.
    let app = s.app().clone();
    let conn = app.db.get().unwrap();
    let client = slugbase::auth::request::ClientInfo::default();
    let sess =
        slugbase::auth::session::create(&app, &conn, id, s.clock.now_(), false, &client).unwrap();
    let jwt = sess.access;
    let (_, codes) = s.enroll(&jwt);
    let res = s.post_auth(
        "/api/auth/mfa/backup/regenerate",
        &jwt,
        Some(&json!({"code": codes[0]})),
    );
    let fresh = json_of(res)["backup_codes"].as_array().unwrap().clone();
    let res = s.post_auth(
        "/api/auth/mfa/disable",
        &jwt,
        Some(&json!({"code": fresh[0]})),
    );
    assert_eq!(json_of(res), json!({"ok": true}));
}

#[test]
fn regenerate_replaces_codes() {
    let s = server();
    let (_, jwt) = s.bearer_for("ann@example.com");
    let regen =
        |body: serde_json::Value| s.post_auth("/api/auth/mfa/backup/regenerate", &jwt, Some(&body));
    assert_error(
        regen(json!({"code": "123456", "password": PASSWORD})),
        Status::BadRequest,
        "MFA_NOT_ENABLED",
    );
    let (_, old) = s.enroll(&jwt);
    assert_error(
        regen(json!({"code": old[0]})),
        Status::BadRequest,
        "PASSWORD_REQUIRED",
    );
    assert_error(
        regen(json!({"code": old[0], "password": "nope nope"})),
        Status::Unauthorized,
        "INVALID_PASSWORD",
    );
    assert_error(
        regen(json!({"code": "111111", "password": PASSWORD})),
        Status::BadRequest,
        "INVALID_CODE",
    );
    let res = regen(json!({"code": old[0].to_uppercase().replace('-', " "), "password": PASSWORD}));
    assert_eq!(res.status(), Status::Ok);
    let new: Vec<String> = json_of(res)["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)));
    // The old codes died with the regeneration.
    assert_error(
        regen(json!({"code": old[1], "password": PASSWORD})),
        Status::BadRequest,
        "INVALID_CODE",
    );
    assert_eq!(
        json_of(s.get_auth("/api/auth/mfa/status", &jwt))["backup_codes_remaining"],
        10
    );
}

#[test]
fn events_are_recorded_newest_first_without_secrets() {
    let s = server();
    let (_, jwt) = s.bearer_for("ann@example.com");
    let ua = Header::new("User-Agent", "test-agent/1.0");
    s.client
        .post("/api/auth/mfa/enroll/begin")
        .header(bearer(&jwt))
        .header(ua.clone())
        .dispatch();
    s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None);
    let (_, codes) = s.enroll(&jwt);
    s.post_auth(
        "/api/auth/mfa/disable",
        &jwt,
        Some(&json!({"code": "000000", "password": PASSWORD})),
    );
    s.post_auth(
        "/api/auth/mfa/disable",
        &jwt,
        Some(&json!({"code": codes[0], "password": PASSWORD})),
    );
    let res = s
        .client
        .get("/api/auth/mfa/events")
        .header(bearer(&jwt))
        .dispatch();
    let events = json_of(res);
    let names: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "disable_success",
            "backup_code_used",
            "disable_failure",
            "confirm_success",
            "begin",
            "cancel",
            "begin",
            "password_sign_in"
        ]
    );
    assert_eq!(events[6]["user_agent"], "test-agent/1.0");
    assert!(events[0]["at"].as_str().unwrap().ends_with('Z'));
    assert!(events[0].as_object().unwrap().contains_key("ip"));
    let text = events.to_string();
    assert!(!codes.iter().any(|c| text.contains(c.as_str())));
}

#[test]
fn events_are_capped_at_fifty() {
    let s = server_with(&[
        ("begin_limit_per_user", json!(1000)),
        ("begin_limit_per_ip", json!(1000)),
    ]);
    let (_, jwt) = s.bearer_for("ann@example.com");
    // 60 events: a begin and a cancel each time (a cancel with nothing pending writes none).
    for _ in 0..30 {
        s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None);
        s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None);
    }
    assert_eq!(
        json_of(s.get_auth("/api/auth/mfa/events", &jwt))
            .as_array()
            .unwrap()
            .len(),
        50
    );
}
