//! OIDC sign-in against the real test provider (tests/oidc: panva's oidc-provider), driving
//! its login and consent pages over HTTP. Without node and `npm ci` in tests/oidc these tests
//! skip loudly; under CI=true they fail.

mod common;
#[path = "oidc/harness.rs"]
mod idp;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rocket::http::{Cookie, Status};
use rocket::local::blocking::{Client, LocalResponse};
use serde_json::{json, Value};
use slugbase::clock::ManualClock;

/// slugbase's address as the tests' configuration names it (the default public URL).
const BASE: &str = "http://127.0.0.1:8000";
const CALLBACK: &str = "http://127.0.0.1:8000/api/auth/oidc/testidp/callback";

struct Env {
    s: TestServer,
    idp: idp::Idp,
    browser: idp::Browser,
}

fn provider_entry(issuer: &str, signup: bool) -> Value {
    json!([{
        "id": "testidp",
        "name": "Test IdP",
        "issuer": issuer,
        "client_id": idp::CLIENT_ID,
        "client_secret": idp::CLIENT_SECRET,
        "signup": signup,
    }])
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A server on `dir` whose clock starts at the real time (the provider's tokens carry it).
fn server_at(dir: tempfile::TempDir, issuer: &str, signup: bool) -> TestServer {
    let clock = Arc::new(ManualClock::new(now()));
    let extra = [("oidc_providers", provider_entry(issuer, signup))];
    let rocket =
        slugbase::rocket_with_clock(figment(dir.path(), &extra), clock.clone()).expect("build");
    let client = Client::untracked(rocket).expect("client");
    TestServer { client, clock, dir }
}

fn env_on(dir: tempfile::TempDir, signup: bool) -> Option<Env> {
    let idp = idp::start(CALLBACK)?;
    let s = server_at(dir, &idp.issuer, signup);
    Some(Env {
        s,
        idp,
        browser: idp::Browser::new(),
    })
}

fn env(signup: bool) -> Option<Env> {
    env_on(tempfile::tempdir().expect("tempdir"), signup)
}

fn location(res: &LocalResponse<'_>) -> String {
    res.headers().get_one("Location").unwrap_or("").to_string()
}

fn cookie_of(res: &LocalResponse<'_>, name: &str) -> Option<String> {
    res.cookies()
        .get(name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

impl Env {
    /// GET start; returns (provider URL, slugbase.oidc cookie).
    fn start(&self, rd: Option<&str>) -> (String, String) {
        let path = match rd {
            Some(rd) => format!("/api/auth/oidc/testidp/start?rd={}", urlencode(rd)),
            None => "/api/auth/oidc/testidp/start".into(),
        };
        let res = self.s.client.get(path).dispatch();
        assert_eq!(res.status(), Status::Found);
        let cookie = cookie_of(&res, "slugbase.oidc").expect("oidc cookie");
        let c = res.cookies().get("slugbase.oidc").unwrap();
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.same_site(), Some(rocket::http::SameSite::Lax));
        let loc = location(&res);
        assert!(loc.starts_with(&self.idp.issuer), "{loc}");
        for p in [
            "code_challenge_method=S256",
            "state=",
            "nonce=",
            "code_challenge=",
        ] {
            assert!(loc.contains(p), "{p} in {loc}");
        }
        (loc, cookie)
    }

    /// The callback as the browser sends it.
    fn callback(&self, url: &str, cookies: &[(&str, &str)]) -> LocalResponse<'_> {
        let path = url.strip_prefix(BASE).expect("callback on slugbase");
        let mut req = self.s.client.get(path.to_string());
        for (k, v) in cookies {
            req = req.cookie(Cookie::new(k.to_string(), v.to_string()));
        }
        req.dispatch()
    }

    /// A whole sign-in as `login`; the callback's response.
    /// A fresh browser each time, so the provider asks who signs in.
    fn sign_in(&mut self, login: &str) -> LocalResponse<'_> {
        self.browser = idp::Browser::new();
        let (auth, cookie) = self.start(None);
        let cb = self.browser.sign_in(&self.idp.issuer, &auth, login);
        let cookies = [("slugbase.oidc", cookie.as_str())];
        self.callback(&cb, &cookies)
    }

    fn events(&self, jwt: &str) -> Vec<Value> {
        json_of(self.s.get_auth("/api/auth/mfa/events", jwt))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Asserts the callback ended on the sign-in page with `code` and set no session.
fn assert_failed(res: LocalResponse<'_>, code: &str) {
    assert_eq!(res.status(), Status::Found);
    assert_eq!(location(&res), format!("/login?error={code}"));
    assert!(cookie_of(&res, "slugbase.sid").is_none());
    assert!(cookie_of(&res, "slugbase.mfa_pending").is_none());
}

/// The access JWT of a successful callback (which redirects to `to`).
fn signed_in(res: LocalResponse<'_>, to: &str) -> String {
    assert_eq!(res.status(), Status::Found);
    assert_eq!(location(&res), to);
    assert!(cookie_of(&res, "slugbase.sid").is_some());
    cookie_of(&res, "token").expect("token cookie")
}

#[test]
fn providers_are_listed_for_the_page() {
    let s = server_at(tempfile::tempdir().unwrap(), "https://id.example", false);
    let res = s.client.get("/api/auth/oidc/providers").dispatch();
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(json_of(res), json!([{"id": "testidp", "name": "Test IdP"}]));
    let res = s.client.get("/api/auth/oidc/nope/start").dispatch();
    assert_error(res, Status::NotFound, "OIDC_PROVIDER_NOT_FOUND");
}

#[test]
fn full_code_flow_links_by_verified_email_and_signs_in() {
    let Some(mut e) = env(false) else { return };
    let id = e.s.user_with("ann@example.com", None);
    let jwt = signed_in(e.sign_in("ann"), "/");
    let me = json_of(e.s.get_auth("/api/auth/me", &jwt));
    assert_eq!(me["id"], id);
    assert_eq!(me["email"], "ann@example.com");
    assert_eq!(me["has_password"], false);
    let linked = json_of(e.s.get_auth("/api/auth/oidc/identities", &jwt));
    assert_eq!(linked, json!([{"id": "testidp", "name": "Test IdP"}]));
    // Linked once; the second sign-in finds the identity by (provider, issuer, sub).
    let jwt = signed_in(e.sign_in("ann"), "/");
    let names: Vec<String> = e
        .events(&jwt)
        .iter()
        .map(|v| {
            format!(
                "{}:{}",
                v["event"].as_str().unwrap(),
                v["detail"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "oidc_login:testidp",
            "oidc_login:testidp",
            "oidc_linked:testidp"
        ]
    );
}

#[test]
fn return_url_is_followed_only_on_our_host() {
    let Some(mut e) = env(false) else { return };
    e.s.user_with("ann@example.com", None);
    for (rd, to) in [
        (
            "http://127.0.0.1:8000/account?x=1",
            "http://127.0.0.1:8000/account?x=1",
        ),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
    ] {
        let (auth, cookie) = e.start(Some(rd));
        let cb = e.browser.sign_in(&e.idp.issuer, &auth, "ann");
        signed_in(e.callback(&cb, &[("slugbase.oidc", &cookie)]), to);
    }
}

#[test]
fn unverified_email_is_not_linked() {
    let Some(mut e) = env(true) else { return };
    e.s.user_with("unverified-bob@example.com", None);
    assert_failed(e.sign_in("unverified-bob"), "OIDC_ACCOUNT_NOT_FOUND");
}

#[test]
fn password_account_is_never_linked_automatically() {
    let Some(mut e) = env(true) else { return };
    e.s.user("pat@example.com");
    assert_failed(e.sign_in("pat"), "OIDC_ACCOUNT_NOT_LINKED");
    let (_, jwt) = e.s.login("pat@example.com");
    let ev = e.events(&jwt);
    // Newest first: the password sign-in just made, then the refused provider sign-in.
    assert_eq!(ev[0]["event"], "password_sign_in");
    assert_eq!(ev[1]["event"], "oidc_failure");
    assert_eq!(ev[1]["detail"], "OIDC_ACCOUNT_NOT_LINKED");
}

#[test]
fn signup_off_refuses_and_signup_on_creates_an_oidc_only_account() {
    let Some(mut e) = env(false) else { return };
    assert_failed(e.sign_in("newbie"), "OIDC_ACCOUNT_NOT_FOUND");
    drop(e);
    let Some(mut e) = env(true) else { return };
    let jwt = signed_in(e.sign_in("newbie"), "/");
    let me = json_of(e.s.get_auth("/api/auth/me", &jwt));
    assert_eq!(me["email"], "newbie@example.com");
    assert_eq!(me["name"], "Test newbie");
    assert_eq!(me["has_password"], false);
    // An unverified email does not sign up.
    assert_failed(e.sign_in("unverified-carl"), "OIDC_ACCOUNT_NOT_FOUND");
}

#[test]
fn missing_tampered_and_reused_state_are_refused() {
    let Some(mut e) = env(false) else { return };
    e.s.user_with("ann@example.com", None);
    let (auth, cookie) = e.start(None);
    let cb = e.browser.sign_in(&e.idp.issuer, &auth, "ann");
    // No cookie.
    assert_failed(e.callback(&cb, &[]), "OIDC_STATE_INVALID");
    // Another state than the cookie's.
    let (k, v) = cb.split_once("state=").unwrap();
    let tampered = format!("{k}state=x{v}");
    assert_failed(
        e.callback(&tampered, &[("slugbase.oidc", &cookie)]),
        "OIDC_STATE_INVALID",
    );
    // A changed cookie.
    let mut bad = cookie.clone().into_bytes();
    let i = bad.len() / 2;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    assert_failed(
        e.callback(&cb, &[("slugbase.oidc", &bad)]),
        "OIDC_STATE_INVALID",
    );
    // A cookie from another sign-in.
    let (_, other) = e.start(None);
    assert_failed(
        e.callback(&cb, &[("slugbase.oidc", &other)]),
        "OIDC_STATE_INVALID",
    );
    // The real pair works once; replaying the same callback with the same cookie fails.
    let res = e.callback(&cb, &[("slugbase.oidc", &cookie)]);
    let gone = res
        .cookies()
        .get("slugbase.oidc")
        .map(|c| c.value().to_string());
    assert_eq!(gone.as_deref(), Some(""), "the cookie is cleared");
    signed_in(res, "/");
    assert_failed(
        e.callback(&cb, &[("slugbase.oidc", &cookie)]),
        "OIDC_STATE_INVALID",
    );
    // Expired: 10 minutes later the cookie is refused.
    let (auth, cookie) = e.start(None);
    let cb = e.browser.sign_in(&e.idp.issuer, &auth, "ann");
    e.s.clock.advance(601);
    assert_failed(
        e.callback(&cb, &[("slugbase.oidc", &cookie)]),
        "OIDC_STATE_INVALID",
    );
}

#[test]
fn provider_error_access_denied() {
    let Some(mut e) = env(false) else { return };
    let (auth, cookie) = e.start(None);
    let cb = e.browser.cancel(&e.idp.issuer, &auth);
    assert!(cb.contains("error=access_denied"), "{cb}");
    assert_failed(
        e.callback(&cb, &[("slugbase.oidc", &cookie)]),
        "OIDC_PROVIDER_ERROR",
    );
}

#[test]
fn provider_stopped_is_unavailable_quickly_and_never_a_5xx() {
    // Mid-flow: the provider stops between its redirect and the code exchange.
    let Some(mut e) = env(false) else { return };
    e.s.user_with("ann@example.com", None);
    let (auth, cookie) = e.start(None);
    let cb = e.browser.sign_in(&e.idp.issuer, &auth, "ann");
    e.idp.stop();
    let t = Instant::now();
    assert_failed(
        e.callback(&cb, &[("slugbase.oidc", &cookie)]),
        "OIDC_PROVIDER_UNAVAILABLE",
    );
    // At the start: discovery fails (not cached after the failure above).
    let res = e.s.client.get("/api/auth/oidc/testidp/start").dispatch();
    assert_failed(res, "OIDC_PROVIDER_UNAVAILABLE");
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
    // A provider that was never up: the server starts anyway and answers the same.
    let s = server_at(tempfile::tempdir().unwrap(), "http://127.0.0.1:9", false);
    let res = s.client.get("/api/auth/oidc/testidp/start").dispatch();
    assert_failed(res, "OIDC_PROVIDER_UNAVAILABLE");
}

#[test]
fn mfa_user_gets_the_second_step_then_verifies() {
    let Some(mut e) = env(false) else { return };
    e.s.user_with("ann@example.com", None);
    let jwt = signed_in(e.sign_in("ann"), "/");
    let (secret, _) = e.s.enroll(&jwt);
    let res = e.sign_in("ann");
    assert_eq!(res.status(), Status::Found);
    assert_eq!(location(&res), "/login?mfa=1");
    assert!(cookie_of(&res, "slugbase.sid").is_none());
    let pending = cookie_of(&res, "slugbase.mfa_pending").expect("pending cookie");
    drop(res);
    e.s.next_step();
    let res =
        e.s.client
            .post("/api/auth/mfa/verify")
            .header(rocket::http::ContentType::JSON)
            .cookie(Cookie::new("slugbase.mfa_pending", pending.clone()))
            .body(json!({"code": code_at(&secret, e.s.clock.now_())}).to_string())
            .dispatch();
    assert_eq!(res.status(), Status::Ok);
    assert!(cookie_of(&res, "slugbase.sid").is_some());
    assert_eq!(json_of(res)["email"], "ann@example.com");
    // Single use, as for a password sign-in.
    e.s.next_step();
    let res =
        e.s.client
            .post("/api/auth/mfa/verify")
            .header(rocket::http::ContentType::JSON)
            .cookie(Cookie::new("slugbase.mfa_pending", pending))
            .body(json!({"code": code_at(&secret, e.s.clock.now_())}).to_string())
            .dispatch();
    assert_error(res, Status::Unauthorized, "MFA_PENDING_INVALID");
}

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_slugbase"))
        .args(args)
        .env("SLUGBASE_DATA_DIR", dir)
        .env_remove("SLUGBASE_SECRET_KEY")
        .current_dir(dir)
        .output()
        .expect("run slugbase");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "slugbase {args:?}: {err}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Issue 14's "done when": an OIDC-only account made with the CLI signs in through the
/// provider, enrolls TOTP (begin, confirm), signs in again with the TOTP step, and turns MFA
/// off with a code and no password.
#[test]
fn done_when_oidc_only_account_signs_in_enrolls_and_disables_with_code_only() {
    let dir = tempfile::tempdir().unwrap();
    cli(
        dir.path(),
        &[
            "user",
            "create",
            "--email",
            "ann@example.com",
            "--oidc-only",
        ],
    );
    let Some(mut e) = env_on(dir, false) else {
        return;
    };
    let jwt = signed_in(e.sign_in("ann"), "/");
    let (secret, _) = e.s.enroll(&jwt);

    let res = e.sign_in("ann");
    assert_eq!(location(&res), "/login?mfa=1");
    let pending = cookie_of(&res, "slugbase.mfa_pending").expect("pending");
    drop(res);
    e.s.next_step();
    let res =
        e.s.client
            .post("/api/auth/mfa/verify")
            .header(rocket::http::ContentType::JSON)
            .cookie(Cookie::new("slugbase.mfa_pending", pending))
            .body(json!({"code": code_at(&secret, e.s.clock.now_())}).to_string())
            .dispatch();
    assert_eq!(res.status(), Status::Ok);
    let jwt = cookie_of(&res, "token").expect("token");
    drop(res);
    // Regenerate and disable ask an OIDC-only account for a code only.
    e.s.next_step();
    let code = code_at(&secret, e.s.clock.now_());
    let res = e.s.post_auth(
        "/api/auth/mfa/backup/regenerate",
        &jwt,
        Some(&json!({"code": code})),
    );
    assert_eq!(res.status(), Status::Ok);
    drop(res);
    e.s.next_step();
    let code = code_at(&secret, e.s.clock.now_());
    let res =
        e.s.post_auth("/api/auth/mfa/disable", &jwt, Some(&json!({"code": code})));
    assert_eq!(res.status(), Status::Ok);
    drop(res);
    let status = json_of(e.s.get_auth("/api/auth/mfa/status", &jwt));
    assert_eq!(status["enabled"], false);
    // And the next sign-in needs no second step.
    signed_in(e.sign_in("ann"), "/");
}

/// Writes the provider into `<dir>/Rocket.toml`, which the CLI (run in `dir`) reads.
fn write_cli_config(dir: &std::path::Path, issuer: &str) {
    let toml = format!(
        "[default]\n[[default.oidc_providers]]\nid = \"testidp\"\nname = \"Test IdP\"\n\
         issuer = \"{issuer}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
        idp::CLIENT_ID,
        idp::CLIENT_SECRET
    );
    std::fs::write(dir.join("Rocket.toml"), toml).unwrap();
}

#[test]
fn operator_links_a_password_account_lists_and_unlinks_it() {
    let Some(mut e) = env(false) else { return };
    let dir = e.s.dir.path().to_path_buf();
    write_cli_config(&dir, &e.idp.issuer);
    e.s.user("pat@example.com");
    assert_failed(e.sign_in("pat"), "OIDC_ACCOUNT_NOT_LINKED");
    cli(
        &dir,
        &[
            "user",
            "link-oidc",
            "--email",
            "pat@example.com",
            "--provider",
            "testidp",
            "--subject",
            "pat",
        ],
    );
    let list = cli(&dir, &["user", "list"]);
    assert!(
        list.contains("pat@example.com\tTest User\t\tgroups=\toidc:testidp"),
        "{list}"
    );
    let jwt = signed_in(e.sign_in("pat"), "/");
    assert_eq!(
        json_of(e.s.get_auth("/api/auth/me", &jwt))["has_password"],
        true
    );
    cli(
        &dir,
        &[
            "user",
            "unlink-oidc",
            "--email",
            "pat@example.com",
            "--provider",
            "testidp",
        ],
    );
    assert_failed(e.sign_in("pat"), "OIDC_ACCOUNT_NOT_LINKED");
    // `check` discovers the provider and prints the redirect URI to register.
    let out = cli(&dir, &["check"]);
    assert!(out.contains("oidc provider testidp: discovery ok"), "{out}");
    assert!(out.contains(&format!("redirect URI {CALLBACK}")), "{out}");
    e.idp.stop();
    let out = cli(&dir, &["check"]);
    assert!(
        out.contains("oidc provider testidp: discovery FAILED"),
        "{out}"
    );
}

#[test]
fn a_malformed_provider_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Rocket.toml"),
        "[default]\n[[default.oidc_providers]]\nid = \"Bad Id\"\nname = \"x\"\nissuer = \"https://id.example\"\nclient_id = \"c\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_slugbase"))
        .args(["check"])
        .env("SLUGBASE_DATA_DIR", dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.contains("error")).count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("oidc_providers[0]") && err.contains("id must"),
        "{err}"
    );
}

#[test]
fn a_provider_that_never_answers_times_out_after_10_s() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", silent.local_addr().unwrap());
    let s = server_at(tempfile::tempdir().unwrap(), &issuer, false);
    let t = Instant::now();
    let res = s.client.get("/api/auth/oidc/testidp/start").dispatch();
    assert_failed(res, "OIDC_PROVIDER_UNAVAILABLE");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(13),
        "{took:?}"
    );
}

