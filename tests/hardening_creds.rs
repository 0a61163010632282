//! Issue 13: device-cookie lockout, exact login limits, password changes and resets that end
//! credentials, re-authentication for new tokens, begin limits however the path is spelled,
//! events paging and retention, and QR codes of the caller's own pending secret.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use common::*;
use rocket::futures::future::join_all;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::Client as AsyncClient;
use rocket::local::blocking::{Client, LocalResponse};
use serde_json::{json, Value};
use slugbase::clock::{rfc3339, ManualClock};

const ANN: &str = "ann@example.com";
const BOB: &str = "bob@example.com";
const DEVICE: &str = "slugbase.device";
/// A password zxcvbn scores 4.
const NEW_PASSWORD: &str = "violet tractor 4821 plum galaxy";

/// A password login, optionally presenting a device cookie.
fn login_with<'a>(
    s: &'a TestServer,
    email: &str,
    password: &str,
    device: Option<&str>,
) -> LocalResponse<'a> {
    let mut req = s
        .client
        .post("/api/auth/login")
        .header(ContentType::JSON)
        .body(json!({"email": email, "password": password}).to_string());
    if let Some(d) = device {
        req = req.cookie(cookie(DEVICE, d));
    }
    req.dispatch()
}

/// Signs in (no MFA) and returns the device cookie the server set.
fn device_of(s: &TestServer, email: &str) -> String {
    let res = login_with(s, email, PASSWORD, None);
    assert_eq!(res.status(), Status::Ok);
    res.cookies()
        .get(DEVICE)
        .unwrap_or_else(|| panic!("a successful sign-in sets {DEVICE}"))
        .value()
        .to_string()
}

fn wrong_password(s: &TestServer, email: &str, device: Option<&str>) {
    assert_error(
        login_with(s, email, "not the password", device),
        Status::Unauthorized,
        "INVALID_CREDENTIALS",
    );
}

fn set_cookies(res: &LocalResponse<'_>) -> Vec<String> {
    res.headers()
        .get("Set-Cookie")
        .map(str::to_string)
        .collect()
}

fn password_step(s: &TestServer, email: &str, password: &str) -> String {
    let res = login_with(s, email, password, None);
    assert_eq!(res.status(), Status::Ok);
    pending_of(res)
}

/// A full sign-in with a second factor; returns (sid, jwt).
fn mfa_login(s: &TestServer, email: &str, code: &str) -> (String, String) {
    let pending = password_step(s, email, PASSWORD);
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

fn new_token(s: &TestServer, jwt: &str, name: &str) -> String {
    let res = s.post_auth("/api/tokens", jwt, Some(&json!({ "name": name })));
    assert_eq!(res.status(), Status::Created);
    json_of(res)["token"].as_str().unwrap().to_string()
}

fn me_by_sid(s: &TestServer, sid: &str) -> Status {
    s.client
        .get("/api/auth/me")
        .cookie(cookie("slugbase.sid", sid))
        .dispatch()
        .status()
}

fn assert_dead(s: &TestServer, sid: &str, jwt: &str, what: &str) {
    assert_eq!(
        s.get_auth("/api/auth/me", jwt).status(),
        Status::Unauthorized,
        "{what}: bearer"
    );
    let res = s
        .client
        .get("/api/auth/me")
        .cookie(cookie("token", jwt))
        .dispatch();
    assert_eq!(res.status(), Status::Unauthorized, "{what}: token cookie");
    assert_eq!(
        me_by_sid(s, sid),
        Status::Unauthorized,
        "{what}: sid cookie"
    );
}

fn assert_alive(s: &TestServer, sid: &str, jwt: &str, what: &str) {
    assert_eq!(
        s.get_auth("/api/auth/me", jwt).status(),
        Status::Ok,
        "{what}: bearer"
    );
    assert_eq!(me_by_sid(s, sid), Status::Ok, "{what}: sid cookie");
}

fn events_of(s: &TestServer, jwt: &str) -> Vec<Value> {
    let res = s.get_auth("/api/auth/mfa/events", jwt);
    assert_eq!(res.status(), Status::Ok);
    json_of(res).as_array().unwrap().clone()
}

/// The events other than password sign-ins (which every test's own sign-in writes).
fn without_sign_ins(events: Vec<Value>) -> Vec<Value> {
    events
        .into_iter()
        .filter(|e| e["event"] != "password_sign_in")
        .collect()
}

fn event_names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

/// Runs the built binary on a data folder, as `tests/cli.rs` does.
fn slugbase_cli(dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_slugbase"))
        .args(args)
        .env("SLUGBASE_DATA_DIR", dir)
        .env("SLUGBASE_PORT", "0")
        .env_remove("SLUGBASE_SECRET_KEY")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait")
}

fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A server on `dir` whose clock starts at `now` (the purge runs at launch).
fn server_at(dir: tempfile::TempDir, now: i64) -> TestServer {
    let clock = Arc::new(ManualClock::new(now));
    let rocket =
        slugbase::rocket_with_clock(figment(dir.path(), &[]), clock.clone()).expect("build");
    let client = Client::untracked(rocket).expect("client");
    TestServer { client, clock, dir }
}

// ---------------------------------------------------------------------------------------
// Lockout that an attacker cannot aim at the owner
// ---------------------------------------------------------------------------------------

#[test]
fn successful_sign_in_sets_a_device_cookie() {
    let s = server();
    s.user(ANN);
    let res = login_with(&s, ANN, PASSWORD, None);
    assert_eq!(res.status(), Status::Ok);
    let set = set_cookies(&res);
    let device = set
        .iter()
        .find(|c| c.starts_with("slugbase.device="))
        .unwrap_or_else(|| panic!("device cookie in {set:?}"));
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=31536000"] {
        assert!(device.contains(flag), "{flag}: {device}");
    }
    // A failed sign-in sets none.
    let res = login_with(&s, ANN, "not the password", None);
    assert!(res.cookies().get(DEVICE).is_none());
    // With MFA the device cookie comes with the second step, not the first.
    let (_, jwt) = s.login(ANN);
    let (_, codes) = s.enroll(&jwt);
    let res = login_with(&s, ANN, PASSWORD, None);
    assert!(
        res.cookies().get(DEVICE).is_none(),
        "not after the password alone"
    );
    let pending = res
        .cookies()
        .get("slugbase.mfa_pending")
        .unwrap()
        .value()
        .to_string();
    let res = verify(&s, &pending, &codes[0]);
    assert_eq!(res.status(), Status::Ok);
    assert!(res.cookies().get(DEVICE).is_some(), "set by verify");
}

