//! Helpers shared by the operations tests (`tests/ops_*.rs`): the release binary, server
//! processes with their own data folders, a tiny blocking HTTP/1.1 client, TOTP codes and
//! the CLI.
//!
//! Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::Value;

/// The password of every test account.
pub const PASSWORD: &str = "correct horse battery staple";

/// Base64 of 32 bytes of `byte`: a fixed secret key.
pub fn key(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// The target folder: `CARGO_TARGET_DIR`, else the one this test binary was built in.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
        };
    }
    // <target>/<profile>/deps/ops_xxx-hash
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent()?.parent().map(Path::to_path_buf))
        .filter(|t| t.join("CACHEDIR.TAG").exists())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The release binary, built once per test process with `cargo build --release`.
/// `SLUGBASE_OPS_BIN` names a prebuilt binary instead (e.g. one CI built in an earlier step).
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SLUGBASE_OPS_BIN") {
            return PathBuf::from(bin);
        }
        let target = target_dir();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let started = Instant::now();
        let status = Command::new(cargo)
            .args(["build", "--release", "--bin", "slugbase", "--target-dir"])
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --release");
        assert!(
            status.success(),
            "cargo build --release --bin slugbase failed"
        );
        eprintln!("release binary ready in {:.1?}", started.elapsed());
        target.join("release").join("slugbase")
    })
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The current TOTP time step.
pub fn now_step() -> i64 {
    slugbase::mfa::totp::step_of(unix_now())
}

/// The 6-digit code for `step` from a Base32 secret as `enroll/begin` returns it.
pub fn totp(secret_b32: &str, step: i64) -> String {
    let secret = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, secret_b32)
        .expect("base32 secret");
    slugbase::mfa::totp::code_for_step(&secret, step, 6)
}

/// The next step a code may use when steps up to `last` are spent: the current one or the
/// next (the server accepts current ± 1). None: wait for the clock.
pub fn usable_step(last: Option<i64>) -> Option<i64> {
    let cur = now_step();
    let s = last.map_or(cur, |l| cur.max(l + 1));
    (s <= cur + 1).then_some(s)
}

/// One slugbase installation: a data folder, a key, a port and extra settings.
#[derive(Clone)]
pub struct Instance {
    /// Holds `data/` (the data folder) and `server-*.log`.
    pub root: PathBuf,
    /// The secret key, base64; empty: none set.
    pub key: String,
    /// The listening port.
    pub port: u16,
    /// More environment variables.
    pub env: Vec<(String, String)>,
}

impl Instance {
    /// An installation in `root` (which must exist) with a fresh port and raised rate limits.
    pub fn new(root: &Path, key: String) -> Instance {
        let env = [
            ("SLUGBASE_BEGIN_LIMIT_PER_USER", "1000000"),
            ("SLUGBASE_BEGIN_LIMIT_PER_IP", "1000000"),
            ("SLUGBASE_LOGIN_FAILURES_PER_IP", "1000000"),
            ("SLUGBASE_LOGIN_FAILURES_PER_ACCOUNT", "1000000"),
            ("SLUGBASE_POOL_SIZE", "8"),
            // Load runs create API tokens from sessions older than the default 10 minutes.
            ("SLUGBASE_RECENT_AUTH_SECS", "86400"),
        ];
        Instance {
            root: root.to_path_buf(),
            key,
            port: free_port(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The database file.
    pub fn db(&self) -> PathBuf {
        self.data_dir().join("slugbase.db")
    }

    /// `slugbase <args>` with this installation's configuration and nothing inherited.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(binary());
        for (k, _) in std::env::vars() {
            if k.starts_with("SLUGBASE_") || k.starts_with("ROCKET_") || k == "RUST_LOG" {
                c.env_remove(k);
            }
        }
        c.args(args)
            .current_dir(&self.root)
            .env("ROCKET_CONFIG", self.root.join("no-such-Rocket.toml"))
            .env("SLUGBASE_ADDRESS", "127.0.0.1")
            .env("SLUGBASE_PORT", self.port.to_string())
            .env("SLUGBASE_DATA_DIR", self.data_dir())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // An empty key means: none configured (the server uses <data_dir>/secret.key).
        if !self.key.is_empty() {
            c.env("SLUGBASE_SECRET_KEY", &self.key);
        }
        c
    }

    /// Runs the CLI to completion, feeding `stdin`.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn slugbase");
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.unwrap_or("").as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("wait for slugbase")
    }

    /// Creates an account with [`PASSWORD`] through `slugbase user create`; returns its id.
    pub fn create_user(&self, email: &str) -> i64 {
        let name = email.split('@').next().unwrap_or("user");
        let out = self.cli(
            &["user", "create", "--email", email, "--name", name],
            Some(&format!("{PASSWORD}\n")),
        );
        assert!(
            out.status.success(),
            "user create {email}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("user id")
    }

    /// `slugbase check`: (success, stdout + stderr).
    pub fn check(&self) -> (bool, String) {
        let out = self.cli(&["check"], None);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Starts `slugbase serve` and waits until `/api/health` answers 200. A port taken in the
    /// meantime by someone else is replaced by a fresh one.
    pub fn start(&mut self) -> Server {
        let mut last = String::new();
        for _ in 0..3 {
            let mut s = self.spawn();
            match s.wait_healthy(Duration::from_secs(30)) {
                Ok(()) => return s,
                Err(e) => {
                    last = format!("{e}\n{}", s.log_text());
                    s.sigkill();
                    if last.contains("in use") {
                        self.port = free_port();
                        continue;
                    }
                    break;
                }
            }
        }
        panic!("server did not start: {last}");
    }

    /// Starts `slugbase serve` without waiting.
    pub fn spawn(&self) -> Server {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = self.root.join(format!("server-{n}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = self
            .command(&["serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn slugbase serve");
        Server {
            child: Some(child),
            port: self.port,
            log,
        }
    }

    /// A client for this installation's port.
    pub fn api(&self) -> Api {
        Api { port: self.port }
    }
}

/// A running `slugbase serve`. Killed when dropped.
pub struct Server {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    /// Its standard error.
    pub log: PathBuf,
}

impl Server {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Polls `/api/health` until it answers 200, the process exits or time runs out.
    pub fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let api = Api { port: self.port };
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("server exited with {status}"));
                }
            }
            if let Ok(r) = api.get("/api/health", &Auth::None) {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err("server not healthy in time".into());
            }
            std::thread::sleep(Duration::from_millis(15));
        }
    }

    /// SIGKILL, and reap.
    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) without waiting.
    pub fn signal(&self, sig: i32) {
        let pid = self.pid() as i32;
        assert!(pid > 0, "no process");
        // SAFETY: kill(2) on our own child's pid; it has not been reaped, so the pid is ours.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// Waits for the process to exit, at most `timeout`; None if it did not.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The server's standard error so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// A response, read completely.
#[derive(Debug, Clone)]
pub struct Resp {
    /// The status code.
    pub status: u16,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The value a `Set-Cookie` header gives the cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .filter_map(|(_, v)| v.split(';').next()?.trim().split_once('='))
            .find(|(k, v)| *k == name && !v.is_empty())
            .map(|(_, v)| v.to_string())
    }

    /// A short description for assertion messages.
    pub fn describe(&self) -> String {
        format!("{} {}", self.status, String::from_utf8_lossy(&self.body))
    }
}

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Nothing.
    None,
    /// `Authorization: Bearer <sb_ token or access JWT>`.
    Bearer(String),
    /// `Cookie: <name>=<value>`.
    Cookie(&'static str, String),
}

/// A blocking HTTP/1.1 client for one server: one connection per request.
#[derive(Debug, Clone, Copy)]
pub struct Api {
    /// The server's port.
    pub port: u16,
}

impl Api {
    /// GET `path`.
    pub fn get(&self, path: &str, auth: &Auth) -> Result<Resp, String> {
        self.send("GET", path, auth, None)
    }

