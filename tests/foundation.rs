//! Issue 2: accounts, sessions, access JWTs, sb_ tokens, errors and CSRF.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use rocket::http::{ContentType, Header, Status};
use serde_json::json;
use slugbase::auth::jwt::{self, Claims};

#[test]
fn login_success_sets_both_cookies_with_flags() {
    let s = server();
    let id = s.user("ann@example.com");
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": "  ANN@example.com ", "password": PASSWORD}),
        &[],
    );
    assert_eq!(res.status(), Status::Ok);
    let set: Vec<String> = res
        .headers()
        .get("Set-Cookie")
        .map(str::to_string)
        .collect();
    for name in ["slugbase.sid=", "token="] {
        let c = set
            .iter()
            .find(|c| c.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {set:?}"));
        assert!(c.contains("HttpOnly"), "{c}");
        assert!(c.contains("SameSite=Lax"), "{c}");
        assert!(c.contains("Path=/"), "{c}");
        assert!(!c.contains("Secure"), "Secure is off by default: {c}");
    }
    let sid = res
        .cookies()
        .get("slugbase.sid")
        .unwrap()
        .value()
        .to_string();
    assert!(
        URL_SAFE_NO_PAD.decode(&sid).unwrap().len() >= 32,
        "≥ 256-bit session id"
    );
    let user = json_of(res);
    assert_eq!(
        user,
        json!({"id": id, "email": "ann@example.com", "name": "Test User",
        "is_admin": false, "has_password": true, "mfa_enabled": false})
    );
    // Only a hash of the session id is stored.
    let conn = s.app().db.get().unwrap();
    let stored: Vec<u8> = conn
        .query_row("SELECT id_hash FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_ne!(stored, sid.as_bytes());
}

#[test]
fn secure_cookie_setting() {
    let s = server_with(&[("cookie_secure", json!(true))]);
    s.user("ann@example.com");
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": "ann@example.com", "password": PASSWORD}),
        &[],
    );
    let set: Vec<&str> = res.headers().get("Set-Cookie").collect();
    assert!(set.iter().all(|c| c.contains("Secure")), "{set:?}");
}