#[test]
fn owner_device_signs_in_while_an_attacker_has_locked_the_account() {
    let s = server();
    s.user(ANN);
    let device = device_of(&s, ANN);
    // The attacker: ten wrong passwords from a client without a device cookie.
    for _ in 0..10 {
        wrong_password(&s, ANN, None);
    }
    // Untrusted clients are now refused, even with the right password...
    assert_error(
        login_with(&s, ANN, PASSWORD, None),
        Status::TooManyRequests,
        "RATE_LIMITED",
    );
    // ...but the owner's browser still signs in.
    let res = login_with(&s, ANN, PASSWORD, Some(&device));
    assert_eq!(res.status(), Status::Ok);
    let jwt = res.cookies().get("token").unwrap().value().to_string();
    assert_eq!(s.get_auth("/api/auth/me", &jwt).status(), Status::Ok);
    // The owner's browser is not charged for the attacker's failures, and still is after
    // a mistake of its own.
    wrong_password(&s, ANN, Some(&device));
    assert_eq!(
        login_with(&s, ANN, PASSWORD, Some(&device)).status(),
        Status::Ok
    );
}

#[test]
fn another_accounts_or_a_forged_device_cookie_does_not_help() {
    let s = server();
    s.user(ANN);
    s.user(BOB);
    let ann_device = device_of(&s, ANN);
    let bob_device = device_of(&s, BOB);
    assert_ne!(ann_device, bob_device);
    // Failures with Bob's cookie, or a forged one, count as untrusted for Ann.
    for _ in 0..4 {
        wrong_password(&s, ANN, Some(&bob_device));
    }
    for _ in 0..3 {
        wrong_password(&s, ANN, Some("forged-device-cookie"));
    }
    for _ in 0..3 {
        wrong_password(&s, ANN, None);
    }
    // Ann's own cookie with one character changed is no longer hers.
    let mut tampered = ann_device.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for dev in [
        Some(bob_device.as_str()),
        Some("forged-device-cookie"),
        Some(tampered.as_str()),
        None,
    ] {
        assert_error(
            login_with(&s, ANN, PASSWORD, dev),
            Status::TooManyRequests,
            "RATE_LIMITED",
        );
    }
    assert_eq!(
        login_with(&s, ANN, PASSWORD, Some(&ann_device)).status(),
        Status::Ok
    );
    // Bob's own account is untouched.
    assert_eq!(
        login_with(&s, BOB, PASSWORD, Some(&bob_device)).status(),
        Status::Ok
    );
    assert_eq!(login_with(&s, BOB, PASSWORD, None).status(), Status::Ok);
}

#[test]
fn a_devices_own_failures_lock_that_device_only() {
    let s = server();
    s.user(ANN);
    let laptop = device_of(&s, ANN);
    let phone = device_of(&s, ANN);
    assert_ne!(laptop, phone, "each browser gets its own device cookie");
    for _ in 0..10 {
        wrong_password(&s, ANN, Some(&laptop));
    }
    assert_error(
        login_with(&s, ANN, PASSWORD, Some(&laptop)),
        Status::TooManyRequests,
        "RATE_LIMITED",
    );
    assert_eq!(
        login_with(&s, ANN, PASSWORD, Some(&phone)).status(),
        Status::Ok
    );
    assert_eq!(login_with(&s, ANN, PASSWORD, None).status(), Status::Ok);
    // The device's window frees up like any other.
    s.clock.advance(15 * 60 + 1);
    assert_eq!(
        login_with(&s, ANN, PASSWORD, Some(&laptop)).status(),
        Status::Ok
    );
}