    /// POST `body` as JSON to `path`.
    pub fn post(&self, path: &str, auth: &Auth, body: &Value) -> Result<Resp, String> {
        self.send("POST", path, auth, Some(body))
    }

    /// Sends one request and reads the whole response. Err: no complete response (refused,
    /// reset, closed early or timed out), which is what a killed server looks like.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        auth: &Auth,
        body: Option<&Value>,
    ) -> Result<Resp, String> {
        let mut s =
            TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        );
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => head.push_str(&format!("Authorization: Bearer {t}\r\n")),
            Auth::Cookie(n, v) => head.push_str(&format!("Cookie: {n}={v}\r\n")),
        }
        if body.is_some() {
            head.push_str("Content-Type: application/json\r\n");
        }
        if body.is_some() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", payload.len()));
        }
        head.push_str("\r\n");
        head.push_str(&payload);
        s.write_all(head.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        read_response(&mut s)
    }
}

/// Reads one response until the server closes the connection, and checks it is complete.
pub fn read_response(s: &mut TcpStream) -> Result<Resp, String> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    parse_response(&raw)
}

/// Parses a complete HTTP/1.1 response (Content-Length, chunked or close-delimited body).
pub fn parse_response(raw: &[u8]) -> Result<Resp, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("incomplete response head")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("bad status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().map_err(|_| "bad content-length")?;
        if rest.len() < len {
            return Err(format!("truncated body: {} of {len} bytes", rest.len()));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&rest[..eol]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// A signed-in browser session as `POST /api/auth/login` (or `mfa/verify`) hands it out.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account id.
    pub user_id: i64,
    /// The `slugbase.sid` cookie.
    pub sid: String,
    /// The `token` cookie: an access JWT.
    pub jwt: String,
}

impl Session {
    /// From a 200 sign-in response.
    pub fn from_resp(r: &Resp) -> Option<Session> {
        Some(Session {
            user_id: r.json()["id"].as_i64()?,
            sid: r.cookie("slugbase.sid")?,
            jwt: r.cookie("token")?,
        })
    }

    /// Bearer auth with the access JWT.
    pub fn bearer(&self) -> Auth {
        Auth::Bearer(self.jwt.clone())
    }

    /// Cookie auth with the session id.
    pub fn cookie(&self) -> Auth {
        Auth::Cookie("slugbase.sid", self.sid.clone())
    }
}

/// `GET /api/auth/me` with `auth` answers 200 for `user_id`: Ok, else what it answered.
pub fn authenticates_as(api: &Api, auth: &Auth, user_id: i64) -> Result<(), String> {
    let r = api.get("/api/auth/me", auth)?;
    if r.status == 200 && r.json()["id"].as_i64() == Some(user_id) {
        Ok(())
    } else {
        Err(r.describe())
    }
}

/// Signs in without MFA; panics on anything but a session.
pub fn login(api: &Api, email: &str) -> Session {
    let r = api
        .post(
            "/api/auth/login",
            &Auth::None,
            &serde_json::json!({ "email": email, "password": PASSWORD }),
        )
        .expect("login request");
    Session::from_resp(&r).unwrap_or_else(|| panic!("login {email}: {}", r.describe()))
}