#[test]
fn failed_logins_all_look_the_same() {
    let s = server();
    s.user("ann@example.com");
    s.user_with("oidc@example.com", None);
    let attempts = [
        json!({"email": "ann@example.com", "password": "wrong password"}),
        json!({"email": "nobody@example.com", "password": PASSWORD}),
        json!({"email": "oidc@example.com", "password": PASSWORD}),
        json!({"email": "oidc@example.com", "password": ""}),
    ];
    let mut bodies = Vec::new();
    let mut times = Vec::new();
    for a in &attempts {
        let t = std::time::Instant::now();
        let res = s.post_json("/api/auth/login", a, &[]);
        times.push(t.elapsed());
        assert!(res.headers().get_one("Set-Cookie").is_none());
        bodies.push(assert_error(
            res,
            Status::Unauthorized,
            "INVALID_CREDENTIALS",
        ));
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    // Every failure pays for one argon2 verification, so none is many times faster.
    let (min, max) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    assert!(
        max.as_secs_f64() < min.as_secs_f64() * 5.0 + 0.05,
        "{times:?}"
    );
}

#[test]
fn each_credential_kind_authenticates_me() {
    let s = server();
    let id = s.user("ann@example.com");
    let (sid, jwt) = s.login("ann@example.com");
    let token = json_of(s.post_auth("/api/tokens", &jwt, Some(&json!({"name": "ci"}))))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let me = |req: rocket::local::blocking::LocalRequest<'_>| {
        let res = req.dispatch();
        assert_eq!(res.status(), Status::Ok);
        json_of(res)["id"].as_i64().unwrap()
    };
    assert_eq!(me(s.client.get("/api/auth/me").header(bearer(&token))), id);
    assert_eq!(me(s.client.get("/api/auth/me").header(bearer(&jwt))), id);
    assert_eq!(
        me(s.client.get("/api/auth/me").cookie(cookie("token", &jwt))),
        id
    );
    assert_eq!(
        me(s.client
            .get("/api/auth/me")
            .cookie(cookie("slugbase.sid", &sid))),
        id
    );
    assert_error(
        s.client.get("/api/auth/me").dispatch(),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    for bad in [
        "Bearer",
        "Bearer sb_nope",
        "Basic abc",
        "Bearer not.a.jwt",
        "Bearer ",
    ] {
        let res = s
            .client
            .get("/api/auth/me")
            .header(Header::new("Authorization", bad))
            .dispatch();
        assert_error(res, Status::Unauthorized, "UNAUTHORIZED");
    }
    let res = s
        .client
        .get("/api/auth/me")
        .cookie(cookie("slugbase.sid", "forged"))
        .dispatch();
    assert_error(res, Status::Unauthorized, "UNAUTHORIZED");
    // An explicit bad Authorization header is not rescued by a good cookie.
    let res = s
        .client
        .get("/api/auth/me")
        .header(bearer("sb_x"))
        .cookie(cookie("slugbase.sid", &sid))
        .dispatch();
    assert_error(res, Status::Unauthorized, "UNAUTHORIZED");
}

#[test]
fn logout_revokes_cookie_and_jwt() {
    let s = server();
    s.user("ann@example.com");
    let (sid, jwt) = s.login("ann@example.com");
    let res = s
        .client
        .post("/api/auth/logout")
        .header(ContentType::JSON)
        .cookie(cookie("slugbase.sid", &sid))
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    let cleared: Vec<&str> = res.headers().get("Set-Cookie").collect();
    assert!(
        cleared.iter().any(|c| c.starts_with("slugbase.sid=;")),
        "{cleared:?}"
    );
    assert!(
        cleared.iter().any(|c| c.starts_with("token=;")),
        "{cleared:?}"
    );
    assert_eq!(json_of(res), json!({"ok": true}));
    let r = s
        .client
        .get("/api/auth/me")
        .cookie(cookie("slugbase.sid", &sid))
        .dispatch();
    assert_error(r, Status::Unauthorized, "UNAUTHORIZED");
    assert_error(
        s.get_auth("/api/auth/me", &jwt),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    let r = s
        .client
        .get("/api/auth/me")
        .cookie(cookie("token", &jwt))
        .dispatch();
    assert_error(r, Status::Unauthorized, "UNAUTHORIZED");
}

fn forge(claims: &Claims, key: &[u8; 32]) -> String {
    jwt::sign(key, claims).unwrap()
}

#[test]
fn bad_jwts_fail() {
    let s = server();
    s.user("ann@example.com");
    let (_, good) = s.login("ann@example.com");
    let key = s.app().keys.jwt;
    let parts: Vec<&str> = good.split('.').collect();
    let claims: Claims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims.typ, "access");
    assert_eq!(s.get_auth("/api/auth/me", &good).status(), Status::Ok);

    let other_key = forge(&claims, &[0x42; 32]);
    let wrong_typ = forge(
        &Claims {
            typ: "mfa_pending".into(),
            ..claims.clone()
        },
        &key,
    );
    let other_sid = forge(
        &Claims {
            sid: Some(format!("{}x", claims.sid.clone().unwrap())),
            ..claims.clone()
        },
        &key,
    );
    let other_sub = forge(
        &Claims {
            sub: "999".into(),
            ..claims.clone()
        },
        &key,
    );
    let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{header_none}.{}.", parts[1]);
    let mut tampered_claims = claims.clone();
    tampered_claims.sub = "2".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered_claims).unwrap()),
        parts[2]
    );
    for (name, t) in [
        ("other key", &other_key),
        ("wrong typ", &wrong_typ),
        ("alg none", &alg_none),
        ("tampered", &tampered),
        ("unknown sid", &other_sid),
        ("sub mismatch", &other_sub),
    ] {
        let res = s.get_auth("/api/auth/me", t);
        assert_eq!(res.status(), Status::Unauthorized, "{name}");
    }
    // Expired: one second past exp (the access TTL is one hour).
    s.clock.advance(claims.exp - claims.iat);
    assert_error(
        s.get_auth("/api/auth/me", &good),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
}

