//! Forward-auth settings and the sign-in around it: start-up checks (one line, exit 1),
//! groups on the command line, cookies on the cookie domain, and where sign-in returns to.

mod common;

use std::process::{Command, Output};

use common::*;
use rocket::http::Status;
use serde_json::json;

fn slugbase(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slugbase"));
    cmd.args(args)
        .env("SLUGBASE_DATA_DIR", dir)
        .env("ROCKET_CONFIG", dir.join("none.toml"))
        .env("SLUGBASE_PORT", "0")
        .env_remove("SLUGBASE_PUBLIC_URL")
        .env_remove("SLUGBASE_COOKIE_DOMAIN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(std::process::Stdio::null());
    cmd.output().expect("run slugbase")
}

#[test]
fn bad_forward_auth_settings_stop_startup_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let auth = ("SLUGBASE_PUBLIC_URL", "https://auth.home.example");
    for (env, needle) in [
        (vec![auth, ("SLUGBASE_COOKIE_DOMAIN", "other.example")], "cookie_domain: public_url's host \"auth.home.example\" is not inside \"other.example\""),
        (vec![("SLUGBASE_PUBLIC_URL", "https://auth.example.co.uk"), ("SLUGBASE_COOKIE_DOMAIN", "co.uk")], "cookie_domain: \"co.uk\" is a public suffix"),
        (vec![auth, ("SLUGBASE_ACCESS_RULES", r#"[{hosts=["a.home.example"],policy="maybe"}]"#)], "access_rules[0]: unknown policy \"maybe\""),
        (vec![auth, ("SLUGBASE_DEFAULT_POLICY", "allow")], "default_policy: unknown policy \"allow\""),
        (vec![auth, ("SLUGBASE_ACCESS_RULES", r#"[{hosts=["*.ok.example"],policy="bypass"},{hosts=["a.*.example"],policy="deny"}]"#)], "access_rules[1]: malformed host pattern \"a.*.example\""),
    ] {
        let o = slugbase(dir.path(), &["check"], &env);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(1), "{env:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.starts_with("slugbase: error: invalid configuration: "), "{err}");
        assert!(err.contains(needle), "{needle} in {err}");
    }
    let ok = slugbase(
        dir.path(),
        &["check"],
        &[auth, ("SLUGBASE_COOKIE_DOMAIN", "home.example")],
    );
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn groups_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = slugbase(
        dir.path(),
        &[
            "user",
            "create",
            "--email",
            "ann@example.com",
            "--oidc-only",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let groups = |args: &[&str]| {
        let mut a = vec!["user", "groups", "--email", "ann@example.com"];
        a.extend_from_slice(args);
        slugbase(dir.path(), &a, &[])
    };
    let o = groups(&["--add", "Wiki", "--add", "staff"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "staff,wiki");
    let o = groups(&["--add", "admins", "--remove", "staff"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "admins,wiki");
    let list = slugbase(dir.path(), &["user", "list"], &[]);
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        list.contains("ann@example.com")
            && list.contains("admin,")
            && list.ends_with("groups=admins,wiki\n"),
        "{list}"
    );
    let o = groups(&["--remove", "admins"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "wiki");
    let o = groups(&["--add", "no spaces"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("malformed group name"));
}

fn domain_server() -> TestServer {
    server_with(&[
        ("public_url", json!("https://auth.home.test")),
        ("cookie_domain", json!(".home.test")),
    ])
}

#[test]
fn sign_in_cookies_carry_the_cookie_domain_and_logout_clears_them_there() {
    let s = domain_server();
    s.user("bob@example.com");
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": "bob@example.com", "password": PASSWORD}),
        &[],
    );
    assert_eq!(res.status(), Status::Ok);
    let set: Vec<String> = res
        .headers()
        .get("Set-Cookie")
        .map(str::to_string)
        .collect();
    for name in ["slugbase.sid=", "token=", "slugbase.device="] {
        let c = set
            .iter()
            .find(|c| c.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {set:?}"));
        assert!(c.contains("Domain=home.test"), "{c}");
        assert!(c.contains("Secure") && c.contains("HttpOnly"), "{c}");
    }
    let jwt = res.cookies().get("token").unwrap().value().to_string();
    let res = s.post_auth("/api/auth/logout", &jwt, None);
    assert_eq!(res.status(), Status::Ok);
    let set: Vec<String> = res
        .headers()
        .get("Set-Cookie")
        .map(str::to_string)
        .collect();
    for name in ["slugbase.sid=", "token=", "slugbase.mfa_pending="] {
        let c = set
            .iter()
            .find(|c| c.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {set:?}"));
        assert!(
            c.contains("Domain=home.test") && c.contains("Max-Age=0"),
            "{c}"
        );
    }
    // The second-step cookie too.
    let id = s.user("mfa@example.com");
    let (_, jwt) = s.login("mfa@example.com");
    s.enroll(&jwt);
    let _ = id;
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": "mfa@example.com", "password": PASSWORD}),
        &[],
    );
    let pending = res
        .headers()
        .get("Set-Cookie")
        .find(|c| c.starts_with("slugbase.mfa_pending="))
        .unwrap()
        .to_string();
    assert!(pending.contains("Domain=home.test"), "{pending}");
}

#[test]
fn sign_in_answers_redirect_to_only_for_a_safe_rd() {
    let s = domain_server();
    s.user("bob@example.com");
    let login = |rd: &str| {
        let body = json!({"email": "bob@example.com", "password": PASSWORD, "rd": rd});
        json_of(s.post_json("/api/auth/login", &body, &[]))
    };
    assert_eq!(
        login("https://app.home.test/x?y=1")["redirect_to"],
        "https://app.home.test/x?y=1"
    );
    for bad in [
        "//evil.example",
        "https://home.test.evil.example/",
        "https://evil.example\\@app.home.test/",
        "javascript:alert(1)",
        "http://app.home.test/",
    ] {
        let res = login(bad);
        assert_eq!(res["email"], "bob@example.com");
        assert!(res.get("redirect_to").is_none(), "{bad}: {res}");
        let q = s
            .client
            .get(format!(
                "/api/authz/return-to?rd={}",
                percent_encoding::utf8_percent_encode(bad, percent_encoding::NON_ALPHANUMERIC)
            ))
            .dispatch();
        assert_eq!(json_of(q)["redirect_to"], json!(null), "{bad}");
    }
    let q = s
        .client
        .get("/api/authz/return-to?rd=https%3A%2F%2Fwiki.home.test%2F")
        .dispatch();
    assert_eq!(json_of(q)["redirect_to"], "https://wiki.home.test/");
    // A different port on an IP is refused (public_url on an IP).
    let ip = server_with(&[("public_url", json!("http://127.0.0.1:8000"))]);
    let q = ip
        .client
        .get("/api/authz/return-to?rd=http%3A%2F%2F127.0.0.1%3A9000%2F")
        .dispatch();
    assert_eq!(json_of(q)["redirect_to"], json!(null));
    // The second step answers it as well.
    let id = s.user("mfa@example.com");
    let (_, jwt) = s.login("mfa@example.com");
    let (secret, _) = s.enroll(&jwt);
    let _ = id;
    let res = s.post_json(
        "/api/auth/login",
        &json!({"email": "mfa@example.com", "password": PASSWORD, "rd": "https://app.home.test/"}),
        &[],
    );
    let pending = res
        .cookies()
        .get("slugbase.mfa_pending")
        .unwrap()
        .value()
        .to_string();
    assert_eq!(json_of(res)["mfa_required"], true);
    s.next_step();
    let code = code_at(&secret, s.clock.now_());
    let res = s
        .client
        .post("/api/auth/mfa/verify")
        .header(rocket::http::ContentType::JSON)
        .cookie(cookie("slugbase.mfa_pending", &pending))
        .body(json!({"code": code, "rd": "https://app.home.test/"}).to_string())
        .dispatch();
    assert_eq!(res.status(), Status::Ok);
    assert_eq!(json_of(res)["redirect_to"], "https://app.home.test/");
}
