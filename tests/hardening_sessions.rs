//! Issue 13: sessions that stay dead, idle timeouts, the sessions list, MFA changes ending
//! other sessions, and the browser-facing defaults (public_url, Secure, HSTS, JSON-only cookie
//! writes).

mod common;

use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use rocket::http::{ContentType, Header, Status};
use rocket::local::blocking::LocalResponse;
use serde_json::{json, Value};

const ANN: &str = "ann@example.com";
const BOB: &str = "bob@example.com";

/// Every `Set-Cookie` header of a response.
fn set_cookies(res: &LocalResponse<'_>) -> Vec<String> {
    res.headers()
        .get("Set-Cookie")
        .map(str::to_string)
        .collect()
}

/// The `Set-Cookie` header that sets (not clears) `name`.
fn setting<'a>(all: &'a [String], name: &str) -> &'a str {
    let prefix = format!("{name}=");
    all.iter()
        .find(|c| c.starts_with(&prefix) && !c.starts_with(&format!("{name}=;")))
        .unwrap_or_else(|| panic!("{name} set in {all:?}"))
}

/// The claims of a JWT, unverified.
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

/// `GET /api/auth/me` with the `slugbase.sid` cookie.
fn me_by_sid(s: &TestServer, sid: &str) -> Status {
    s.client
        .get("/api/auth/me")
        .cookie(cookie("slugbase.sid", sid))
        .dispatch()
        .status()
}

/// `GET /api/auth/me` with the `token` cookie.
fn me_by_token_cookie(s: &TestServer, jwt: &str) -> Status {
    s.client
        .get("/api/auth/me")
        .cookie(cookie("token", jwt))
        .dispatch()
        .status()
}

/// `GET /api/auth/me` with a Bearer credential.
fn me(s: &TestServer, jwt: &str) -> Status {
    s.get_auth("/api/auth/me", jwt).status()
}

/// Asserts that a session's JWT (as Bearer and as cookie) and its sid cookie are all dead.
fn assert_dead(s: &TestServer, sid: &str, jwt: &str, what: &str) {
    assert_error(
        s.get_auth("/api/auth/me", jwt),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    assert_eq!(
        me_by_token_cookie(s, jwt),
        Status::Unauthorized,
        "{what}: token cookie"
    );
    assert_eq!(
        me_by_sid(s, sid),
        Status::Unauthorized,
        "{what}: sid cookie"
    );
}

/// Asserts that a session's JWT and sid cookie both still work.
fn assert_alive(s: &TestServer, sid: &str, jwt: &str, what: &str) {
    assert_eq!(me(s, jwt), Status::Ok, "{what}: bearer");
    assert_eq!(me_by_sid(s, sid), Status::Ok, "{what}: sid cookie");
}

/// A password login with a user agent and a client address; returns (sid, jwt).
fn login_from(s: &TestServer, email: &str, ua: &str, remote: &str) -> (String, String) {
    let mut req = s
        .client
        .post("/api/auth/login")
        .header(ContentType::JSON)
        .header(Header::new("User-Agent", ua.to_string()))
        .body(json!({"email": email, "password": PASSWORD}).to_string());
    req.set_remote(remote.parse::<SocketAddr>().unwrap());
    let res = req.dispatch();
    assert_eq!(res.status(), Status::Ok);
    let sid = res
        .cookies()
        .get("slugbase.sid")
        .unwrap()
        .value()
        .to_string();
    let jwt = res.cookies().get("token").unwrap().value().to_string();
    (sid, jwt)
}

/// The password step for an account with MFA: returns the pending cookie.
fn password_step(s: &TestServer, email: &str) -> String {
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": email, "password": PASSWORD}),
        &[],
    );
    assert_eq!(res.status(), Status::Ok);
    pending_of(res)
}

/// A full sign-in with a second factor; returns (sid, jwt).
fn mfa_login(s: &TestServer, email: &str, code: &str) -> (String, String) {
    let pending = password_step(s, email);
    let res = verify(s, &pending, code);
    assert_eq!(res.status(), Status::Ok);
    let sid = res
        .cookies()
        .get("slugbase.sid")
        .unwrap()
        .value()
        .to_string();
    let jwt = res.cookies().get("token").unwrap().value().to_string();
    (sid, jwt)
}