#[test]
fn token_lifecycle() {
    let s = server();
    s.user("ann@example.com");
    let (_, jwt) = s.login("ann@example.com");
    let res = s.post_auth(
        "/api/tokens",
        &jwt,
        Some(&json!({"name": "  backup script "})),
    );
    assert_eq!(res.status(), Status::Created);
    let created = json_of(res);
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("sb_"));
    assert!(URL_SAFE_NO_PAD.decode(&token[3..]).unwrap().len() >= 32);
    assert_eq!(created["name"], "backup script");
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    let list = json_of(s.get_auth("/api/tokens", &jwt));
    assert_eq!(list.as_array().unwrap().len(), 1);
    let text = list.to_string();
    assert!(
        !text.contains(&token[3..]) && !text.contains("hash"),
        "{text}"
    );
    assert_eq!(list[0]["last_used_at"], json!(null));
    assert_eq!(list[0]["id"], created["id"]);

    assert_eq!(s.get_auth("/api/auth/me", &token).status(), Status::Ok);
    let list = json_of(s.get_auth("/api/tokens", &jwt));
    assert!(
        list[0]["last_used_at"].is_string(),
        "last_used_at kept current"
    );

    // Another user cannot see or delete it.
    let (_, bob) = s.bearer_for("bob@example.com");
    let id = created["id"].as_i64().unwrap();
    let res = s
        .client
        .delete(format!("/api/tokens/{id}"))
        .header(bearer(&bob))
        .dispatch();
    assert_error(res, Status::NotFound, "TOKEN_NOT_FOUND");
    let res = s
        .client
        .delete("/api/tokens/abc")
        .header(bearer(&bob))
        .dispatch();
    assert_error(res, Status::NotFound, "TOKEN_NOT_FOUND");
    assert_eq!(json_of(s.get_auth("/api/tokens", &bob)), json!([]));

    let res = s
        .client
        .delete(format!("/api/tokens/{id}"))
        .header(bearer(&jwt))
        .dispatch();
    assert_eq!(json_of(res), json!({"ok": true}));
    assert_error(
        s.get_auth("/api/auth/me", &token),
        Status::Unauthorized,
        "UNAUTHORIZED",
    );
    let res = s
        .client
        .delete(format!("/api/tokens/{id}"))
        .header(bearer(&jwt))
        .dispatch();
    assert_error(res, Status::NotFound, "TOKEN_NOT_FOUND");

    for bad in [
        json!({"name": "   "}),
        json!({"name": "x".repeat(101)}),
        json!({"name": 5}),
        json!({}),
    ] {
        let body = assert_error(
            s.post_auth("/api/tokens", &jwt, Some(&bad)),
            Status::BadRequest,
            "VALIDATION_ERROR",
        );
        assert_eq!(body["details"]["field"], "name");
    }
}

