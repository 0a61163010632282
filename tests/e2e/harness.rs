//! Processes and tools around the browser test: the release binary of the
//! server, chromedriver, oathtool (an independent TOTP implementation) and the
//! screenshot folder. Every child process is killed when its guard drops,
//! also when the test panics.

use std::env;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, sleep};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::webdriver::{self, Session};

/// The repository root.
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Finds an executable by name on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The external programs the test needs.
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

/// Looks for Chromium, chromedriver and oathtool. Returns `None` (after a loud
/// message) when one is missing outside CI; panics when one is missing in CI.
pub fn find_tools() -> Option<Tools> {
    let chromium = env::var_os("SLUGBASE_E2E_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            ["chromium", "chromium-browser", "google-chrome"]
                .iter()
                .find_map(|n| which(n))
        });
    let chromedriver = which("chromedriver");
    let oathtool = which("oathtool");
    let missing: Vec<&str> = [
        ("chromium", chromium.is_none()),
        ("chromedriver", chromedriver.is_none()),
        ("oathtool", oathtool.is_none()),
    ]
    .iter()
    .filter(|(_, gone)| *gone)
    .map(|(n, _)| *n)
    .collect();
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) if missing.is_empty() => Some(Tools {
            chromium,
            chromedriver,
        }),
        _ => {
            let msg = format!(
                "{} not found; install the Debian packages `chromium chromium-driver oathtool`",
                missing.join(", ")
            );
            if env::var_os("CI").is_some() {
                panic!("e2e browser test: {msg}");
            }
            eprintln!("\n************************************************************");
            eprintln!("SKIPPED: chromium not found or incomplete: {msg}.");
            eprintln!("The end-to-end browser test did NOT run.");
            eprintln!("************************************************************\n");
            None
        }
    }
}

/// Builds the release binary once (`cargo build --release --bin slugbase`) and
/// returns its path. `SLUGBASE_E2E_BIN` names a prebuilt binary instead.
pub fn release_binary() -> PathBuf {
    if let Some(bin) = env::var_os("SLUGBASE_E2E_BIN") {
        return PathBuf::from(bin);
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("e2e: building the release binary (cargo build --release --bin slugbase)…");
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "slugbase"])
        .current_dir(repo_dir())
        .status()
        .unwrap_or_else(|e| panic!("running cargo build: {e}"));
    assert!(
        status.success(),
        "cargo build --release --bin slugbase failed: {status}"
    );
    let target = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => repo_dir().join(dir), // join keeps an absolute dir as it is
        None => repo_dir().join("target"),
    };
    let bin = target
        .join("release")
        .join(format!("slugbase{}", env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "no binary at {}", bin.display());
    bin
}

/// A free TCP port on loopback (free a moment ago, at least).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("finding a free port: {e}"))
}

/// Kills and reaps a child process when dropped.
pub struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Copies every line of `stream` into `log` (and to stderr when `SLUGBASE_E2E_VERBOSE` is set).
fn collect_lines(stream: impl Read + Send + 'static, log: Arc<Mutex<Vec<String>>>) {
    let verbose = env::var_os("SLUGBASE_E2E_VERBOSE").is_some();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if verbose {
                eprintln!("server| {line}");
            }
            if let Ok(mut log) = log.lock() {
                log.push(line);
            }
        }
    });
}

/// The slugbase server under test, with its captured log lines.
pub struct Server {
    pub base: String,
    pub log: Arc<Mutex<Vec<String>>>,
    _guard: ChildGuard,
}

