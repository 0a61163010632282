//! Issue 3: rate limits, lockout, races, sealing failures and interoperability.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::*;
use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::Client as AsyncClient;
use serde_json::json;
use slugbase::clock::ManualClock;

#[test]
fn begin_is_rate_limited_per_user() {
    let s = server();
    let (_, jwt) = s.bearer_for("ann@example.com");
    // Failed authentication does not use the user's quota.
    for _ in 0..5 {
        let res = s
            .client
            .post("/api/auth/mfa/enroll/begin")
            .header(bearer("sb_bogus"))
            .dispatch();
        assert_eq!(res.status(), Status::Unauthorized);
    }
    for i in 0..10 {
        assert_eq!(
            s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None)
                .status(),
            Status::Ok,
            "call {i}"
        );
        s.clock.advance(60);
    }
    let res = s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None);
    let header: u64 = res
        .headers()
        .get_one("Retry-After")
        .unwrap()
        .parse()
        .unwrap();
    let body = assert_error(res, Status::TooManyRequests, "RATE_LIMITED");
    assert_eq!(body["error"], "Too Many Requests");
    assert_eq!(body["retryAfter"], header);
    // The first call was at T0 and the clock is now T0 + 600: a slot frees at T0 + 3600.
    assert_eq!(header, 3000);
    let events = json_of(s.get_auth("/api/auth/mfa/events", &jwt));
    assert_eq!(events[0]["event"], "rate_limited");
    // Another user is unaffected; after the window the user may begin again.
    let (_, bob) = s.bearer_for("bob@example.com");
    assert_eq!(
        s.post_auth("/api/auth/mfa/enroll/begin", &bob, None)
            .status(),
        Status::Ok
    );
    s.clock.advance(header as i64);
    // (The access JWT lived its hour; sign in again.)
    let (_, jwt) = s.login("ann@example.com");
    assert_eq!(
        s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None)
            .status(),
        Status::Ok
    );
}

#[test]
fn begin_limit_per_user_survives_restart() {
    let s = server_with(&[("begin_limit_per_user", json!(2))]);
    let (_, jwt) = s.bearer_for("ann@example.com");
    for _ in 0..2 {
        let res = s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None);
        assert_eq!(res.status(), Status::Ok);
        s.clock.advance(100);
    }
    let dir = s.dir;
    drop(s.client);
    let s = server_on(dir, &[("begin_limit_per_user", json!(2))]);
    s.clock.set(T0 + 200);
    let res = s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None);
    let body = assert_error(res, Status::TooManyRequests, "RATE_LIMITED");
    // The first call (at T0) frees its slot at T0 + 3600.
    assert_eq!(body["retryAfter"], 3600 - 200);
    s.clock.set(T0 + 3600);
    let (_, jwt) = s.login("ann@example.com");
    let res = s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None);
    assert_eq!(res.status(), Status::Ok);
}

#[test]
fn begin_is_rate_limited_per_ip() {
    let s = server_with(&[("begin_limit_per_ip", json!(3))]);
    let ip = "198.51.100.7:4000".parse().unwrap();
    for i in 0..4 {
        let (_, jwt) = s.bearer_for(&format!("u{i}@example.com"));
        let mut req = s
            .client
            .post("/api/auth/mfa/enroll/begin")
            .header(bearer(&jwt));
        req.set_remote(ip);
        let res = req.dispatch();
        if i < 3 {
            assert_eq!(res.status(), Status::Ok);
        } else {
            assert_error(res, Status::TooManyRequests, "RATE_LIMITED");
        }
    }
}