#[test]
fn csrf_applies_to_cookies_not_bearer() {
    let s = server();
    s.user("ann@example.com");
    let (sid, jwt) = s.login("ann@example.com");
    let evil = Header::new("Origin", "https://evil.example");
    let res = s
        .client
        .post("/api/tokens")
        .header(ContentType::JSON)
        .body(r#"{"name":"x"}"#)
        .cookie(cookie("slugbase.sid", &sid))
        .header(evil.clone())
        .dispatch();
    assert_error(res, Status::Forbidden, "CSRF_REJECTED");
    let res = s
        .client
        .post("/api/tokens")
        .header(ContentType::JSON)
        .body(r#"{"name":"x"}"#)
        .cookie(cookie("token", &jwt))
        .header(Header::new("Sec-Fetch-Site", "cross-site"))
        .dispatch();
    assert_error(res, Status::Forbidden, "CSRF_REJECTED");
    let res = s
        .client
        .post("/api/tokens")
        .header(ContentType::JSON)
        .body(r#"{"name":"x"}"#)
        .header(bearer(&jwt))
        .header(evil.clone())
        .dispatch();
    assert_eq!(res.status(), Status::Created);
    // Same origin with cookies is fine, and so are safe methods from anywhere.
    let res = s
        .client
        .post("/api/tokens")
        .header(ContentType::JSON)
        .body(r#"{"name":"y"}"#)
        .header(Header::new("Host", "localhost:8000"))
        .header(Header::new("Origin", "http://localhost:8000"))
        .cookie(cookie("slugbase.sid", &sid))
        .dispatch();
    assert_eq!(res.status(), Status::Created);
    let res = s
        .client
        .get("/api/auth/me")
        .cookie(cookie("slugbase.sid", &sid))
        .header(evil.clone())
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    // Login CSRF: a foreign page cannot sign a browser in.
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": "ann@example.com", "password": PASSWORD}),
        &[evil],
    );
    assert_error(res, Status::Forbidden, "CSRF_REJECTED");
}

#[test]
fn bad_bodies_get_json_4xx() {
    let s = server();
    let post = |body: &str, ct: ContentType| {
        s.client
            .post("/api/auth/login")
            .header(ct)
            .body(body)
            .dispatch()
    };
    assert_error(
        post("{not json", ContentType::JSON),
        Status::BadRequest,
        "VALIDATION_ERROR",
    );
    assert_error(
        post("[]", ContentType::JSON),
        Status::BadRequest,
        "VALIDATION_ERROR",
    );
    let b = assert_error(
        post(r#"{"email": 5, "password": "x"}"#, ContentType::JSON),
        Status::BadRequest,
        "VALIDATION_ERROR",
    );
    assert_eq!(b["details"]["field"], "email");
    let b = assert_error(
        post(r#"{"email": "a@b.c"}"#, ContentType::JSON),
        Status::BadRequest,
        "VALIDATION_ERROR",
    );
    assert_eq!(b["details"]["field"], "password");
    let b = assert_error(
        post("", ContentType::JSON),
        Status::BadRequest,
        "VALIDATION_ERROR",
    );
    assert_eq!(b["details"]["field"], "email");
    let big = format!(
        r#"{{"email": "a@b.c", "password": "{}"}}"#,
        "x".repeat(100_000)
    );
    assert_error(
        post(&big, ContentType::JSON),
        Status::PayloadTooLarge,
        "PAYLOAD_TOO_LARGE",
    );
    assert_error(
        post("email=a", ContentType::Form),
        Status::UnsupportedMediaType,
        "UNSUPPORTED_MEDIA_TYPE",
    );
    assert_error(
        s.client.get("/api/nope").dispatch(),
        Status::NotFound,
        "NOT_FOUND",
    );
    // A routed path with another method: 405 with Allow (issue 17).
    assert_error(
        s.client.put("/api/auth/login").dispatch(),
        Status::MethodNotAllowed,
        "METHOD_NOT_ALLOWED",
    );
    assert_error(
        s.client.get("/api/tokens/1/x").dispatch(),
        Status::NotFound,
        "NOT_FOUND",
    );
}

#[test]
fn failed_login_limit() {
    let s = server();
    s.user("ann@example.com");
    let wrong = json!({"email": "ann@example.com", "password": "nope nope"});
    for _ in 0..10 {
        assert_error(
            s.post_json("/api/auth/login", &wrong, &[]),
            Status::Unauthorized,
            "INVALID_CREDENTIALS",
        );
    }
    s.clock.advance(60);
    let right = json!({"email": "ann@example.com", "password": PASSWORD});
    let res = s.post_json("/api/auth/login", &right, &[]);
    let retry: u64 = res
        .headers()
        .get_one("Retry-After")
        .unwrap()
        .parse()
        .unwrap();
    let body = assert_error(res, Status::TooManyRequests, "RATE_LIMITED");
    assert_eq!(body["retryAfter"], retry);
    assert_eq!(retry, 15 * 60 - 60);
    // The limit is per account: another account from the same client is unaffected.
    s.user("bob@example.com");
    s.login("bob@example.com");
    // Once the window frees up, the right password works again.
    s.clock.advance(retry as i64);
    assert_eq!(
        s.post_json("/api/auth/login", &right, &[]).status(),
        Status::Ok
    );
}

#[test]
fn failed_login_limit_per_ip() {
    let s = server_with(&[("login_failures_per_ip", json!(3))]);
    for i in 0..3 {
        let body = json!({"email": format!("u{i}@example.com"), "password": "nope nope"});
        assert_error(
            s.post_json("/api/auth/login", &body, &[]),
            Status::Unauthorized,
            "INVALID_CREDENTIALS",
        );
    }
    let body = json!({"email": "other@example.com", "password": "nope nope"});
    assert_error(
        s.post_json("/api/auth/login", &body, &[]),
        Status::TooManyRequests,
        "RATE_LIMITED",
    );
}

#[test]
fn health_and_headers() {
    let s = server();
    let res = s.client.get("/api/health").dispatch();
    assert_eq!(res.status(), Status::Ok);
    let h = res.headers();
    assert_eq!(h.get_one("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(h.get_one("Cache-Control"), Some("no-store"));
    assert!(h.get_one("Referrer-Policy").is_some());
    assert!(h
        .get_one("Content-Security-Policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(json_of(res), json!({"status": "ok"}));
}

#[test]
fn restart_keeps_key_and_data() {
    let s = server();
    s.user("ann@example.com");
    let (_, jwt) = s.login("ann@example.com");
    let key = std::fs::read_to_string(s.dir.path().join("secret.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(s.dir.path().join("secret.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir = s.dir;
    drop(s.client);
    let s2 = server_on(dir, &[]);
    assert_eq!(
        std::fs::read_to_string(s2.dir.path().join("secret.key")).unwrap(),
        key
    );
    assert_eq!(s2.get_auth("/api/auth/me", &jwt).status(), Status::Ok);
}