impl Server {
    /// Starts `bin` on `127.0.0.1:port` with a fresh data directory.
    pub fn start(bin: &Path, data_dir: &Path, port: u16) -> Server {
        let mut child = Command::new(bin)
            .env("SLUGBASE_DATA_DIR", data_dir)
            .env("SLUGBASE_PORT", port.to_string())
            .env("SLUGBASE_ADDRESS", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            collect_lines(out, log.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect_lines(err, log.clone());
        }
        Server {
            base: format!("http://127.0.0.1:{port}"),
            log,
            _guard: ChildGuard(child),
        }
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Waits for the one-time setup link in the log and returns it.
    pub fn setup_link(&self) -> String {
        let start = Instant::now();
        loop {
            let found = self
                .log
                .lock()
                .ok()
                .and_then(|l| l.iter().find_map(|line| extract_setup_link(line)));
            if let Some(link) = found {
                return link;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no setup link (\"/setup?token=\") in the server log within 30 s; log:\n{}",
                self.log_text()
            );
            sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `GET /api/health` answers 200.
    pub fn wait_healthy(&self) {
        let agent = webdriver::agent();
        let url = format!("{}/api/health", self.base);
        let start = Instant::now();
        while !matches!(webdriver::http(&agent, "GET", &url, None), Ok((200, _))) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "GET /api/health did not answer 200 within 30 s; log:\n{}",
                self.log_text()
            );
            sleep(Duration::from_millis(100));
        }
    }
}

/// The `http://…/setup?token=…` link in one log line, if there is one.
pub fn extract_setup_link(line: &str) -> Option<String> {
    let marker = line.find("/setup?token=")?;
    let start = line[..marker].rfind("http")?;
    let tail = &line[marker + "/setup?token=".len()..];
    let token_len = tail
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.~%".contains(c)))
        .unwrap_or(tail.len());
    (token_len > 0).then(|| line[start..marker + "/setup?token=".len() + token_len].to_string())
}

/// A running chromedriver.
pub struct Driver {
    pub url: String,
    _guard: ChildGuard,
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it is ready.
    pub fn start(chromedriver: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .env("LANG", "en_US.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        let driver = Driver {
            url: format!("http://127.0.0.1:{port}"),
            _guard: ChildGuard(child),
        };
        let agent = webdriver::agent();
        let start = Instant::now();
        loop {
            if let Ok((200, body)) =
                webdriver::http(&agent, "GET", &format!("{}/status", driver.url), None)
            {
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                if v["value"]["ready"].as_bool() == Some(true) {
                    return driver;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not become ready"
            );
            sleep(Duration::from_millis(100));
        }
    }

    /// Opens headless Chromium; downloads go to `downloads`.
    pub fn browser(&self, chromium: &Path, profile: &Path, downloads: &Path) -> Session {
        self.browser_with(chromium, profile, downloads, &[])
    }

    /// Like `browser`, with more command-line switches (e.g. `--host-resolver-rules`).
    pub fn browser_with(
        &self,
        chromium: &Path,
        profile: &Path,
        downloads: &Path,
        extra: &[String],
    ) -> Session {
        let mut caps = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": { "implicit": 0, "pageLoad": 30000, "script": 30000 },
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--disable-features=Translate,MediaRouter,OptimizationHints",
                    "--lang=en-US",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                    "download.directory_upgrade": true,
                    "safebrowsing.enabled": false,
                },
            },
        });
        if let Some(args) = caps["goog:chromeOptions"]["args"].as_array_mut() {
            args.extend(extra.iter().map(|a| json!(a)));
        }
        let session = Session::new(&self.url, caps);
        session.cdp(
            "Browser.setDownloadBehavior",
            json!({ "behavior": "allow", "downloadPath": downloads, "eventsEnabled": false }),
        );
        session
    }
}

/// Computes TOTP codes with oathtool and keeps them strictly increasing in
/// time step, because the server never accepts a step twice (nor an older one).
pub struct Totp {
    secret: String,
    last_step: Option<u64>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Totp {
    /// The base32 key.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn new(secret: &str) -> Totp {
        Totp {
            secret: secret.to_string(),
            last_step: None,
        }
    }

