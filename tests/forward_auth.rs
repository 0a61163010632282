//! Forward-auth endpoints through rocket::local: the answer table of issue 15 for both
//! flavours, tokens only where a rule allows them, and the rate-limited refusal audit.

mod common;

use common::*;
use rocket::http::{Cookie, Header, Status};
use rocket::local::blocking::{LocalRequest, LocalResponse};
use serde_json::{json, Value};

const HTML: &str = "text/html,application/xhtml+xml,*/*;q=0.8";

/// The rules every test here runs with.
fn rules() -> Value {
    json!([
        {"hosts": ["*.home.test"], "paths": ["/api/public/*"], "methods": ["GET", "HEAD"], "policy": "bypass"},
        {"hosts": ["admin.home.test"], "policy": "one_factor", "groups": ["admins"]},
        {"hosts": ["secure.home.test"], "policy": "two_factor"},
        {"hosts": ["wiki.home.test"], "policy": "one_factor", "users": ["ann@example.com"], "api_tokens": true},
        {"hosts": ["app.home.test"], "policy": "one_factor"},
        {"hosts": ["deny.home.test"], "policy": "deny"}
    ])
}

fn gate() -> TestServer {
    server_with(&[
        ("public_url", json!("https://auth.home.test")),
        ("cookie_domain", json!("home.test")),
        ("access_rules", rules()),
    ])
}

/// What a proxy would send.
struct Ask<'a> {
    url: &'a str,
    method: &'a str,
    accept: Option<&'a str>,
    cookies: Vec<Cookie<'static>>,
    headers: Vec<Header<'static>>,
}

fn ask(url: &str) -> Ask<'_> {
    Ask {
        url,
        method: "GET",
        accept: None,
        cookies: Vec::new(),
        headers: Vec::new(),
    }
}

impl<'a> Ask<'a> {
    fn html(mut self) -> Self {
        self.accept = Some(HTML);
        self
    }
    fn sid(mut self, sid: &str) -> Self {
        self.cookies.push(cookie("slugbase.sid", sid));
        self
    }
    fn method(mut self, m: &'a str) -> Self {
        self.method = m;
        self
    }
    fn header(mut self, h: Header<'static>) -> Self {
        self.headers.push(h);
        self
    }

    /// As Traefik or Caddy ask (`X-Forwarded-*`).
    fn forward_auth(self, s: &TestServer) -> LocalResponse<'_> {
        let (proto, rest) = self.url.split_once("://").unwrap();
        let (host, uri) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut req = s
            .client
            .get("/api/authz/forward-auth")
            .header(Header::new("X-Forwarded-Proto", proto.to_string()))
            .header(Header::new("X-Forwarded-Host", host.to_string()))
            .header(Header::new("X-Forwarded-Uri", uri.to_string()))
            .header(Header::new("X-Forwarded-Method", self.method.to_string()));
        req = self.finish(req);
        req.dispatch()
    }

    /// As nginx asks (`X-Original-URL`).
    fn auth_request(self, s: &TestServer) -> LocalResponse<'_> {
        let mut req = s
            .client
            .get("/api/authz/auth-request")
            .header(Header::new("X-Original-URL", self.url.to_string()))
            .header(Header::new("X-Original-Method", self.method.to_string()));
        req = self.finish(req);
        req.dispatch()
    }

    fn finish<'c>(&self, mut req: LocalRequest<'c>) -> LocalRequest<'c> {
        if let Some(a) = self.accept {
            req.add_header(Header::new("Accept", a.to_string()));
        }
        req = req.cookies(self.cookies.clone());
        for h in &self.headers {
            req.add_header(h.clone());
        }
        req
    }
}

fn header(res: &LocalResponse<'_>, name: &str) -> Option<String> {
    res.headers().get_one(name).map(str::to_string)
}

fn assert_allowed(res: LocalResponse<'_>, user: &str, groups: &str) {
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(header(&res, "Remote-User").as_deref(), Some(user));
    assert_eq!(header(&res, "Remote-Email").as_deref(), Some(user));
    let name = if user.is_empty() { "" } else { "Test User" };
    assert_eq!(header(&res, "Remote-Name").as_deref(), Some(name));
    assert_eq!(header(&res, "Remote-Groups").as_deref(), Some(groups));
    assert_eq!(res.into_string().unwrap_or_default(), "");
}