#[test]
fn code_lockout_counts_across_endpoints_and_survives_restart() {
    let s = server();
    let (_, jwt) = s.bearer_for("ann@example.com");
    let (secret, _) = s.enroll(&jwt);
    let wrong = json!({"code": "000000", "password": PASSWORD});
    for _ in 0..5 {
        assert_error(
            s.post_auth("/api/auth/mfa/disable", &jwt, Some(&wrong)),
            Status::BadRequest,
            "INVALID_CODE",
        );
    }
    for _ in 0..4 {
        let res = s.post_auth("/api/auth/mfa/backup/regenerate", &jwt, Some(&wrong));
        assert_error(res, Status::BadRequest, "INVALID_CODE");
    }
    {
        let pending = s.password_step("ann@example.com");
        let res = verify(&s, &pending, "000000");
        assert_error(res, Status::Unauthorized, "INVALID_CODE");
    }
    // Ten failures: even the right code is refused now, and after a restart.
    s.next_step();
    let dir = s.dir;
    drop(s.client);
    let s = server_on(dir, &[]);
    s.clock.set(T0 + 30);
    let right = json!({"code": code_at(&secret, s.clock.now_()), "password": PASSWORD});
    let res = s.post_auth("/api/auth/mfa/disable", &jwt, Some(&right));
    let body = assert_error(res, Status::TooManyRequests, "RATE_LIMITED");
    assert_eq!(body["retryAfter"], 15 * 60 - 30);
    // Once the window frees up, the right code works and resets the count.
    s.clock.set(T0 + 15 * 60 + 30);
    let right = json!({"code": code_at(&secret, s.clock.now_()), "password": PASSWORD});
    assert_eq!(
        s.post_auth("/api/auth/mfa/backup/regenerate", &jwt, Some(&right))
            .status(),
        Status::Ok
    );
    assert_error(
        s.post_auth("/api/auth/mfa/disable", &jwt, Some(&wrong)),
        Status::BadRequest,
        "INVALID_CODE",
    );
}

async fn async_server() -> (AsyncClient, Arc<ManualClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let rocket = slugbase::rocket_with_clock(figment(dir.path(), &[]), clock.clone()).unwrap();
    (AsyncClient::untracked(rocket).await.unwrap(), clock, dir)
}

async fn async_user(c: &AsyncClient, email: &str) -> String {
    let app = c.rocket().state::<slugbase::state::App>().unwrap().clone();
    let hash = slugbase::auth::password::hash(PASSWORD).unwrap();
    let conn = app.db.get().unwrap();
    let u = slugbase::db::users::create(&conn, email, "T", false, Some(&hash), T0).unwrap();
    slugbase::auth::session::create(&app, &conn, u.id, T0, false, &Default::default())
        .unwrap()
        .access
}

async fn async_begin(c: &AsyncClient, jwt: &str) -> Vec<u8> {
    let res = c
        .post("/api/auth/mfa/enroll/begin")
        .header(bearer(jwt))
        .dispatch()
        .await;
    let body = res.into_json::<serde_json::Value>().await.unwrap();
    decode_secret(body["secret"].as_str().unwrap())
}