    /// The code of one 30-second step, from oathtool.
    pub fn code_at_step(&self, step: u64) -> String {
        let out = Command::new("oathtool")
            .args([
                "--totp",
                "-b",
                &self.secret,
                "--now",
                &format!("@{}", step * 30 + 15),
            ])
            .output()
            .unwrap_or_else(|e| panic!("running oathtool: {e}"));
        let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
            "oathtool failed: {} {}",
            code,
            String::from_utf8_lossy(&out.stderr)
        );
        code
    }

    /// A code the server accepts now: for the current step, or the step after
    /// the last one used (waiting until that step is at most one ahead of now).
    pub fn next_code(&mut self) -> String {
        let mut now = unix_now() / 30;
        let step = match self.last_step {
            Some(last) if last >= now => last + 1,
            _ => now,
        };
        while step > now + 1 {
            eprintln!("e2e: waiting for the next TOTP time step…");
            sleep(Duration::from_millis(500));
            now = unix_now() / 30;
        }
        self.last_step = Some(step);
        self.code_at_step(step)
    }

    /// The code given out last (for replaying it).
    pub fn last_code(&self) -> String {
        self.code_at_step(self.last_step.expect("a code was given out"))
    }

    /// A 6-digit code that is wrong for every step the server might accept now.
    pub fn wrong_code(&self) -> String {
        let now = unix_now() / 30;
        let valid: Vec<String> = (now.saturating_sub(2)..=now + 2)
            .map(|s| self.code_at_step(s))
            .collect();
        ["000000", "123456", "999999", "246801"]
            .iter()
            .map(|c| c.to_string())
            .find(|c| !valid.contains(c))
            .unwrap_or_else(|| panic!("no wrong code found"))
    }
}

/// Writes screenshots of one screen in light and dark, desktop and phone width.
pub struct Shots {
    dir: PathBuf,
    count: u32,
}

/// Desktop and phone viewports: (label, width, height, mobile).
pub const VIEWPORTS: [(&str, u32, u32, bool); 2] =
    [("desktop", 1280, 800, false), ("phone", 360, 740, true)];

impl Shots {
    /// Uses `dir`, removing the PNGs an earlier run left there.
    pub fn new(dir: PathBuf) -> Shots {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|x| x == "png") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Shots { dir, count: 0 }
    }

    /// Emulates a viewport and a colour scheme.
    pub fn emulate(b: &Session, scheme: &str, width: u32, height: u32, mobile: bool) {
        b.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        );
        b.cdp(
            "Emulation.setTouchEmulationEnabled",
            json!({ "enabled": mobile, "maxTouchPoints": 5 }),
        );
        b.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [
                { "name": "prefers-color-scheme", "value": scheme },
                // No colour transitions half-way through a screenshot.
                { "name": "prefers-reduced-motion", "value": "reduce" },
            ] }),
        );
        b.cdp("Emulation.setScrollbarsHidden", json!({ "hidden": true }));
    }

    /// Back to the light desktop the flow runs in.
    pub fn reset(b: &Session) {
        Shots::emulate(b, "light", 1280, 800, false);
    }

    /// Takes the four screenshots of the current screen as `NN-name-scheme-size.png`.
    pub fn take(&mut self, b: &Session, name: &str) {
        self.count += 1;
        for scheme in ["light", "dark"] {
            for (size, width, height, mobile) in VIEWPORTS {
                Shots::emulate(b, scheme, width, height, mobile);
                // Let layout and paint settle after the emulation change.
                b.exec("return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));", json!([]));
                let png = b.screenshot_full(width, height);
                let path = self
                    .dir
                    .join(format!("{:02}-{name}-{scheme}-{size}.png", self.count));
                std::fs::write(&path, png)
                    .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            }
        }
        Shots::reset(b);
    }

    /// Writes a screenshot of whatever is on screen now (used when the test fails).
    pub fn failure(b: &Session, dir: &Path) -> Option<PathBuf> {
        let path = dir.join("FAILED.png");
        let png = b.try_cmd("GET", "/screenshot", None).ok()?;
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str()?)
            .ok()?;
        std::fs::write(&path, bytes).ok()?;
        Some(path)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Turns TOTP on from the account page: the key shown, a code from oathtool, the backup codes
/// marked saved. Returns the code source for the next steps.
pub fn enroll_on_page(b: &Session) -> Totp {
    b.click("#mfa-enable");
    b.wait_visible("#enroll-panel");
    let secret: String = b.text("#enroll-secret").split_whitespace().collect();
    let mut totp = Totp::new(&secret);
    b.fill("#enroll-code", &totp.next_code());
    b.click("#enroll-submit");
    b.wait_visible("#codes-panel");
    b.click("#codes-saved");
    b.click("#codes-continue");
    totp
}