#[test]
fn anonymous_browsers_are_sent_to_sign_in_and_apis_get_401() {
    let s = gate();
    let rd = "https%3A%2F%2Fapp%2Ehome%2Etest%2Fx%3Fy%3D1";
    let login = format!("https://auth.home.test/login?rd={rd}");
    let res = ask("https://app.home.test/x?y=1").html().forward_auth(&s);
    assert_eq!(res.status(), Status::Found);
    assert_eq!(header(&res, "Location"), Some(login.clone()));
    let res = ask("https://app.home.test/x?y=1").html().auth_request(&s);
    assert_eq!(header(&res, "Location"), Some(login));
    assert_error(res, Status::Unauthorized, "UNAUTHORIZED");
    for res in [
        ask("https://app.home.test/api").forward_auth(&s),
        ask("https://app.home.test/api").auth_request(&s),
        ask("https://app.home.test/")
            .html()
            .method("POST")
            .forward_auth(&s),
    ] {
        assert_eq!(header(&res, "Location"), None);
        assert_error(res, Status::Unauthorized, "UNAUTHORIZED");
    }
}

#[test]
fn a_session_passes_with_the_four_identity_headers() {
    let s = gate();
    s.user("bob@example.com");
    let (sid, jwt) = s.login("bob@example.com");
    assert_allowed(
        ask("https://app.home.test/").sid(&sid).forward_auth(&s),
        "bob@example.com",
        "",
    );
    assert_allowed(
        ask("https://app.home.test/").sid(&sid).auth_request(&s),
        "bob@example.com",
        "",
    );
    let mut by_jwt = ask("http://app.home.test:8080/");
    by_jwt.cookies.push(cookie("token", &jwt));
    assert_allowed(by_jwt.auth_request(&s), "bob@example.com", "");
    // The application's own Authorization header does not hide the session.
    let res = ask("https://app.home.test/")
        .sid(&sid)
        .header(Header::new("Authorization", "Basic Ym9iOnNlY3JldA=="))
        .forward_auth(&s);
    assert_allowed(res, "bob@example.com", "");
    // Logged out: the session is gone.
    let res = s
        .client
        .post("/api/auth/logout")
        .header(bearer(&jwt))
        .header(rocket::http::ContentType::JSON)
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    let res = ask("https://app.home.test/").sid(&sid).forward_auth(&s);
    assert_error(res, Status::Unauthorized, "UNAUTHORIZED");
}

#[test]
fn bypass_needs_no_session_and_cannot_be_reached_by_dot_segments() {
    let s = gate();
    assert_allowed(
        ask("https://app.home.test/api/public/x").forward_auth(&s),
        "",
        "",
    );
    assert_allowed(
        ask("https://other.home.test/api/public/").auth_request(&s),
        "",
        "",
    );
    for url in [
        "https://app.home.test/api/public/../secret",
        "https://app.home.test/api/public/%2e%2e/secret",
        "https://app.home.test/api/public",
    ] {
        assert_error(
            ask(url).forward_auth(&s),
            Status::Unauthorized,
            "UNAUTHORIZED",
        );
    }
    // Only GET and HEAD bypass.
    let res = ask("https://app.home.test/api/public/x")
        .method("POST")
        .forward_auth(&s);
    assert_error(res, Status::Unauthorized, "UNAUTHORIZED");
}

#[test]
fn group_user_and_deny_rules_refuse_with_403_and_audit_once_a_minute() {
    let s = gate();
    let bob = s.user("bob@example.com");
    let (sid, jwt) = s.login("bob@example.com");
    for url in [
        "https://admin.home.test/",
        "https://wiki.home.test/",
        "https://deny.home.test/",
        "https://unlisted.home.test/",
    ] {
        assert_error(
            ask(url).html().sid(&sid).forward_auth(&s),
            Status::Forbidden,
            "ACCESS_DENIED",
        );
        assert_error(
            ask(url).html().sid(&sid).auth_request(&s),
            Status::Forbidden,
            "ACCESS_DENIED",
        );
    }
    let denied = |s: &TestServer| {
        let events = json_of(s.get_auth("/api/auth/mfa/events", &jwt));
        events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "forward_auth_denied")
            .cloned()
            .collect::<Vec<_>>()
    };
    // Eight refusals, four (user, rule, host) keys: four events.
    let events = denied(&s);
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e["detail"] == "rule=1 host=admin.home.test path=/"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["detail"] == "rule=default host=unlisted.home.test path=/"),
        "{events:?}"
    );
    s.clock.advance(61);
    assert_error(
        ask("https://admin.home.test/").sid(&sid).forward_auth(&s),
        Status::Forbidden,
        "ACCESS_DENIED",
    );
    assert_eq!(denied(&s).len(), 5);
    // The admin flag is the built-in admins group.
    let conn = s.app().db.get().unwrap();
    conn.execute("UPDATE users SET is_admin = 1 WHERE id = ?1", [bob])
        .unwrap();
    slugbase::db::groups::add(&conn, bob, "staff").unwrap();
    assert_allowed(
        ask("https://admin.home.test/").sid(&sid).forward_auth(&s),
        "bob@example.com",
        "admins,staff",
    );
    let me = json_of(s.get_auth("/api/auth/me", &jwt));
    assert_eq!(me["groups"], json!(["admins", "staff"]));
}