#[test]
fn an_answer_naming_another_issuer_is_refused() {
    let Some(mut e) = env(false) else { return };
    e.s.user_with("ann@example.com", None);
    let (auth, cookie) = e.start(None);
    let cb = e.browser.sign_in(&e.idp.issuer, &auth, "ann");
    assert!(cb.contains("iss="), "oidc-provider sends iss: {cb}");
    let (k, _) = cb.split_once("iss=").unwrap();
    let rest = cb.split_once("iss=").unwrap().1;
    let tail = rest
        .split_once('&')
        .map(|(_, t)| format!("&{t}"))
        .unwrap_or_default();
    let mixed = format!("{k}iss=https%3A%2F%2Fevil.example{tail}");
    assert_failed(
        e.callback(&mixed, &[("slugbase.oidc", &cookie)]),
        "OIDC_PROVIDER_ERROR",
    );
}

#[test]
fn a_provider_down_at_start_up_is_discovered_once_it_answers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let s = server_at(
        tempfile::tempdir().unwrap(),
        &format!("http://127.0.0.1:{port}"),
        false,
    );
    let res = s.client.get("/api/auth/oidc/testidp/start").dispatch();
    assert_failed(res, "OIDC_PROVIDER_UNAVAILABLE");
    let Some(_idp) = idp::start_on(CALLBACK, port) else {
        return;
    };
    let res = s.client.get("/api/auth/oidc/testidp/start").dispatch();
    assert_eq!(res.status(), Status::Found);
    assert!(location(&res).starts_with(&format!("http://127.0.0.1:{port}/")));
}
