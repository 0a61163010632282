//! Starting and stopping the release server, and reading its figures from /proc.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access rule the forward-auth rows ask about: any signed-in account.
pub const FORWARD_AUTH_RULES: &str = r#"[{hosts=["app.bench.test"], policy="one_factor"}]"#;

/// A running slugbase process.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    /// From `spawn` to the first 200 of `GET /api/health`.
    pub start_to_healthy: Duration,
}

/// Clock ticks per second of /proc/<pid>/stat (USER_HZ).
fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU seconds consumed so far by a process (all its threads).
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / clk_tck()
}

/// This process's user + system CPU seconds (getrusage, microsecond resolution).
pub fn self_cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF covers every thread.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Busy CPU seconds of the whole machine so far (all cores, from /proc/stat; steal included).
pub fn system_busy_secs() -> f64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum();
    busy / clk_tck()
}

/// Threads of a process.
pub fn threads(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// (VmRSS, VmHWM) of a process in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// RssAnon of a process in KiB: its private memory, without the file pages it maps.
pub fn rss_anon_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let l =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// One blocking `GET /api/health`; true on 200.
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /api/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head[..] == b"HTTP/1.1 200"
}

impl Server {
    /// Starts `bin` on `data_dir`, and waits until it answers health checks.
    pub fn start(bin: &Path, data_dir: &Path, key_b64: &str, log: &Path) -> Result<Server, String> {
        let port = free_port()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let mut cmd = Command::new(bin);
        // Nothing from the caller's environment may change the server's settings.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("SLUGBASE_") || k.starts_with("ROCKET_") || k == "RUST_LOG" {
                cmd.env_remove(&k);
            }
        }
        let big = "1000000";
        cmd.current_dir(data_dir)
            .env("SLUGBASE_DATA_DIR", data_dir)
            .env("SLUGBASE_PORT", port.to_string())
            .env("SLUGBASE_ADDRESS", "127.0.0.1")
            .env("SLUGBASE_SECRET_KEY", key_b64)
            .env("SLUGBASE_ACCESS_RULES", FORWARD_AUTH_RULES)
            .env("SLUGBASE_BEGIN_LIMIT_PER_USER", big)
            .env("SLUGBASE_BEGIN_LIMIT_PER_IP", big)
            .env("SLUGBASE_LOGIN_FAILURES_PER_IP", big)
            .env("SLUGBASE_LOGIN_FAILURES_PER_ACCOUNT", big)
            .env("SLUGBASE_MFA_FAILURES_PER_ACCOUNT", big)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file));
        let t0 = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        loop {
            if healthy(addr) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let tail = fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                return Err(format!(
                    "the server exited ({status}) before it was healthy: {}",
                    tail.join(" | ")
                ));
            }
            if t0.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                return Err("the server did not become healthy within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let start_to_healthy = t0.elapsed();
        Ok(Server {
            child,
            pid,
            addr,
            start_to_healthy,
        })
    }

    /// (VmRSS, VmHWM) in KiB.
    pub fn rss_kib(&self) -> (u64, u64) {
        rss_kib(self.pid)
    }

    /// Freezes the process (SIGSTOP) while another server is measured.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a paused process run again (SIGCONT; harmless when it runs).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain kill(2) on the child we started (not yet reaped: we hold `child`).
        unsafe {
            libc::kill(self.pid as libc::pid_t, sig);
        }
    }

    /// Graceful stop (SIGTERM), then SIGKILL if it lingers.
    pub fn stop(mut self) {
        self.resume();
        self.signal(libc::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Finds (building it first when asked) the server binary next to this example.
pub fn server_binary(
    explicit: Option<PathBuf>,
    build: bool,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/examples/bench -> target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("cannot locate the target directory")?
        .to_path_buf();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    if build {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(&cargo);
        cmd.args(["build", "--bin", "slugbase"]);
        if release {
            cmd.arg("--release");
        }
        if let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") {
            cmd.current_dir(dir);
        }
        log(&format!(
            "building the server: {cargo} build --bin slugbase{}",
            if release { " --release" } else { "" }
        ));
        let st = cmd
            .status()
            .map_err(|e| format!("cannot run {cargo}: {e}"))?;
        if !st.success() {
            return Err(format!("building the server failed ({st})"));
        }
    }
    let bin = profile_dir.join("slugbase");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "no server binary at {}; build it with `cargo build --release --bin slugbase`",
            bin.display()
        ))
    }
}