fn sessions_of(s: &TestServer, jwt: &str) -> Vec<Value> {
    let res = s.get_auth("/api/auth/sessions", jwt);
    assert_eq!(res.status(), Status::Ok);
    json_of(res).as_array().expect("array").clone()
}

fn delete_session<'a>(s: &'a TestServer, jwt: &str, id: &str) -> LocalResponse<'a> {
    s.client
        .delete(format!("/api/auth/sessions/{id}"))
        .header(bearer(jwt))
        .header(ContentType::JSON)
        .dispatch()
}

fn new_token(s: &TestServer, jwt: &str, name: &str) -> String {
    let res = s.post_auth("/api/tokens", jwt, Some(&json!({ "name": name })));
    assert_eq!(res.status(), Status::Created);
    json_of(res)["token"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------
// Sessions and ids
// ---------------------------------------------------------------------------------------

#[test]
fn logged_out_jwt_stays_dead_after_a_new_login() {
    let s = server();
    s.user(ANN);
    let (sid1, jwt1) = s.login(ANN);
    let res = s.post_auth("/api/auth/logout", &jwt1, None);
    assert_eq!(res.status(), Status::Ok);
    let (sid2, jwt2) = s.login(ANN);
    assert_dead(&s, &sid1, &jwt1, "logged-out session");
    assert_alive(&s, &sid2, &jwt2, "new session");
    // And again, after the new one is logged out and a third begins.
    s.post_auth("/api/auth/logout", &jwt2, None);
    let (sid3, jwt3) = s.login(ANN);
    assert_dead(&s, &sid1, &jwt1, "first session");
    assert_dead(&s, &sid2, &jwt2, "second session");
    assert_alive(&s, &sid3, &jwt3, "third session");
}

#[test]
fn deleted_users_credentials_do_not_open_the_next_account() {
    let s = server();
    let ann_id = s.user(ANN);
    let (ann_sid, ann_jwt) = s.login(ANN);
    let ann_token = new_token(&s, &ann_jwt, "ann's script");
    let ann_token_id = json_of(s.get_auth("/api/tokens", &ann_jwt))[0]["id"]
        .as_i64()
        .unwrap();
    {
        let conn = s.app().db.get().unwrap();
        assert!(slugbase::db::users::delete(&conn, ann_id).unwrap());
    }
    let bob_id = s.user(BOB);
    assert_ne!(bob_id, ann_id, "user ids are never reused");
    let (_, bob_jwt) = s.login(BOB);
    let bob_token = new_token(&s, &bob_jwt, "bob's script");
    let bob_token_id = json_of(s.get_auth("/api/tokens", &bob_jwt))[0]["id"]
        .as_i64()
        .unwrap();
    assert_ne!(bob_token_id, ann_token_id, "token ids are never reused");

    assert_dead(&s, &ann_sid, &ann_jwt, "deleted user's session");
    assert_error(
        s.get_auth("/api/auth/me", &ann_token),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    // The deleted user's JWT cannot mint a token in the new account either.
    let res = s.post_auth("/api/tokens", &ann_jwt, Some(&json!({"name": "ghost"})));
    assert_error(res, Status::Unauthorized, "UNAUTHORIZED");
    let me = json_of(s.get_auth("/api/auth/me", &bob_jwt));
    assert_eq!(me["id"], bob_id);
    assert_eq!(me["email"], BOB);
    assert_eq!(s.get_auth("/api/auth/me", &bob_token).status(), Status::Ok);
}

#[test]
fn session_row_ids_are_never_reused() {
    let s = server();
    s.user(ANN);
    let (_, jwt1) = s.login(ANN);
    let max_id = |s: &TestServer| -> i64 {
        s.app()
            .db
            .get()
            .unwrap()
            .query_row("SELECT MAX(id) FROM sessions", [], |r| r.get(0))
            .unwrap()
    };
    let first = max_id(&s);
    s.post_auth("/api/auth/logout", &jwt1, None);
    s.login(ANN);
    assert!(max_id(&s) > first, "a new session gets a new row id");
}

#[test]
fn access_jwt_names_its_session_by_a_random_handle() {
    let s = server();
    s.user(ANN);
    let (_, jwt1) = s.login(ANN);
    let (_, jwt2) = s.login(ANN);
    let (c1, c2) = (claims(&jwt1), claims(&jwt2));
    let h1 = c1["sid"]
        .as_str()
        .unwrap_or_else(|| panic!("sid is a string handle: {c1}"));
    let h2 = c2["sid"].as_str().unwrap();
    assert!(h1.parse::<i64>().is_err(), "not a row id: {h1}");
    // At least 128 bits: 22 base64url characters or 32 hex digits.
    assert!(h1.len() >= 22, "{h1}");
    assert_ne!(h1, h2);
    // The handle is not the cookie value either.
    let rows: Vec<i64> = {
        let conn = s.app().db.get().unwrap();
        let mut st = conn.prepare("SELECT id FROM sessions").unwrap();
        let ids = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        ids
    };
    assert!(!rows.iter().any(|id| id.to_string() == h1));
}

#[test]
fn idle_sessions_die_and_use_keeps_them_alive() {
    let s = server_with(&[("session_idle_secs", json!(600))]);
    s.user(ANN);
    let (sid, jwt) = s.login(ANN);
    s.clock.advance(500);
    assert_eq!(me(&s, &jwt), Status::Ok, "used within the idle limit");
    s.clock.advance(500);
    // 1000 s after sign-in, but only 500 s after the last use.
    assert_eq!(me_by_sid(&s, &sid), Status::Ok, "kept alive by use");
    assert_eq!(me(&s, &jwt), Status::Ok, "kept alive by use");
    s.clock.advance(601);
    assert_dead(&s, &sid, &jwt, "idle for 601 s");
    // Even a fresh request does not bring it back.
    s.clock.advance(1);
    assert_eq!(me_by_sid(&s, &sid), Status::Unauthorized);
}

#[test]
fn default_idle_timeout_is_a_day() {
    let s = server();
    s.user(ANN);
    let (sid, _) = s.login(ANN);
    s.clock.advance(86_000);
    assert_eq!(me_by_sid(&s, &sid), Status::Ok, "within a day");
    s.clock.advance(86_000);
    assert_eq!(me_by_sid(&s, &sid), Status::Ok, "kept alive by use");
    // The absolute lifetime (7 days) is far away, but a day and a bit of silence ends it.
    s.clock.advance(86_401);
    assert_eq!(me_by_sid(&s, &sid), Status::Unauthorized);
}

#[test]
fn token_cookie_lives_as_long_as_its_jwt() {
    let s = server_with(&[("access_ttl_secs", json!(1200))]);
    s.user(ANN);
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": ANN, "password": PASSWORD}),
        &[],
    );
    assert_eq!(res.status(), Status::Ok);
    let set = set_cookies(&res);
    let token = setting(&set, "token");
    assert!(token.contains("Max-Age=1200"), "{token}");
    let sid = setting(&set, "slugbase.sid");
    assert!(sid.contains("Max-Age=604800"), "{sid}");
    let jwt = res.cookies().get("token").unwrap().value().to_string();
    let c = claims(&jwt);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        1200
    );

    // A session shorter than the access TTL caps the JWT, and the cookie with it.
    let s = server_with(&[("session_ttl_secs", json!(900))]);
    s.user(ANN);
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": ANN, "password": PASSWORD}),
        &[],
    );
    let set = set_cookies(&res);
    let token = setting(&set, "token");
    assert!(token.contains("Max-Age=900"), "{token}");
}