#[rocket::async_test]
async fn forty_concurrent_wrong_passwords_get_exactly_ten_401() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let rocket = slugbase::rocket_with_clock(figment(dir.path(), &[]), clock).unwrap();
    let c = AsyncClient::untracked(rocket).await.unwrap();
    {
        let app = c.rocket().state::<slugbase::state::App>().unwrap();
        let hash = slugbase::auth::password::hash(PASSWORD).unwrap();
        let conn = app.db.get().unwrap();
        slugbase::db::users::create(&conn, ANN, "Ann", false, Some(&hash), T0).unwrap();
    }
    let body = json!({"email": ANN, "password": "not the password"}).to_string();
    let requests = (0..40).map(|_| {
        c.post("/api/auth/login")
            .header(ContentType::JSON)
            .body(body.clone())
            .dispatch()
    });
    let responses = join_all(requests).await;
    let (mut unauthorized, mut limited) = (0, 0);
    for res in responses {
        let status = res.status();
        let body: Value = res.into_json().await.expect("json body");
        match status.code {
            401 => {
                assert_eq!(body["code"], "INVALID_CREDENTIALS");
                unauthorized += 1;
            }
            429 => {
                assert_eq!(body["code"], "RATE_LIMITED");
                limited += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((unauthorized, limited), (10, 30));
}

#[test]
fn ipv6_clients_share_the_per_ip_limit_by_their_64() {
    let s = server_with(&[
        ("login_failures_per_ip", json!(3)),
        ("login_failures_per_account", json!(100)),
    ]);
    let attempt = |i: usize, remote: &str| {
        let mut req = s
            .client
            .post("/api/auth/login")
            .header(ContentType::JSON)
            .body(
                json!({"email": format!("u{i}@example.com"), "password": "nope nope"}).to_string(),
            );
        req.set_remote(remote.parse::<SocketAddr>().unwrap());
        req.dispatch()
    };
    for (i, remote) in [
        "[2001:db8::1]:5000",
        "[2001:db8::2]:5000",
        "[2001:db8::1]:5001",
    ]
    .iter()
    .enumerate()
    {
        assert_error(
            attempt(i, remote),
            Status::Unauthorized,
            "INVALID_CREDENTIALS",
        );
    }
    // Any other address in the same /64 shares the bucket.
    assert_error(
        attempt(10, "[2001:db8::3]:6000"),
        Status::TooManyRequests,
        "RATE_LIMITED",
    );
    assert_error(
        attempt(11, "[2001:db8::ffff:1234:5678:9abc]:6000"),
        Status::TooManyRequests,
        "RATE_LIMITED",
    );
    // The next /64 is another client.
    assert_error(
        attempt(12, "[2001:db8:0:1::1]:5000"),
        Status::Unauthorized,
        "INVALID_CREDENTIALS",
    );
    // IPv4 stays per address.
    assert_error(
        attempt(13, "198.51.100.7:5000"),
        Status::Unauthorized,
        "INVALID_CREDENTIALS",
    );
}

#[test]
fn ipv6_clients_share_the_begin_limit_per_ip_by_their_64() {
    let s = server_with(&[("begin_limit_per_ip", json!(2))]);
    let begin = |i: usize, remote: &str| {
        let (_, jwt) = s.bearer_for(&format!("b{i}@example.com"));
        let mut req = s
            .client
            .post("/api/auth/mfa/enroll/begin")
            .header(bearer(&jwt));
        req.set_remote(remote.parse::<SocketAddr>().unwrap());
        req.dispatch()
    };
    assert_eq!(begin(0, "[2001:db8::1]:5000").status(), Status::Ok);
    assert_eq!(begin(1, "[2001:db8::2]:5000").status(), Status::Ok);
    assert_error(
        begin(2, "[2001:db8::3]:5000"),
        Status::TooManyRequests,
        "RATE_LIMITED",
    );
    assert_eq!(begin(3, "[2001:db8:0:1::1]:5000").status(), Status::Ok);
}

// ---------------------------------------------------------------------------------------
// Password change
// ---------------------------------------------------------------------------------------

fn change_password<'a>(
    s: &'a TestServer,
    jwt: &str,
    current: &str,
    new: &str,
) -> LocalResponse<'a> {
    s.post_auth(
        "/api/auth/password",
        jwt,
        Some(&json!({"current_password": current, "new_password": new})),
    )
}

#[test]
fn password_change_refuses_weak_passwords() {
    let s = server();
    s.user(ANN);
    let (_, jwt) = s.login(ANN);
    let long = "Zq8#vT1!pL4@".repeat(22);
    assert!(long.chars().count() > 256);
    for weak in [
        "short pw",
        "elevenchars",
        "password12345",
        "aaaaaaaaaaaaaaaa",
        "123456789012",
        long.as_str(),
    ] {
        let body = assert_error(
            change_password(&s, &jwt, PASSWORD, weak),
            Status::BadRequest,
            "WEAK_PASSWORD",
        );
        assert_eq!(body["details"]["field"], "new_password", "{weak}");
    }
    // Nothing changed.
    assert_eq!(login_with(&s, ANN, PASSWORD, None).status(), Status::Ok);
}

#[test]
fn password_change_needs_the_current_password() {
    let s = server();
    s.user(ANN);
    let (sid_a, jwt_a) = s.login(ANN);
    let (_, jwt_b) = s.login(ANN);
    assert_error(
        change_password(&s, &jwt_b, "not the password", NEW_PASSWORD),
        Status::Unauthorized,
        "INVALID_PASSWORD",
    );
    assert_alive(&s, &sid_a, &jwt_a, "other session after a refused change");
    assert_eq!(login_with(&s, ANN, PASSWORD, None).status(), Status::Ok);
    assert_error(
        login_with(&s, ANN, NEW_PASSWORD, None),
        Status::Unauthorized,
        "INVALID_CREDENTIALS",
    );
    assert_error(
        s.client
            .post("/api/auth/password")
            .header(ContentType::JSON)
            .body(json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}).to_string())
            .dispatch(),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
}