#[rocket::async_test]
async fn racing_confirms_enable_once_with_one_code_set() {
    let (c, _clock, _dir) = async_server().await;
    let jwt = async_user(&c, "ann@example.com").await;
    let secret = async_begin(&c, &jwt).await;
    let body = json!({"code": code_at(&secret, T0)}).to_string();
    let send = || {
        c.post("/api/auth/mfa/enroll/confirm")
            .header(bearer(&jwt))
            .header(ContentType::JSON)
            .body(body.clone())
            .dispatch()
    };
    let (a, b) = rocket::tokio::join!(send(), send());
    let mut statuses = [a.status().code, b.status().code];
    statuses.sort();
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!(statuses[1] == 409 || statuses[1] == 400, "{statuses:?}");
    let app = c.rocket().state::<slugbase::state::App>().unwrap();
    let n: i64 = app
        .db
        .get()
        .unwrap()
        .query_row("SELECT COUNT(*) FROM backup_codes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 10, "exactly one set of codes");
}

#[rocket::async_test]
async fn racing_backup_code_spends_once() {
    let (c, _clock, _dir) = async_server().await;
    let jwt = async_user(&c, "ann@example.com").await;
    let secret = async_begin(&c, &jwt).await;
    let res = c
        .post("/api/auth/mfa/enroll/confirm")
        .header(bearer(&jwt))
        .body(json!({"code": code_at(&secret, T0)}).to_string())
        .dispatch()
        .await;
    let codes = res.into_json::<serde_json::Value>().await.unwrap()["backup_codes"].clone();
    let body = json!({"code": codes[0], "password": PASSWORD}).to_string();
    let send = || {
        c.post("/api/auth/mfa/backup/regenerate")
            .header(bearer(&jwt))
            .body(body.clone())
            .dispatch()
    };
    let (a, b) = rocket::tokio::join!(send(), send());
    let mut statuses = [a.status().code, b.status().code];
    statuses.sort();
    assert_eq!(statuses, [200, 400], "exactly one spend wins");
}

#[test]
fn unsealable_secret_is_a_500_not_plaintext() {
    let s = server();
    let (id, jwt) = s.bearer_for("ann@example.com");
    s.enroll(&jwt);
    // A plaintext secret in the column (say, restored from elsewhere) must not be used.
    s.app()
        .db
        .get()
        .unwrap()
        .execute(
            "UPDATE users SET mfa_secret = CAST('JBSWY3DPEHPK3PXP' AS BLOB) WHERE id = ?1",
            [id],
        )
        .unwrap();
    s.next_step();
    let res = s.post_auth(
        "/api/auth/mfa/disable",
        &jwt,
        Some(&json!({"code": "123456", "password": PASSWORD})),
    );
    assert_error(res, Status::InternalServerError, "INTERNAL");
}

fn oathtool(secret: &str, at: i64) -> Option<String> {
    let when = format!("@{at}");
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "--now", &when, secret])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn oathtool_codes_confirm_and_verify() {
    if oathtool("JBSWY3DPEHPK3PXP", T0).is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "oathtool is required in CI (apt-get install oathtool)"
        );
        eprintln!("\n*** SKIPPED oathtool interoperability test: oathtool not found (apt-get install oathtool) ***\n");
        return;
    }
    let s = server();
    let (_, jwt) = s.bearer_for("ann@example.com");
    let secret = json_of(s.post_auth("/api/auth/mfa/enroll/begin", &jwt, None))["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let code = oathtool(&secret, s.clock.now_()).unwrap();
    let res = s.post_auth(
        "/api/auth/mfa/enroll/confirm",
        &jwt,
        Some(&json!({ "code": code })),
    );
    assert_eq!(res.status(), Status::Ok);
    s.next_step();
    let pending = s.password_step("ann@example.com");
    let code = oathtool(&secret, s.clock.now_()).unwrap();
    let res = verify(&s, &pending, &code);
    assert_eq!(res.status(), Status::Ok);
}

/// The disable/regenerate password check counts an attempt before argon2 runs, in the same
/// write as the lockout check: concurrent wrong passwords stop at exactly the limit (an odd
/// one, so that attempts checked in pairs cannot land on it by chance).
#[rocket::async_test]
async fn concurrent_wrong_passwords_on_disable_stop_at_the_lockout() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let config = figment(dir.path(), &[("mfa_failures_per_account", json!(5))]);
    let rocket = slugbase::rocket_with_clock(config, clock).unwrap();
    let c = AsyncClient::untracked(rocket).await.unwrap();
    let jwt = async_user(&c, "ann@example.com").await;
    let secret = async_begin(&c, &jwt).await;
    let res = c
        .post("/api/auth/mfa/enroll/confirm")
        .header(bearer(&jwt))
        .header(ContentType::JSON)
        .body(json!({"code": code_at(&secret, T0)}).to_string())
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::Ok);
    let body = json!({"code": "123456", "password": "not the password"}).to_string();
    let requests = (0..24).map(|_| {
        c.post("/api/auth/mfa/disable")
            .header(bearer(&jwt))
            .header(ContentType::JSON)
            .body(body.clone())
            .dispatch()
    });
    let (mut wrong, mut limited) = (0, 0);
    for res in rocket::futures::future::join_all(requests).await {
        let status = res.status().code;
        let body = res.into_json::<serde_json::Value>().await.unwrap();
        match (status, body["code"].as_str()) {
            (401, Some("INVALID_PASSWORD")) => wrong += 1,
            (429, Some("RATE_LIMITED")) => limited += 1,
            other => panic!("unexpected {other:?}: {body}"),
        }
    }
    assert_eq!((wrong, limited), (5, 19));
    // The right password and code are refused too until the window passes: the lockout held.
    let res = c
        .post("/api/auth/mfa/disable")
        .header(bearer(&jwt))
        .header(ContentType::JSON)
        .body(json!({"code": code_at(&secret, T0 + 30), "password": PASSWORD}).to_string())
        .dispatch()
        .await;
    assert_eq!(res.status(), Status::TooManyRequests);
}
