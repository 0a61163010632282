//! The proxies ask about every request to every app, so at the default log level an allowed
//! check writes nothing and a refused one writes one line (issue 15, and the guide's "logs
//! stay readable at homelab scale").

mod proxy;

use std::process::{Command, Stdio};

use proxy::*;

#[test]
fn allowed_checks_are_quiet_and_a_refusal_is_one_info_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let log = dir.path().join("server.log");
    let rules = r#"[{hosts=["app.home.test"], paths=["/public/*"], policy="bypass"},
                    {hosts=["app.home.test"], policy="one_factor"}]"#;
    let mut env = Slugbase::env(port, rules);
    env.retain(|(k, _)| k != "SLUGBASE_LOG_FILTER");
    let child = Command::new(env!("CARGO_BIN_EXE_slugbase"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("RUST_LOG")
        .env("SLUGBASE_DATA_DIR", dir.path())
        .env("ROCKET_CONFIG", dir.path().join("none.toml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start slugbase");
    let _server = Proc(child);
    wait_port(port, "slugbase");
    let ask = |uri: &str, accept: &str| {
        http(
            port,
            "GET",
            &format!("127.0.0.1:{port}"),
            "/api/authz/forward-auth",
            &[
                ("X-Forwarded-Proto", "http"),
                ("X-Forwarded-Host", "app.home.test"),
                ("X-Forwarded-Uri", uri),
                ("X-Forwarded-Method", "GET"),
                ("Accept", accept),
            ],
            None,
        )
        .status
    };
    for _ in 0..20 {
        assert_eq!(ask("/public/logo.png", "image/png"), 200);
    }
    assert_eq!(ask("/private", "application/json"), 401);
    assert_eq!(ask("/private", "text/html"), 302);
    // A proxy that does not describe the request is the operator's to fix: logged.
    let bad = http(
        port,
        "GET",
        &format!("127.0.0.1:{port}"),
        "/api/authz/forward-auth",
        &[("X-Forwarded-Proto", "gopher")],
        None,
    );
    assert_eq!(bad.status, 400);

    let text = std::fs::read_to_string(&log).expect("read log");
    let authz: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("slugbase::request") && l.contains("/api/authz/"))
        .collect();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("forward-auth"))
        .collect();
    assert!(!text.contains("forward-auth allowed"), "{text}");
    assert!(
        !text.contains("/public/logo.png"),
        "an allowed check was logged:\n{text}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("sign-in required"))
            .count(),
        2,
        "one line per refusal:\n{text}"
    );
    assert_eq!(
        authz.len(),
        1,
        "only the malformed question reaches the request log:\n{text}"
    );
    assert!(authz[0].contains("status=400"), "{text}");
}