#[test]
fn password_change_ends_other_sessions_and_pending_sign_ins() {
    let s = server();
    s.user(ANN);
    s.user(BOB);
    let (sid_b, jwt_b) = s.login(ANN);
    let token = new_token(&s, &jwt_b, "script");
    let (secret, codes) = s.enroll(&jwt_b);
    let (sid_a, jwt_a) = mfa_login(&s, ANN, &codes[0]);
    let pending = password_step(&s, ANN, PASSWORD);
    let (bob_sid, bob_jwt) = s.login(BOB);

    let res = change_password(&s, &jwt_b, PASSWORD, NEW_PASSWORD);
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(json_of(res), json!({"ok": true}));

    assert_dead(&s, &sid_a, &jwt_a, "other session");
    assert_alive(&s, &sid_b, &jwt_b, "the changing session");
    assert_eq!(s.get_auth("/api/auth/me", &token).status(), Status::Ok);
    assert_alive(&s, &bob_sid, &bob_jwt, "another user's session");
    // The sign-in started under the old password cannot be completed.
    s.next_step();
    assert_error(
        verify(&s, &pending, &code_at(&secret, s.clock.now_())),
        Status::Unauthorized,
        "MFA_PENDING_INVALID",
    );
    let events = events_of(&s, &jwt_b);
    assert!(
        event_names(&events).iter().any(|e| e == "password_changed"),
        "{events:?}"
    );
    // Old password out, new one in.
    assert_error(
        login_with(&s, ANN, PASSWORD, None),
        Status::Unauthorized,
        "INVALID_CREDENTIALS",
    );
    password_step(&s, ANN, NEW_PASSWORD);
}

#[test]
fn password_change_on_an_account_without_a_password() {
    let s = server();
    s.user_with("sso@example.com", None);
    let o = slugbase_cli(
        s.dir.path(),
        &[
            "token",
            "create",
            "--email",
            "sso@example.com",
            "--name",
            "ci",
        ],
        "",
    );
    assert!(o.status.success(), "{}", output_text(&o));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_error(
        change_password(&s, &token, "anything at all", NEW_PASSWORD),
        Status::BadRequest,
        "PASSWORD_NOT_SET",
    );
}

// ---------------------------------------------------------------------------------------
// Admin resets end every credential of the account
// ---------------------------------------------------------------------------------------

struct Creds {
    sid_a: String,
    jwt_a: String,
    sid_b: String,
    jwt_b: String,
    token: String,
    pending: String,
    codes: Vec<String>,
}

/// Ann with MFA, two sessions, an API token and a pending sign-in; Bob with a session.
fn ann_with_everything(s: &TestServer) -> (Creds, String, String, String) {
    s.user(ANN);
    s.user(BOB);
    let (sid_b, jwt_b) = s.login(ANN);
    let token = new_token(s, &jwt_b, "script");
    let (_, codes) = s.enroll(&jwt_b);
    let (sid_a, jwt_a) = mfa_login(s, ANN, &codes[0]);
    let pending = password_step(s, ANN, PASSWORD);
    let (bob_sid, bob_jwt) = s.login(BOB);
    let bob_token = new_token(s, &bob_jwt, "bob's");
    (
        Creds {
            sid_a,
            jwt_a,
            sid_b,
            jwt_b,
            token,
            pending,
            codes,
        },
        bob_sid,
        bob_jwt,
        bob_token,
    )
}

fn assert_output_names_what_ended(out: &str) {
    let lower = out.to_lowercase();
    for word in ["session", "pending", "token"] {
        assert!(lower.contains(word), "mentions {word}: {out}");
    }
}