#[test]
fn two_factor_asks_for_enrollment_then_for_the_second_step() {
    let s = gate();
    s.user("bob@example.com");
    let (sid, jwt) = s.login("bob@example.com");
    let url = "https://secure.home.test/";
    let enroll = "https://auth.home.test/?enroll=1&rd=https%3A%2F%2Fsecure%2Ehome%2Etest%2F";
    let res = ask(url).html().sid(&sid).forward_auth(&s);
    assert_eq!(res.status(), Status::Found);
    assert_eq!(header(&res, "Location").as_deref(), Some(enroll));
    let res = ask(url).html().sid(&sid).auth_request(&s);
    assert_eq!(header(&res, "Location").as_deref(), Some(enroll));
    assert_error(res, Status::Unauthorized, "MFA_ENROLLMENT_REQUIRED");
    assert_error(
        ask(url).sid(&sid).forward_auth(&s),
        Status::Forbidden,
        "MFA_ENROLLMENT_REQUIRED",
    );
    // Enrolling from this session marks it as having passed a second factor.
    s.enroll(&jwt);
    assert_allowed(ask(url).sid(&sid).forward_auth(&s), "bob@example.com", "");
    // A session without the second factor (e.g. from before, or OIDC) must sign in again.
    let app = s.app().clone();
    let one = slugbase::auth::session::create(
        &app,
        &app.db.get().unwrap(),
        json_of(s.get_auth("/api/auth/me", &jwt))["id"]
            .as_i64()
            .unwrap(),
        s.clock.now_(),
        false,
        &Default::default(),
    )
    .unwrap();
    let res = ask(url).html().sid(&one.sid).forward_auth(&s);
    assert_eq!(res.status(), Status::Found);
    assert_eq!(
        header(&res, "Location").as_deref(),
        Some("https://auth.home.test/login?rd=https%3A%2F%2Fsecure%2Ehome%2Etest%2F")
    );
    assert_error(
        ask(url).sid(&one.sid).auth_request(&s),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    // One-factor rules still take it.
    assert_allowed(
        ask("https://app.home.test/").sid(&one.sid).forward_auth(&s),
        "bob@example.com",
        "",
    );
}

#[test]
fn api_tokens_pass_only_where_the_rule_allows_them() {
    let s = gate();
    s.user("ann@example.com");
    let (_, jwt) = s.login("ann@example.com");
    let res = s.post_auth("/api/tokens", &jwt, Some(&json!({"name": "cli"})));
    assert_eq!(res.status(), Status::Created);
    let token = json_of(res)["token"].as_str().unwrap().to_string();
    let with = |url| ask(url).header(bearer(&token));
    assert_allowed(
        with("https://wiki.home.test/api/x").forward_auth(&s),
        "ann@example.com",
        "",
    );
    assert_allowed(
        with("https://wiki.home.test/api/x").auth_request(&s),
        "ann@example.com",
        "",
    );
    assert_error(
        with("https://app.home.test/api/x").forward_auth(&s),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    assert_error(
        with("https://app.home.test/api/x").auth_request(&s),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    let bad = format!("sb_{}", "A".repeat(43));
    assert_error(
        ask("https://wiki.home.test/")
            .header(bearer(&bad))
            .forward_auth(&s),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
}

#[test]
fn a_request_the_proxy_did_not_describe_is_a_400() {
    let s = gate();
    let res = s.client.get("/api/authz/auth-request").dispatch();
    assert_error(res, Status::BadRequest, "BAD_ORIGINAL_REQUEST");
    let res = s
        .client
        .get("/api/authz/forward-auth")
        .header(Header::new("X-Forwarded-Host", "bad host"))
        .dispatch();
    assert_error(res, Status::BadRequest, "BAD_ORIGINAL_REQUEST");
    let res = s
        .client
        .get("/api/authz/auth-request")
        .header(Header::new("X-Original-URL", "https://u@app.home.test/"))
        .dispatch();
    assert_error(res, Status::BadRequest, "BAD_ORIGINAL_REQUEST");
}
