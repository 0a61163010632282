//! Shared helpers for integration tests: a fresh server on a temp data dir with a manual
//! clock, and shortcuts for the common calls.
#![allow(dead_code)]

use std::sync::Arc;

use figment::Figment;
use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::blocking::{Client, LocalResponse};
use serde_json::{json, Value};
use slugbase::clock::ManualClock;
use slugbase::state::App;
use tempfile::TempDir;

/// A fixed start time, aligned to a TOTP step.
pub const T0: i64 = 1_800_000_000;
/// The password every seeded user has.
pub const PASSWORD: &str = "correct horse battery";

/// A running test server.
pub struct TestServer {
    pub client: Client,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
}

/// The standard test figment on `dir`, with `extra` settings merged last.
pub fn figment(dir: &std::path::Path, extra: &[(&str, Value)]) -> Figment {
    let mut f = slugbase::config::figment().merge(("data_dir", dir.to_string_lossy().to_string()));
    for (k, v) in extra {
        f = f.merge((*k, v.clone()));
    }
    f
}

/// A server on a fresh temp dir.
pub fn server() -> TestServer {
    server_with(&[])
}

/// A server on a fresh temp dir with extra settings.
pub fn server_with(extra: &[(&str, Value)]) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    server_on(dir, extra)
}

/// A server on an existing dir (for restarts).
pub fn server_on(dir: TempDir, extra: &[(&str, Value)]) -> TestServer {
    let clock = Arc::new(ManualClock::new(T0));
    let rocket =
        slugbase::rocket_with_clock(figment(dir.path(), extra), clock.clone()).expect("build");
    let client = Client::untracked(rocket).expect("client");
    TestServer { client, clock, dir }
}

impl TestServer {
    pub fn app(&self) -> &App {
        self.client.rocket().state::<App>().expect("state")
    }

    /// Creates a user directly in the database and returns its id.
    pub fn user(&self, email: &str) -> i64 {
        self.user_with(email, Some(PASSWORD))
    }

    /// Creates a user, OIDC-only when `password` is None.
    pub fn user_with(&self, email: &str, password: Option<&str>) -> i64 {
        let hash = password.map(|p| slugbase::auth::password::hash(p).expect("hash"));
        let conn = self.app().db.get().expect("conn");
        slugbase::db::users::create(
            &conn,
            email,
            "Test User",
            false,
            hash.as_deref(),
            self.clock.now_(),
        )
        .expect("create user")
        .id
    }

    /// Signs in and returns (sid cookie value, access JWT).
    pub fn login(&self, email: &str) -> (String, String) {
        let res = self.post_json(
            "/api/auth/login",
            &json!({"email": email, "password": PASSWORD}),
            &[],
        );
        assert_eq!(res.status(), Status::Ok);
        let sid = res
            .cookies()
            .get("slugbase.sid")
            .expect("sid")
            .value()
            .to_string();
        let jwt = res
            .cookies()
            .get("token")
            .expect("token")
            .value()
            .to_string();
        (sid, jwt)
    }

    /// A JWT for a fresh session of a new user `email`.
    pub fn bearer_for(&self, email: &str) -> (i64, String) {
        let id = self.user(email);
        (id, self.login(email).1)
    }

    /// Signs in with the password of an account with MFA on; returns the pending cookie.
    pub fn password_step(&self, email: &str) -> String {
        pending_of(self.post_json(
            "/api/auth/login",
            &json!({"email": email, "password": PASSWORD}),
            &[],
        ))
    }

    pub fn post_json(
        &self,
        path: &str,
        body: &Value,
        headers: &[Header<'static>],
    ) -> LocalResponse<'_> {
        let mut req = self
            .client
            .post(path.to_string())
            .header(ContentType::JSON)
            .body(body.to_string());
        for h in headers {
            req.add_header(h.clone());
        }
        req.dispatch()
    }

    pub fn post_auth(&self, path: &str, jwt: &str, body: Option<&Value>) -> LocalResponse<'_> {
        let mut req = self
            .client
            .post(path.to_string())
            .header(bearer(jwt))
            .header(ContentType::JSON);
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        req.dispatch()
    }

    pub fn get_auth(&self, path: &str, jwt: &str) -> LocalResponse<'_> {
        self.client
            .get(path.to_string())
            .header(bearer(jwt))
            .dispatch()
    }

    /// Begins and confirms enrollment; returns (secret bytes, backup codes).
    pub fn enroll(&self, jwt: &str) -> (Vec<u8>, Vec<String>) {
        let begin = json_of(self.post_auth("/api/auth/mfa/enroll/begin", jwt, None));
        let secret = decode_secret(begin["secret"].as_str().expect("secret"));
        let code = code_at(&secret, self.clock.now_());
        let res = self.post_auth(
            "/api/auth/mfa/enroll/confirm",
            jwt,
            Some(&json!({ "code": code })),
        );
        assert_eq!(res.status(), Status::Ok);
        let codes = json_of(res)["backup_codes"]
            .as_array()
            .expect("codes")
            .iter()
            .map(|c| c.as_str().expect("str").to_string())
            .collect();
        (secret, codes)
    }

    /// Moves the clock to the next TOTP step (so a fresh code is not a replay).
    pub fn next_step(&self) {
        self.clock.advance(30);
    }
}

/// Reading the manual clock without importing the trait everywhere.
pub trait NowExt {
    fn now_(&self) -> i64;
}

impl NowExt for ManualClock {
    fn now_(&self) -> i64 {
        use slugbase::clock::Clock;
        self.now()
    }
}

pub fn bearer(token: &str) -> Header<'static> {
    Header::new("Authorization", format!("Bearer {token}"))
}

pub fn cookie(name: &str, value: &str) -> Cookie<'static> {
    Cookie::new(name.to_string(), value.to_string())
}

pub fn json_of(res: LocalResponse<'_>) -> Value {
    let text = res.into_string().unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Asserts status and machine code of an error response, and returns its body.
pub fn assert_error(res: LocalResponse<'_>, status: Status, code: &str) -> Value {
    assert_eq!(res.status(), status, "status");
    assert_eq!(res.content_type(), Some(ContentType::JSON), "content type");
    let body = json_of(res);
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(body["error"], status.reason().unwrap_or(""), "body: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
    body
}

pub fn decode_secret(b32: &str) -> Vec<u8> {
    base32::decode(base32::Alphabet::Rfc4648 { padding: false }, b32).expect("base32")
}

/// The TOTP code for the step holding `now`.
pub fn code_at(secret: &[u8], now: i64) -> String {
    slugbase::mfa::totp::code_for_step(secret, slugbase::mfa::totp::step_of(now), 6)
}

/// The second sign-in step, as the page sends it: the code with the pending cookie.
pub fn verify<'a>(s: &'a TestServer, pending: &str, code: &str) -> LocalResponse<'a> {
    s.client
        .post("/api/auth/mfa/verify")
        .header(ContentType::JSON)
        .cookie(cookie("slugbase.mfa_pending", pending))
        .body(json!({ "code": code }).to_string())
        .dispatch()
}

/// The pending cookie of a password step that answered `{"mfa_required": true}`.
pub fn pending_of(res: LocalResponse<'_>) -> String {
    let pending = res
        .cookies()
        .get("slugbase.mfa_pending")
        .expect("pending cookie")
        .value()
        .to_string();
    assert_eq!(json_of(res), json!({"mfa_required": true}));
    pending
}