#[test]
fn cli_set_password_ends_sessions_pending_sign_ins_and_tokens() {
    let s = server();
    let (c, bob_sid, bob_jwt, bob_token) = ann_with_everything(&s);
    let o = slugbase_cli(
        s.dir.path(),
        &["user", "set-password", "--email", ANN],
        &format!("{NEW_PASSWORD}\n"),
    );
    let out = output_text(&o);
    assert!(o.status.success(), "{out}");
    assert_output_names_what_ended(&out);

    assert_dead(&s, &c.sid_a, &c.jwt_a, "session after set-password");
    assert_dead(&s, &c.sid_b, &c.jwt_b, "session after set-password");
    assert_error(
        s.get_auth("/api/auth/me", &c.token),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    assert_error(
        verify(&s, &c.pending, &c.codes[1]),
        Status::Unauthorized,
        "MFA_PENDING_INVALID",
    );
    assert_alive(&s, &bob_sid, &bob_jwt, "another user's session");
    assert_eq!(s.get_auth("/api/auth/me", &bob_token).status(), Status::Ok);
    // The new password starts a sign-in; the old one does not.
    password_step(&s, ANN, NEW_PASSWORD);
    assert_eq!(
        login_with(&s, ANN, PASSWORD, None).status(),
        Status::Unauthorized
    );
}

#[test]
fn cli_reset_mfa_ends_sessions_pending_sign_ins_and_tokens() {
    let s = server();
    let (c, bob_sid, bob_jwt, bob_token) = ann_with_everything(&s);
    let o = slugbase_cli(s.dir.path(), &["user", "reset-mfa", "--email", ANN], "");
    let out = output_text(&o);
    assert!(o.status.success(), "{out}");
    assert_output_names_what_ended(&out);

    assert_dead(&s, &c.sid_a, &c.jwt_a, "session after reset-mfa");
    assert_dead(&s, &c.sid_b, &c.jwt_b, "session after reset-mfa");
    assert_error(
        s.get_auth("/api/auth/me", &c.token),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    assert_eq!(
        verify(&s, &c.pending, &c.codes[1]).status(),
        Status::Unauthorized,
        "the pending sign-in is gone"
    );
    assert_alive(&s, &bob_sid, &bob_jwt, "another user's session");
    assert_eq!(s.get_auth("/api/auth/me", &bob_token).status(), Status::Ok);
    // Without MFA the password alone signs in again.
    assert_eq!(login_with(&s, ANN, PASSWORD, None).status(), Status::Ok);
}

// ---------------------------------------------------------------------------------------
// Re-authentication for new tokens, expiry, limits and names
// ---------------------------------------------------------------------------------------

#[test]
fn token_creation_needs_a_recent_sign_in_or_the_password() {
    let s = server();
    s.user(ANN);
    let (sid, jwt) = s.login(ANN);
    let res = s.post_auth("/api/tokens", &jwt, Some(&json!({"name": "fresh"})));
    assert_eq!(res.status(), Status::Created);
    let created = json_of(res);
    assert_eq!(created["expires_at"], json!(null));
    // Keep the session in use, but let the sign-in grow old.
    s.clock.advance(300);
    assert_eq!(s.get_auth("/api/auth/me", &jwt).status(), Status::Ok);
    s.clock.advance(301);
    assert_eq!(s.get_auth("/api/auth/me", &jwt).status(), Status::Ok);
    assert_error(
        s.post_auth("/api/tokens", &jwt, Some(&json!({"name": "stale"}))),
        Status::Forbidden,
        "REAUTH_REQUIRED",
    );
    let res = s
        .client
        .post("/api/tokens")
        .header(ContentType::JSON)
        .cookie(cookie("slugbase.sid", &sid))
        .body(json!({"name": "stale"}).to_string())
        .dispatch();
    assert_error(res, Status::Forbidden, "REAUTH_REQUIRED");
    assert_error(
        s.post_auth(
            "/api/tokens",
            &jwt,
            Some(&json!({"name": "stale", "password": "not the password"})),
        ),
        Status::Unauthorized,
        "INVALID_PASSWORD",
    );
    let res = s.post_auth(
        "/api/tokens",
        &jwt,
        Some(&json!({"name": "stale", "password": PASSWORD})),
    );
    assert_eq!(res.status(), Status::Created);
    // A fresh sign-in is recent again.
    let (_, jwt2) = s.login(ANN);
    let res = s.post_auth("/api/tokens", &jwt2, Some(&json!({"name": "again"})));
    assert_eq!(res.status(), Status::Created);
}

#[test]
fn token_creation_with_mfa_needs_a_code_too() {
    let s = server();
    s.user(ANN);
    let (_, jwt_b) = s.login(ANN);
    let (secret, codes) = s.enroll(&jwt_b);
    let (_, jwt) = mfa_login(&s, ANN, &codes[0]);
    let res = s.post_auth("/api/tokens", &jwt, Some(&json!({"name": "fresh"})));
    assert_eq!(
        res.status(),
        Status::Created,
        "signed in with a code just now"
    );
    s.clock.advance(300);
    assert_eq!(s.get_auth("/api/auth/me", &jwt).status(), Status::Ok);
    s.clock.advance(301);
    assert_error(
        s.post_auth(
            "/api/tokens",
            &jwt,
            Some(&json!({"name": "stale", "password": PASSWORD})),
        ),
        Status::Forbidden,
        "REAUTH_REQUIRED",
    );
    let now = s.clock.now_();
    let right: u32 = code_at(&secret, now).parse().unwrap();
    let wrong = format!("{:06}", (right + 500_000) % 1_000_000);
    assert_error(
        s.post_auth(
            "/api/tokens",
            &jwt,
            Some(&json!({"name": "stale", "password": PASSWORD, "code": wrong})),
        ),
        Status::BadRequest,
        "INVALID_CODE",
    );
    assert_error(
        s.post_auth(
            "/api/tokens",
            &jwt,
            Some(&json!({"name": "stale", "password": "not the password", "code": codes[1]})),
        ),
        Status::Unauthorized,
        "INVALID_PASSWORD",
    );
    let res = s.post_auth(
        "/api/tokens",
        &jwt,
        Some(&json!({"name": "backup", "password": PASSWORD, "code": codes[2]})),
    );
    assert_eq!(res.status(), Status::Created, "backup code");
    s.next_step();
    let res = s.post_auth(
        "/api/tokens",
        &jwt,
        Some(&json!({"name": "totp", "password": PASSWORD,
            "code": code_at(&secret, s.clock.now_())})),
    );
    assert_eq!(res.status(), Status::Created, "TOTP code");
}

#[test]
fn an_sb_token_never_creates_a_token() {
    let s = server();
    s.user(ANN);
    let (_, jwt) = s.login(ANN);
    let token = new_token(&s, &jwt, "script");
    for body in [
        json!({"name": "child"}),
        json!({"name": "child", "password": PASSWORD}),
    ] {
        assert_error(
            s.post_auth("/api/tokens", &token, Some(&body)),
            Status::Forbidden,
            "REAUTH_REQUIRED",
        );
    }
    assert_eq!(
        json_of(s.get_auth("/api/tokens", &jwt))
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn tokens_may_expire() {
    let s = server();
    s.user(ANN);
    let (_, jwt) = s.login(ANN);
    for bad in [json!(0), json!(3651), json!(-1), json!("7"), json!(1.5)] {
        let body = assert_error(
            s.post_auth(
                "/api/tokens",
                &jwt,
                Some(&json!({"name": "x", "expires_in_days": bad})),
            ),
            Status::BadRequest,
            "VALIDATION_ERROR",
        );
        assert_eq!(body["details"]["field"], "expires_in_days", "{bad}");
    }
    let create = |days: Value| {
        let res = s.post_auth(
            "/api/tokens",
            &jwt,
            Some(&json!({"name": format!("{days}"), "expires_in_days": days})),
        );
        assert_eq!(res.status(), Status::Created);
        json_of(res)
    };
    let now = s.clock.now_();
    let day = create(json!(1));
    assert_eq!(day["expires_at"], rfc3339(now + 86_400));
    let decade = create(json!(3650));
    assert_eq!(decade["expires_at"], rfc3339(now + 3650 * 86_400));
    let forever = create(json!(null));
    assert_eq!(forever["expires_at"], json!(null));
    let list = json_of(s.get_auth("/api/tokens", &jwt));
    for item in list.as_array().unwrap() {
        assert!(
            item.as_object().unwrap().contains_key("expires_at"),
            "{item}"
        );
    }
    let tok = |v: &Value| v["token"].as_str().unwrap().to_string();
    assert_eq!(s.get_auth("/api/auth/me", &tok(&day)).status(), Status::Ok);
    s.clock.advance(86_400 + 1);
    assert_error(
        s.get_auth("/api/auth/me", &tok(&day)),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    assert_eq!(
        s.get_auth("/api/auth/me", &tok(&decade)).status(),
        Status::Ok
    );
    assert_eq!(
        s.get_auth("/api/auth/me", &tok(&forever)).status(),
        Status::Ok
    );
}

#[test]
fn a_user_holds_at_most_fifty_tokens() {
    let s = server();
    s.user(ANN);
    s.user(BOB);
    let (_, jwt) = s.login(ANN);
    let mut last_id = 0;
    for i in 0..50 {
        let res = s.post_auth("/api/tokens", &jwt, Some(&json!({"name": format!("t{i}")})));
        assert_eq!(res.status(), Status::Created, "token {i}");
        last_id = json_of(res)["id"].as_i64().unwrap();
    }
    assert_error(
        s.post_auth("/api/tokens", &jwt, Some(&json!({"name": "one too many"}))),
        Status::Conflict,
        "TOKEN_LIMIT",
    );
    // Another user has their own allowance.
    let (_, bob) = s.login(BOB);
    assert_eq!(
        s.post_auth("/api/tokens", &bob, Some(&json!({"name": "b"})))
            .status(),
        Status::Created
    );
    // Deleting one makes room for one.
    let res = s
        .client
        .delete(format!("/api/tokens/{last_id}"))
        .header(bearer(&jwt))
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(
        s.post_auth("/api/tokens", &jwt, Some(&json!({"name": "room"})))
            .status(),
        Status::Created
    );
    assert_error(
        s.post_auth("/api/tokens", &jwt, Some(&json!({"name": "full again"}))),
        Status::Conflict,
        "TOKEN_LIMIT",
    );
}

#[test]
fn token_names_refuse_control_and_bidi_characters() {
    let s = server();
    s.user(ANN);
    let (_, jwt) = s.login(ANN);
    for bad in [
        "invoice\u{202E}fdp.exe",
        "\u{202A}embedded",
        "\u{202B}rtl",
        "\u{202C}pop",
        "\u{202D}ltr override",
        "\u{2066}isolate\u{2069}",
        "\u{2067}rli",
        "\u{2068}fsi",
        "bell\u{0007}",
        "line\nbreak",
        "tab\tname",
        "nul\u{0000}",
        "del\u{007F}",
        "c1\u{0085}control",
    ] {
        let res = s.post_auth("/api/tokens", &jwt, Some(&json!({ "name": bad })));
        assert_eq!(res.status(), Status::BadRequest, "{bad:?}");
        let body = assert_error(res, Status::BadRequest, "VALIDATION_ERROR");
        assert_eq!(body["details"]["field"], "name", "{bad:?}");
    }
    for good in [
        "x".repeat(100),
        "é".repeat(100),
        "naïve 日本 🚀".to_string(),
    ] {
        let res = s.post_auth("/api/tokens", &jwt, Some(&json!({ "name": good })));
        assert_eq!(res.status(), Status::Created, "{good}");
        assert_eq!(json_of(res)["name"], good);
    }
    assert_eq!(
        json_of(s.get_auth("/api/tokens", &jwt))
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

// ---------------------------------------------------------------------------------------
// Rate limits that hold, events
// ---------------------------------------------------------------------------------------

const SPELLINGS: [&str; 3] = [
    "/api/auth/mfa/enroll/begin/",
    "//api/auth/mfa/enroll/begin",
    "/api/auth/mfa//enroll/begin",
];

#[test]
fn begin_limit_counts_every_spelling_of_the_path() {
    let s = server_with(&[("begin_limit_per_user", json!(3))]);
    // Three odd spellings use up the allowance...
    let (_, ann) = s.bearer_for(ANN);
    for path in SPELLINGS {
        let res = s.post_auth(path, &ann, None);
        assert_eq!(res.status(), Status::Ok, "{path} reaches begin");
        assert!(json_of(res)["secret"].is_string(), "{path}");
        s.clock.advance(10);
    }
    assert_error(
        s.post_auth("/api/auth/mfa/enroll/begin", &ann, None),
        Status::TooManyRequests,
        "RATE_LIMITED",
    );
    // ...and when the plain spelling used it up, no other spelling gets past.
    let (_, bob) = s.bearer_for(BOB);
    for _ in 0..3 {
        assert_eq!(
            s.post_auth("/api/auth/mfa/enroll/begin", &bob, None)
                .status(),
            Status::Ok
        );
    }
    for path in SPELLINGS {
        assert_error(
            s.post_auth(path, &bob, None),
            Status::TooManyRequests,
            "RATE_LIMITED",
        );
    }
}

#[test]
fn begin_per_ip_limit_counts_every_spelling_too() {
    let s = server_with(&[("begin_limit_per_ip", json!(3))]);
    let ip: SocketAddr = "198.51.100.7:4000".parse().unwrap();
    let paths = [
        SPELLINGS[0],
        SPELLINGS[1],
        SPELLINGS[2],
        "/api/auth/mfa/enroll/begin",
    ];
    for (i, path) in paths.iter().enumerate() {
        let (_, jwt) = s.bearer_for(&format!("u{i}@example.com"));
        let mut req = s.client.post(path.to_string()).header(bearer(&jwt));
        req.set_remote(ip);
        let res = req.dispatch();
        if i < 3 {
            assert_eq!(res.status(), Status::Ok, "{path}");
        } else {
            assert_error(res, Status::TooManyRequests, "RATE_LIMITED");
        }
    }
}

#[test]
fn cancel_with_nothing_pending_writes_no_event() {
    let s = server();
    let (_, jwt) = s.bearer_for(ANN);
    for _ in 0..5 {
        let res = s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None);
        assert_eq!(json_of(res), json!({"ok": true}));
    }
    assert_eq!(event_names(&events_of(&s, &jwt)), ["password_sign_in"]);
    // A real cancel is still recorded, once.
    s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None);
    s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None);
    let before = events_of(&s, &jwt);
    assert_eq!(
        event_names(&before),
        ["cancel", "begin", "password_sign_in"]
    );
    for _ in 0..5 {
        let res = s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None);
        assert_eq!(json_of(res), json!({"ok": true}));
    }
    assert_eq!(events_of(&s, &jwt), before);
}

/// The `before` cursor of a `Link: <...?before=ID>; rel="next"` header.
fn next_link(res: &LocalResponse<'_>) -> Option<String> {
    let link = res.headers().get_one("Link")?.to_string();
    assert!(link.contains("rel=\"next\""), "{link}");
    let start = link.find('<')? + 1;
    let end = link.find('>')?;
    Some(link[start..end].to_string())
}

#[test]
fn events_page_through_all_of_them() {
    let s = server_with(&[
        ("begin_limit_per_user", json!(1000)),
        ("begin_limit_per_ip", json!(1000)),
    ]);
    let (_, jwt) = s.bearer_for(ANN);
    for _ in 0..35 {
        s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None);
        s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None);
        s.clock.advance(1);
    }
    let res = s.get_auth("/api/auth/mfa/events", &jwt);
    assert_eq!(res.status(), Status::Ok);
    let next = next_link(&res).expect("a full page links to the next");
    let page1 = json_of(res).as_array().unwrap().clone();
    assert_eq!(page1.len(), 50);
    let last = page1[49]["id"].as_str().expect("string id").to_string();
    // The contract's form is `?before=ID`; further parameters (the page size) may follow.
    let want = format!("/api/auth/mfa/events?before={last}");
    assert!(
        next == want || next.starts_with(&format!("{want}&")),
        "{next}"
    );
    let res = s.get_auth(&next, &jwt);
    assert!(next_link(&res).is_none(), "the last page has no next link");
    let page2 = json_of(res).as_array().unwrap().clone();
    // 70 enrollment events and the sign-in before them.
    assert_eq!(page2.len(), 21);
    assert_eq!(page2[20]["event"], "password_sign_in");
    let all: Vec<Value> = page1.iter().chain(page2[..20].iter()).cloned().collect();
    let mut ids: Vec<String> = all
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let names = event_names(&all);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(name, if i % 2 == 0 { "cancel" } else { "begin" }, "{i}");
    }
    // Newest first, in time.
    let times: Vec<&str> = all.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 70, "no event twice");

    // A smaller page size.
    let mut seen = 0;
    let mut url = "/api/auth/mfa/events?limit=30".to_string();
    let mut pages = Vec::new();
    loop {
        let page = json_of(s.get_auth(&url, &jwt)).as_array().unwrap().clone();
        pages.push(page.len());
        seen += page.len();
        if page.len() < 30 {
            break;
        }
        let last = page.last().unwrap()["id"].as_str().unwrap().to_string();
        url = format!("/api/auth/mfa/events?before={last}&limit=30");
    }
    assert_eq!(pages, [30, 30, 11]);
    assert_eq!(seen, 71);
    // Nobody else's events, and a cursor from another user shows nothing of theirs.
    let (_, bob) = s.bearer_for(BOB);
    let res = s.get_auth(&format!("/api/auth/mfa/events?before={last}"), &bob);
    assert_eq!(json_of(res), json!([]));
}

