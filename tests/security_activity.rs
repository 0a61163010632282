//! "Security activity" covers more than MFA (issue 16): password sign-ins and failures,
//! sign-ins with a backup code (one event), token changes and ended sessions, in the one
//! paged events list.

mod common;

use common::*;
use rocket::http::Status;
use serde_json::{json, Value};

fn names(s: &TestServer, jwt: &str) -> Vec<String> {
    json_of(s.get_auth("/api/auth/mfa/events", jwt))
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sign_ins_tokens_and_sessions_are_security_activity() {
    let s = server();
    s.user("ann@example.com");
    let wrong = json!({"email": "ann@example.com", "password": "not the password"});
    assert_error(
        s.post_json("/api/auth/login", &wrong, &[]),
        Status::Unauthorized,
        "INVALID_CREDENTIALS",
    );
    // An unknown email writes nothing anywhere.
    let stranger = json!({"email": "nobody@example.com", "password": "whatever it is"});
    s.post_json("/api/auth/login", &stranger, &[]);
    let (_, other) = s.login("ann@example.com");
    let (_, jwt) = s.login("ann@example.com");
    assert_eq!(
        names(&s, &jwt),
        ["password_sign_in", "password_sign_in", "password_failure"]
    );
    let created = json_of(s.post_auth("/api/tokens", &jwt, Some(&json!({"name": "ci"}))));
    let id = created["id"].as_i64().unwrap();
    let res = s
        .client
        .delete(format!("/api/tokens/{id}"))
        .header(bearer(&jwt))
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    let list = json_of(s.get_auth("/api/auth/sessions", &jwt));
    let theirs: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["current"] == false)
        .collect();
    assert_eq!(theirs.len(), 1);
    let res = s
        .client
        .delete(format!(
            "/api/auth/sessions/{}",
            theirs[0]["id"].as_str().unwrap()
        ))
        .header(bearer(&jwt))
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(
        s.get_auth("/api/auth/me", &other).status(),
        Status::Unauthorized
    );
    let (_, third) = s.login("ann@example.com");
    let res = s.post_auth("/api/auth/sessions/revoke-others", &third, None);
    assert_eq!(json_of(res)["revoked"], 1);
    // With nothing left to end, no event.
    s.post_auth("/api/auth/sessions/revoke-others", &third, None);
    s.post_auth("/api/auth/logout", &third, None);
    let (_, jwt) = s.login("ann@example.com");
    assert_eq!(
        names(&s, &jwt),
        [
            "password_sign_in",
            "signed_out",
            "other_sessions_ended",
            "password_sign_in",
            "session_ended",
            "token_revoked",
            "token_created",
            "password_sign_in",
            "password_sign_in",
            "password_failure",
        ]
    );
}

#[test]
fn a_backup_code_sign_in_is_one_event() {
    let s = server();
    let (_, jwt) = s.bearer_for("ann@example.com");
    let (_, codes) = s.enroll(&jwt);
    let pending = s.password_step("ann@example.com");
    let res = verify(&s, &pending, &codes[0]);
    assert_eq!(res.status(), Status::Ok);
    let all = names(&s, &jwt);
    assert_eq!(all[0], "verify_backup_success", "{all:?}");
    assert!(!all.contains(&"backup_code_used".to_string()), "{all:?}");
}