#[test]
fn token_cookie_of_an_mfa_sign_in_lives_as_long_as_its_jwt() {
    let s = server_with(&[("access_ttl_secs", json!(1500))]);
    s.user(ANN);
    let (_, jwt) = s.login(ANN);
    let (_, codes) = s.enroll(&jwt);
    let pending = password_step(&s, ANN);
    let res = verify(&s, &pending, &codes[0]);
    assert_eq!(res.status(), Status::Ok);
    let set = set_cookies(&res);
    let token = setting(&set, "token");
    assert!(token.contains("Max-Age=1500"), "{token}");
}

#[test]
fn login_presenting_a_live_session_cookie_revokes_it() {
    let s = server();
    s.user(ANN);
    let (sid1, jwt1) = s.login(ANN);
    let res = s
        .client
        .post("/api/auth/login")
        .header(ContentType::JSON)
        .cookie(cookie("slugbase.sid", &sid1))
        .body(json!({"email": ANN, "password": PASSWORD}).to_string())
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    let sid2 = res
        .cookies()
        .get("slugbase.sid")
        .unwrap()
        .value()
        .to_string();
    let jwt2 = res.cookies().get("token").unwrap().value().to_string();
    assert_ne!(sid1, sid2);
    assert_dead(&s, &sid1, &jwt1, "session whose cookie came with the login");
    assert_alive(&s, &sid2, &jwt2, "the new session");

    // The `token` cookie names a session as well.
    let res = s
        .client
        .post("/api/auth/login")
        .header(ContentType::JSON)
        .cookie(cookie("token", &jwt2))
        .body(json!({"email": ANN, "password": PASSWORD}).to_string())
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    let sid3 = res
        .cookies()
        .get("slugbase.sid")
        .unwrap()
        .value()
        .to_string();
    let jwt3 = res.cookies().get("token").unwrap().value().to_string();
    assert_dead(
        &s,
        &sid2,
        &jwt2,
        "session whose token cookie came with the login",
    );
    assert_alive(&s, &sid3, &jwt3, "the third session");
    assert_eq!(sessions_of(&s, &jwt3).len(), 1);
}