#[test]
fn events_older_than_the_retention_are_purged() {
    let s = server();
    s.user(ANN);
    let (_, jwt) = s.login(ANN);
    s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None);
    s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None);
    s.clock.advance(200 * 86_400);
    let (_, jwt) = s.login(ANN);
    s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None);
    s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None);
    assert_eq!(without_sign_ins(events_of(&s, &jwt)).len(), 4);
    // 401 days after the first two: the purge at start-up drops them (400 days by default).
    let dir = s.dir;
    drop(s.client);
    let s = server_at(dir, T0 + 401 * 86_400);
    let (_, jwt) = s.login(ANN);
    let mut events = without_sign_ins(events_of(&s, &jwt));
    for _ in 0..50 {
        if events.len() <= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        events = without_sign_ins(events_of(&s, &jwt));
    }
    assert_eq!(event_names(&events), ["cancel", "begin"], "{events:?}");
    let kept = rfc3339(T0 + 200 * 86_400);
    assert!(events.iter().all(|e| e["at"] == kept), "{events:?}");
}

#[test]
fn event_retention_is_a_setting() {
    let s = server();
    s.user(ANN);
    let (_, jwt) = s.login(ANN);
    s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None);
    s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None);
    let dir = s.dir;
    drop(s.client);
    let clock = Arc::new(ManualClock::new(T0 + 31 * 86_400));
    let rocket = slugbase::rocket_with_clock(
        figment(dir.path(), &[("event_retention_days", json!(30))]),
        clock.clone(),
    )
    .unwrap();
    let s = TestServer {
        client: Client::untracked(rocket).unwrap(),
        clock,
        dir,
    };
    let (_, jwt) = s.login(ANN);
    let mut events = without_sign_ins(events_of(&s, &jwt));
    for _ in 0..50 {
        if events.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        events = without_sign_ins(events_of(&s, &jwt));
    }
    assert_eq!(events, Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------
// QR codes only of the caller's own pending secret
// ---------------------------------------------------------------------------------------

#[test]
fn qr_shows_the_callers_pending_secret_only() {
    let s = server();
    let (_, jwt) = s.bearer_for(ANN);
    assert_error(
        s.get_auth("/api/auth/mfa/enroll/qr", &jwt),
        Status::NotFound,
        "MFA_NO_PENDING",
    );
    s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None);
    let res = s.get_auth("/api/auth/mfa/enroll/qr", &jwt);
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(res.content_type(), Some(ContentType::SVG));
    let svg = res.into_string().unwrap();
    assert!(svg.contains("<svg"), "{}", &svg[..svg.len().min(200)]);
    // Another user with nothing pending gets none of Ann's.
    let (_, bob) = s.bearer_for(BOB);
    assert_error(
        s.get_auth("/api/auth/mfa/enroll/qr", &bob),
        Status::NotFound,
        "MFA_NO_PENDING",
    );
    assert_error(
        s.client.get("/api/auth/mfa/enroll/qr").dispatch(),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    // Cancelled: nothing to show.
    s.post_auth("/api/auth/mfa/enroll/cancel", &jwt, None);
    assert_error(
        s.get_auth("/api/auth/mfa/enroll/qr", &jwt),
        Status::NotFound,
        "MFA_NO_PENDING",
    );
    // Confirmed: never again.
    s.enroll(&jwt);
    assert_error(
        s.get_auth("/api/auth/mfa/enroll/qr", &jwt),
        Status::NotFound,
        "MFA_NO_PENDING",
    );
}

#[test]
fn pending_secret_is_shown_again_until_confirmed() {
    let s = server();
    let (_, jwt) = s.bearer_for(ANN);
    assert_error(
        s.get_auth("/api/auth/mfa/enroll/pending", &jwt),
        Status::NotFound,
        "MFA_NO_PENDING",
    );
    let first = json_of(s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None));
    for _ in 0..2 {
        let res = s.get_auth("/api/auth/mfa/enroll/pending", &jwt);
        assert_eq!(res.status(), Status::Ok);
        assert_eq!(json_of(res), first);
    }
    let second = json_of(s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None));
    assert_ne!(first, second);
    assert_eq!(
        json_of(s.get_auth("/api/auth/mfa/enroll/pending", &jwt)),
        second
    );
    let secret = decode_secret(second["secret"].as_str().unwrap());
    let res = s.post_auth(
        "/api/auth/mfa/enroll/confirm",
        &jwt,
        Some(&json!({"code": code_at(&secret, s.clock.now_())})),
    );
    assert_eq!(res.status(), Status::Ok);
    let res = s.get_auth("/api/auth/mfa/enroll/pending", &jwt);
    assert_eq!(res.status(), Status::NotFound);
    let body = res.into_string().unwrap();
    assert!(!body.contains(second["secret"].as_str().unwrap()), "{body}");
    assert!(body.contains("MFA_NO_PENDING"), "{body}");
}

#[test]
fn caller_supplied_qr_route_is_gone() {
    let s = server();
    let (_, jwt) = s.bearer_for(ANN);
    let res = s.post_auth(
        "/api/auth/mfa/qr",
        &jwt,
        Some(&json!({"otpauth_url": "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP"})),
    );
    assert_error(res, Status::NotFound, "NOT_FOUND");
    let res = s
        .client
        .post("/api/auth/mfa/qr")
        .header(ContentType::JSON)
        .header(Header::new("Authorization", format!("Bearer {jwt}")))
        .body(json!({"otpauth_url": "https://example.com/".repeat(50)}).to_string())
        .dispatch();
    assert_eq!(res.status(), Status::NotFound);
}