// ---------------------------------------------------------------------------------------
// Your sessions
// ---------------------------------------------------------------------------------------

#[test]
fn sessions_list_shows_my_sessions_with_opaque_ids() {
    let s = server();
    let ann_id = s.user(ANN);
    s.user(BOB);
    let (sid_a, jwt_a) = login_from(&s, ANN, "agent-a/1.0", "198.51.100.7:4000");
    s.clock.advance(100);
    let (_, jwt_b) = login_from(&s, ANN, "agent-b/2.0", "203.0.113.9:4000");
    let (_, bob_jwt) = s.login(BOB);

    let list = sessions_of(&s, &jwt_b);
    assert_eq!(list.len(), 2, "{list:?}");
    for item in &list {
        let mut keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "created_at",
                "current",
                "id",
                "ip",
                "last_seen_at",
                "mfa",
                "user_agent"
            ]
        );
        assert!(item["id"].is_string(), "{item}");
        assert!(item["last_seen_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(item["mfa"], false);
    }
    // Newest first.
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[0]["user_agent"], "agent-b/2.0");
    assert_eq!(list[0]["ip"], "203.0.113.9");
    assert_eq!(list[0]["created_at"], slugbase::clock::rfc3339(T0 + 100));
    assert_eq!(list[1]["current"], false);
    assert_eq!(list[1]["user_agent"], "agent-a/1.0");
    assert_eq!(list[1]["ip"], "198.51.100.7");
    assert_eq!(list[1]["created_at"], slugbase::clock::rfc3339(T0));
    assert_ne!(list[0]["id"], list[1]["id"]);

    // The id is neither the row id nor the handle the JWT carries.
    let row_ids: Vec<String> = {
        let conn = s.app().db.get().unwrap();
        let mut st = conn
            .prepare("SELECT id FROM sessions WHERE user_id = ?1")
            .unwrap();
        let ids = st
            .query_map([ann_id], |r| r.get::<_, i64>(0))
            .unwrap()
            .map(|r| r.unwrap().to_string())
            .collect();
        ids
    };
    let handles = [claims(&jwt_a)["sid"].clone(), claims(&jwt_b)["sid"].clone()];
    for item in &list {
        let id = item["id"].as_str().unwrap();
        assert!(!row_ids.iter().any(|r| r == id), "{id} is a row id");
        assert!(!handles.iter().any(|h| h == id), "{id} is a handle");
        assert!(id.parse::<i64>().is_err(), "{id}");
    }

    // `current` follows the credential that asks, cookie or Bearer.
    let res = s
        .client
        .get("/api/auth/sessions")
        .cookie(cookie("slugbase.sid", &sid_a))
        .dispatch();
    let by_cookie = json_of(res);
    assert_eq!(by_cookie[0]["current"], false);
    assert_eq!(by_cookie[1]["current"], true);

    // Bob sees only his own.
    let bob = sessions_of(&s, &bob_jwt);
    assert_eq!(bob.len(), 1);
    assert!(!list.iter().any(|i| i["id"] == bob[0]["id"]));
    assert_error(
        s.client.get("/api/auth/sessions").dispatch(),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
}

#[test]
fn sessions_list_marks_sessions_that_passed_a_second_factor() {
    let s = server();
    s.user(ANN);
    let (_, jwt_b) = s.login(ANN);
    assert_eq!(sessions_of(&s, &jwt_b)[0]["mfa"], false);
    let (_, codes) = s.enroll(&jwt_b);
    let (_, jwt_c) = mfa_login(&s, ANN, &codes[0]);
    let list = sessions_of(&s, &jwt_c);
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[0]["mfa"], true, "signed in with a code: {list:?}");
    assert_eq!(
        list[1]["mfa"], true,
        "confirmed a code in this session: {list:?}"
    );
}

#[test]
fn delete_one_of_my_sessions() {
    let s = server();
    s.user(ANN);
    s.user(BOB);
    let (sid_a, jwt_a) = s.login(ANN);
    let (sid_b, jwt_b) = s.login(ANN);
    let (bob_sid, bob_jwt) = s.login(BOB);
    let list = sessions_of(&s, &jwt_b);
    let a_id = list.iter().find(|i| i["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_id = sessions_of(&s, &bob_jwt)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let res = delete_session(&s, &jwt_b, &a_id);
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(json_of(res), json!({"ok": true}));
    assert_dead(&s, &sid_a, &jwt_a, "deleted session");
    assert_alive(&s, &sid_b, &jwt_b, "caller's session");
    assert_eq!(sessions_of(&s, &jwt_b).len(), 1);

    // Gone already, another user's, garbage, or a row id: all 404.
    assert_error(
        delete_session(&s, &jwt_b, &a_id),
        Status::NotFound,
        "SESSION_NOT_FOUND",
    );
    assert_error(
        delete_session(&s, &jwt_b, &bob_id),
        Status::NotFound,
        "SESSION_NOT_FOUND",
    );
    assert_alive(&s, &bob_sid, &bob_jwt, "bob's session");
    assert_error(
        delete_session(&s, &jwt_b, "garbage"),
        Status::NotFound,
        "SESSION_NOT_FOUND",
    );
    let row: i64 = s
        .app()
        .db
        .get()
        .unwrap()
        .query_row("SELECT MAX(id) FROM sessions", [], |r| r.get(0))
        .unwrap();
    for id in (1..=row).map(|i| i.to_string()) {
        assert_error(
            delete_session(&s, &jwt_b, &id),
            Status::NotFound,
            "SESSION_NOT_FOUND",
        );
    }
    assert_alive(&s, &sid_b, &jwt_b, "caller's session");
    assert_alive(&s, &bob_sid, &bob_jwt, "bob's session");
    // Bob cannot end Ann's session.
    let b_id = sessions_of(&s, &jwt_b)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_error(
        delete_session(&s, &bob_jwt, &b_id),
        Status::NotFound,
        "SESSION_NOT_FOUND",
    );
    assert_alive(&s, &sid_b, &jwt_b, "caller's session");
}

#[test]
fn revoke_my_other_sessions() {
    let s = server();
    s.user(ANN);
    s.user(BOB);
    let (sid_a, jwt_a) = s.login(ANN);
    let (sid_b, jwt_b) = s.login(ANN);
    let (sid_c, jwt_c) = s.login(ANN);
    let (bob_sid, bob_jwt) = s.login(BOB);
    let res = s.post_auth("/api/auth/sessions/revoke-others", &jwt_c, None);
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(json_of(res), json!({"ok": true, "revoked": 2}));
    assert_dead(&s, &sid_a, &jwt_a, "first session");
    assert_dead(&s, &sid_b, &jwt_b, "second session");
    assert_alive(&s, &sid_c, &jwt_c, "caller's session");
    assert_alive(&s, &bob_sid, &bob_jwt, "another user's session");
    let list = sessions_of(&s, &jwt_c);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["current"], true);
    let res = s.post_auth("/api/auth/sessions/revoke-others", &jwt_c, None);
    assert_eq!(json_of(res), json!({"ok": true, "revoked": 0}));
}

// ---------------------------------------------------------------------------------------
// MFA changes end the account's other sessions
// ---------------------------------------------------------------------------------------

#[test]
fn confirm_ends_other_sessions_but_not_mine() {
    let s = server();
    s.user(ANN);
    s.user(BOB);
    let (sid_a, jwt_a) = s.login(ANN);
    let (sid_b, jwt_b) = s.login(ANN);
    let (bob_sid, bob_jwt) = s.login(BOB);
    s.enroll(&jwt_b);
    assert_dead(&s, &sid_a, &jwt_a, "other session after confirm");
    assert_alive(&s, &sid_b, &jwt_b, "confirming session");
    assert_alive(&s, &bob_sid, &bob_jwt, "another user's session");
}

#[test]
fn disable_ends_other_sessions_but_not_mine() {
    let s = server();
    s.user(ANN);
    let (sid_b, jwt_b) = s.login(ANN);
    let (_, codes) = s.enroll(&jwt_b);
    let (sid_c, jwt_c) = mfa_login(&s, ANN, &codes[0]);
    let (sid_d, jwt_d) = mfa_login(&s, ANN, &codes[1]);
    let res = s.post_auth(
        "/api/auth/mfa/disable",
        &jwt_d,
        Some(&json!({"code": codes[2], "password": PASSWORD})),
    );
    assert_eq!(json_of(res), json!({"ok": true}));
    assert_dead(&s, &sid_b, &jwt_b, "enrolling session after disable");
    assert_dead(&s, &sid_c, &jwt_c, "other session after disable");
    assert_alive(&s, &sid_d, &jwt_d, "disabling session");
}

// ---------------------------------------------------------------------------------------
// Browser-facing defaults
// ---------------------------------------------------------------------------------------

#[test]
fn https_public_url_means_secure_cookies_and_hsts() {
    let s = server_with(&[("public_url", json!("https://auth.home.example"))]);
    s.user(ANN);
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": ANN, "password": PASSWORD}),
        &[],
    );
    assert_eq!(res.status(), Status::Ok);
    let hsts = res
        .headers()
        .get_one("Strict-Transport-Security")
        .map(str::to_string);
    let set = set_cookies(&res);
    assert!(set.len() >= 2, "{set:?}");
    assert!(set.iter().all(|c| c.contains("Secure")), "{set:?}");
    assert!(
        hsts.as_deref()
            .is_some_and(|h| h.starts_with("max-age=63072000")),
        "{hsts:?}"
    );
    let res = s.client.get("/api/health").dispatch();
    assert!(
        res.headers()
            .get_one("Strict-Transport-Security")
            .is_some_and(|h| h.starts_with("max-age=63072000")),
        "every response carries HSTS"
    );
    let res = s.client.get("/").dispatch();
    assert!(res.headers().get_one("Strict-Transport-Security").is_some());

    // An explicit cookie_secure wins over the default.
    let s = server_with(&[
        ("public_url", json!("https://auth.home.example")),
        ("cookie_secure", json!(false)),
    ]);
    s.user(ANN);
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": ANN, "password": PASSWORD}),
        &[],
    );
    let set = set_cookies(&res);
    assert!(!set.iter().any(|c| c.contains("Secure")), "{set:?}");

    // Plain http: no HSTS, no Secure.
    let s = server();
    let res = s.client.get("/api/health").dispatch();
    assert!(res.headers().get_one("Strict-Transport-Security").is_none());
}

#[test]
fn origin_is_compared_with_public_url_exactly() {
    let s = server_with(&[("public_url", json!("https://auth.home.example"))]);
    s.user(ANN);
    let (sid, _) = s.login(ANN);
    let cancel = |origin: &str, host: &str| {
        s.client
            .post("/api/auth/mfa/enroll/cancel")
            .header(ContentType::JSON)
            .header(Header::new("Origin", origin.to_string()))
            .header(Header::new("Host", host.to_string()))
            .cookie(cookie("slugbase.sid", &sid))
            .dispatch()
    };
    // Behind a proxy the Host header is the internal one; the Origin matches public_url.
    let res = cancel("https://auth.home.example", "127.0.0.1:8000");
    assert_eq!(res.status(), Status::Ok, "same origin as public_url");
    // Another scheme, port or host is cross-site even when the Host header agrees.
    for (origin, host) in [
        ("http://auth.home.example", "auth.home.example"),
        ("https://auth.home.example:8443", "auth.home.example:8443"),
        ("https://other.example", "other.example"),
        ("http://other", "other"),
        ("null", "auth.home.example"),
    ] {
        assert_error(cancel(origin, host), Status::Forbidden, "CSRF_REJECTED");
    }
    // Login CSRF is judged the same way.
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": ANN, "password": PASSWORD}),
        &[
            Header::new("Origin", "https://auth.home.example"),
            Header::new("Host", "10.0.0.5:8000"),
        ],
    );
    assert_eq!(res.status(), Status::Ok);
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": ANN, "password": PASSWORD}),
        &[
            Header::new("Origin", "http://attacker.example"),
            Header::new("Host", "attacker.example"),
        ],
    );
    assert_error(res, Status::Forbidden, "CSRF_REJECTED");
}

#[test]
fn cookie_writes_must_send_json() {
    let s = server();
    s.user(ANN);
    let (sid, jwt) = s.login(ANN);
    let token_id = {
        let res = s.post_auth("/api/tokens", &jwt, Some(&json!({"name": "t"})));
        json_of(res)["id"].as_i64().unwrap()
    };
    // No content type at all.
    let res = s
        .client
        .post("/api/auth/logout")
        .cookie(cookie("slugbase.sid", &sid))
        .dispatch();
    assert_error(res, Status::Forbidden, "CSRF_REJECTED");
    assert_alive(&s, &sid, &jwt, "logout refused");
    let res = s
        .client
        .post("/api/auth/mfa/enroll/cancel")
        .cookie(cookie("token", &jwt))
        .dispatch();
    assert_error(res, Status::Forbidden, "CSRF_REJECTED");
    // A form or text/plain (what a cross-site form can send).
    for ct in [ContentType::Form, ContentType::Plain] {
        let res = s
            .client
            .post("/api/auth/mfa/enroll/begin")
            .header(ct)
            .cookie(cookie("slugbase.sid", &sid))
            .dispatch();
        assert_error(res, Status::Forbidden, "CSRF_REJECTED");
    }
    let res = s
        .client
        .delete(format!("/api/tokens/{token_id}"))
        .cookie(cookie("slugbase.sid", &sid))
        .dispatch();
    assert_error(res, Status::Forbidden, "CSRF_REJECTED");
    assert_eq!(
        json_of(s.get_auth("/api/tokens", &jwt))
            .as_array()
            .unwrap()
            .len(),
        1,
        "token not deleted"
    );
    let res = s
        .client
        .post("/api/auth/sessions/revoke-others")
        .cookie(cookie("slugbase.sid", &sid))
        .dispatch();
    assert_error(res, Status::Forbidden, "CSRF_REJECTED");
    // Reads are unaffected.
    assert_eq!(me_by_sid(&s, &sid), Status::Ok);
    // JSON, with or without parameters, is accepted.
    let res = s
        .client
        .post("/api/auth/mfa/enroll/cancel")
        .header(ContentType::JSON)
        .cookie(cookie("slugbase.sid", &sid))
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    let res = s
        .client
        .post("/api/auth/mfa/enroll/cancel")
        .header(Header::new(
            "Content-Type",
            "application/json; charset=utf-8",
        ))
        .cookie(cookie("token", &jwt))
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    // Bearer requests need no content type.
    let res = s
        .client
        .post("/api/auth/mfa/enroll/cancel")
        .header(bearer(&jwt))
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    let res = s
        .client
        .delete(format!("/api/tokens/{token_id}"))
        .header(bearer(&jwt))
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    let res = s
        .client
        .post("/api/auth/logout")
        .header(bearer(&jwt))
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    assert_dead(&s, &sid, &jwt, "logged out by Bearer");
}

#[test]
fn password_sign_in_must_send_json() {
    let s = server();
    s.user(ANN);
    // The password step: a cross-site form could post text/plain or no type at all.
    let body = json!({"email": ANN, "password": PASSWORD}).to_string();
    // (A typed non-JSON body may keep the seed's 415; either way no sign-in happens.)
    let res = s
        .client
        .post("/api/auth/login")
        .header(ContentType::Plain)
        .body(body.clone())
        .dispatch();
    assert!(res.cookies().iter().next().is_none(), "no cookie set");
    match res.status() {
        Status::Forbidden => assert_error(res, Status::Forbidden, "CSRF_REJECTED"),
        _ => assert_error(res, Status::UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE"),
    };
    let res = s.client.post("/api/auth/login").body(body).dispatch();
    assert!(res.cookies().iter().next().is_none(), "no cookie set");
    assert_error(res, Status::Forbidden, "CSRF_REJECTED");
}

#[test]
fn second_sign_in_step_must_send_json() {
    let s = server();
    s.user(ANN);
    let (_, jwt) = s.login(ANN);
    let (_, codes) = s.enroll(&jwt);
    let pending = password_step(&s, ANN);
    let res = s
        .client
        .post("/api/auth/mfa/verify")
        .cookie(cookie("slugbase.mfa_pending", &pending))
        .body(json!({"code": codes[0]}).to_string())
        .dispatch();
    assert_error(res, Status::Forbidden, "CSRF_REJECTED");
    // Refused before the code was looked at: the same code still works with JSON.
    assert_eq!(verify(&s, &pending, &codes[0]).status(), Status::Ok);
}

#[test]
fn seed_curl_examples_still_work() {
    let s = server();
    s.user(ANN);
    let (_, jwt) = s.login(ANN);
    let token = new_token(&s, &jwt, "cli");
    let curl_post = |path: &str, body: Option<Value>| {
        let mut req = s
            .client
            .post(path.to_string())
            .header(ContentType::JSON)
            .header(bearer(&token));
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        req.dispatch()
    };
    let res = curl_post("/api/auth/mfa/enroll/begin", None);
    assert_eq!(res.status(), Status::Ok);
    let begin = json_of(res);
    let secret = decode_secret(begin["secret"].as_str().unwrap());
    assert!(begin["otpauth_url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    let res = curl_post(
        "/api/auth/mfa/enroll/confirm",
        Some(json!({"code": code_at(&secret, s.clock.now_())})),
    );
    assert_eq!(res.status(), Status::Ok);
    let codes = json_of(res)["backup_codes"].as_array().unwrap().clone();
    assert_eq!(codes.len(), 10);
    let status = json_of(s.get_auth("/api/auth/mfa/status", &token));
    assert_eq!(status["enabled"], true);
    // Sign in with a cookie jar.
    let res = s
        .client
        .post("/api/auth/login")
        .header(ContentType::JSON)
        .body(r#"{"email": "ann@example.com", "password": "correct horse battery"}"#)
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    let pending = res
        .cookies()
        .get("slugbase.mfa_pending")
        .unwrap()
        .value()
        .to_string();
    assert_eq!(json_of(res), json!({"mfa_required": true}));
    s.next_step();
    let res = s
        .client
        .post("/api/auth/mfa/verify")
        .header(ContentType::JSON)
        .cookie(cookie("slugbase.mfa_pending", &pending))
        .body(json!({"code": code_at(&secret, s.clock.now_())}).to_string())
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(json_of(res)["email"], ANN);
    let res = curl_post(
        "/api/auth/mfa/disable",
        Some(json!({"code": codes[0], "password": "correct horse battery"})),
    );
    assert_eq!(json_of(res), json!({"ok": true}));
    let res = curl_post("/api/auth/mfa/enroll/cancel", None);
    assert_eq!(json_of(res), json!({"ok": true}));
}
