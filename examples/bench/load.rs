//! Closed-loop load: `conns` keep-alive connections, each sending its next operation as soon
//! as the last one answered, for a warm-up and then a measured window. Only operations that
//! complete inside the window count; their latencies are kept exactly (no histogram
//! buckets). The server's and this process's CPU time are read at the window's edges.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slugbase::mfa::totp;

use super::http::{Conn, Response};
use super::seed::{self, Pending, Pool, User};
use super::server;

/// What one operation came to.
pub enum Op {
    Ok,
    Fail(String),
    /// The pool of one-shot items is used up.
    Exhausted,
}

/// A kind of operation.
pub trait Workload: Send + Sync + 'static {
    fn op<'a>(
        &'a self,
        c: &'a mut Conn,
        worker: usize,
        iter: u64,
        rng: &'a mut u64,
    ) -> impl Future<Output = Op> + Send + 'a;
}

/// The figures of one measured window.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub ops: u64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub secs: f64,
    /// Sorted latencies, microseconds.
    pub lat_us: Vec<u32>,
    pub server_cpu_s: f64,
    pub bench_cpu_s: f64,
    pub rss_max_kib: u64,
    pub anon_max_kib: u64,
    /// Busy CPU of everything else on the machine (other processes), seconds.
    pub other_cpu_s: f64,
    pub threads_max: u64,
    pub exhausted: bool,
}

impl Outcome {
    /// Adds another window of the same workload to this one.
    pub fn merge(&mut self, o: Outcome) {
        self.ops += o.ops;
        self.errors += o.errors;
        self.error_samples.extend(o.error_samples);
        self.secs += o.secs;
        self.lat_us.extend(o.lat_us);
        self.lat_us.sort_unstable();
        self.server_cpu_s += o.server_cpu_s;
        self.bench_cpu_s += o.bench_cpu_s;
        self.other_cpu_s += o.other_cpu_s;
        self.rss_max_kib = self.rss_max_kib.max(o.rss_max_kib);
        self.anon_max_kib = self.anon_max_kib.max(o.anon_max_kib);
        self.threads_max = self.threads_max.max(o.threads_max);
        self.exhausted |= o.exhausted;
    }

    pub fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        }
    }
    /// Latency quantile in milliseconds.
    pub fn q_ms(&self, q: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        let n = self.lat_us.len();
        let idx = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        self.lat_us[idx] as f64 / 1000.0
    }
    pub fn server_cpu_pct(&self) -> f64 {
        100.0 * self.server_cpu_s / self.secs.max(1e-9)
    }
    pub fn bench_cpu_pct(&self) -> f64 {
        100.0 * self.bench_cpu_s / self.secs.max(1e-9)
    }
    pub fn other_cpu_pct(&self) -> f64 {
        100.0 * self.other_cpu_s / self.secs.max(1e-9)
    }
}

pub(super) fn xorshift(s: &mut u64) -> u64 {
    let mut x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    x
}

struct Worker {
    ops: u64,
    errors: u64,
    samples: Vec<String>,
    lat: Vec<u32>,
    exhausted_at: Option<Instant>,
    last_done: Option<Instant>,
}

/// Runs `w` on `conns` connections: `warmup`, then the measured `measure` window.
pub async fn run<W: Workload>(
    w: Arc<W>,
    addr: SocketAddr,
    conns: usize,
    warmup: Duration,
    measure: Duration,
    server_pid: u32,
) -> Outcome {
    let start = Instant::now();
    let m0 = start + warmup;
    let m1 = m0 + measure;
    let mut tasks = Vec::with_capacity(conns);
    for worker in 0..conns {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(addr);
            let mut rng =
                0x9E37_79B9_7F4A_7C15u64 ^ (worker as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
            let mut st = Worker {
                ops: 0,
                errors: 0,
                samples: Vec::new(),
                lat: Vec::with_capacity(1 << 14),
                exhausted_at: None,
                last_done: None,
            };
            let mut iter = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= m1 {
                    break;
                }
                let r = w.op(&mut conn, worker, iter, &mut rng).await;
                iter += 1;
                let t1 = Instant::now();
                match r {
                    Op::Ok => {
                        if t1 >= m0 && t1 <= m1 {
                            st.ops += 1;
                            st.lat
                                .push((t1 - t0).as_micros().min(u32::MAX as u128) as u32);
                            st.last_done = Some(t1);
                        }
                    }
                    Op::Fail(e) => {
                        st.errors += 1;
                        if st.samples.len() < 3 {
                            st.samples.push(e);
                        }
                        // Do not spin on a dead server.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Op::Exhausted => {
                        st.exhausted_at = Some(t1);
                        break;
                    }
                }
            }
            st
        }));
    }
    // The monitor: CPU at the window's edges, RSS every 50 ms inside it.
    let monitor = tokio::spawn(async move {
        tokio::time::sleep_until(m0.into()).await;
        let (s0, b0, a0) = (
            server::cpu_secs(server_pid),
            server::self_cpu_secs(),
            server::system_busy_secs(),
        );
        let mut rss_max = 0;
        let mut anon_max = 0;
        let mut threads_max = 0;
        loop {
            rss_max = rss_max.max(server::rss_kib(server_pid).0);
            anon_max = anon_max.max(server::rss_anon_kib(server_pid));
            threads_max = threads_max.max(server::threads(server_pid));
            if Instant::now() >= m1 {
                break;
            }
            let next = (Instant::now() + Duration::from_millis(50)).min(m1);
            tokio::time::sleep_until(next.into()).await;
        }
        let (s1, b1, a1) = (
            server::cpu_secs(server_pid),
            server::self_cpu_secs(),
            server::system_busy_secs(),
        );
        let other = ((a1 - a0) - (s1 - s0) - (b1 - b0)).max(0.0);
        (
            s1 - s0,
            b1 - b0,
            other,
            rss_max,
            anon_max,
            threads_max,
            Instant::now(),
        )
    });
    let mut out = Outcome::default();
    let mut exhausted: Option<Instant> = None;
    let mut last_done: Option<Instant> = None;
    let mut lat = Vec::new();
    for t in tasks {
        let st = t.await.expect("load task panicked");
        out.ops += st.ops;
        out.errors += st.errors;
        for s in st.samples {
            if out.error_samples.len() < 5 {
                out.error_samples.push(s);
            }
        }
        lat.extend(st.lat);
        if let Some(e) = st.exhausted_at {
            exhausted = Some(exhausted.map_or(e, |x: Instant| x.min(e)));
        }
        if let Some(d) = st.last_done {
            last_done = Some(last_done.map_or(d, |x: Instant| x.max(d)));
        }
    }
    let (scpu, bcpu, ocpu, rss, anon, threads, mon_end) = monitor.await.expect("monitor panicked");
    lat.sort_unstable();
    out.lat_us = lat;
    out.rss_max_kib = rss;
    out.anon_max_kib = anon;
    out.threads_max = threads;
    out.exhausted = exhausted.is_some_and(|e| e < m1);
    let end = if out.exhausted {
        last_done.unwrap_or(m1).max(m0 + Duration::from_millis(1))
    } else {
        m1
    };
    out.secs = (end - m0).as_secs_f64();
    // CPU was read over [m0, mon_end]; scale to the counted window when the pool ran out.
    let mon_secs = (mon_end - m0).as_secs_f64().max(1e-9);
    let k = (out.secs / mon_secs).min(1.0);
    out.server_cpu_s = scpu * k;
    out.bench_cpu_s = bcpu * k;
    out.other_cpu_s = ocpu * k;
    out
}

pub(super) fn expect(
    r: std::io::Result<Response>,
    what: &str,
    status: u16,
) -> Result<Response, String> {
    match r {
        Ok(r) if r.status == status => Ok(r),
        Ok(r) => Err(format!("{what}: HTTP {} {}", r.status, r.excerpt())),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

pub(super) fn done(r: Result<(), String>) -> Op {
    match r {
        Ok(()) => Op::Ok,
        Err(e) => Op::Fail(e),
    }
}

/// `GET /api/health`.
pub struct Health;

impl Workload for Health {
    async fn op(&self, c: &mut Conn, _: usize, _: u64, _: &mut u64) -> Op {
        done(
            expect(
                c.request("GET", "/api/health", &[], None).await,
                "health",
                200,
            )
            .map(|_| ()),
        )
    }
}

/// How a status request authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    BearerJwt,
    BearerToken,
    TokenCookie,
    SidCookie,
}

impl Auth {
    pub const ALL: [Auth; 4] = [
        Auth::BearerJwt,
        Auth::BearerToken,
        Auth::TokenCookie,
        Auth::SidCookie,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Auth::BearerJwt => "status, Bearer JWT",
            Auth::BearerToken => "status, Bearer sb_ token",
            Auth::TokenCookie => "status, token cookie",
            Auth::SidCookie => "status, slugbase.sid cookie",
        }
    }
    pub fn header(self, u: &User) -> (&'static str, String) {
        match self {
            Auth::BearerJwt => ("Authorization", format!("Bearer {}", u.jwt)),
            Auth::BearerToken => ("Authorization", format!("Bearer {}", u.token)),
            Auth::TokenCookie => ("Cookie", format!("token={}", u.jwt)),
            Auth::SidCookie => ("Cookie", format!("slugbase.sid={}", u.sid)),
        }
    }
}

/// `GET /api/auth/mfa/status` for a random seeded user.
pub struct Status {
    pub users: Arc<Vec<User>>,
    pub auth: Auth,
}

impl Workload for Status {
    async fn op(&self, c: &mut Conn, _: usize, _: u64, rng: &mut u64) -> Op {
        let u = &self.users[(xorshift(rng) % self.users.len() as u64) as usize];
        let (k, v) = self.auth.header(u);
        done(
            expect(
                c.request("GET", "/api/auth/mfa/status", &[(k, &v)], None)
                    .await,
                "status",
                200,
            )
            .map(|_| ()),
        )
    }
}

/// `GET /api/authz/forward-auth` as Traefik or Caddy ask it, with a random seeded user's
/// `slugbase.sid` cookie, for a one_factor rule (see `server::FORWARD_AUTH_RULES`).
pub struct ForwardAuth {
    pub users: Arc<Vec<User>>,
}

/// The row name of [`ForwardAuth`].
pub const FORWARD_AUTH: &str = "forward-auth, slugbase.sid cookie";

impl Workload for ForwardAuth {
    async fn op(&self, c: &mut Conn, _: usize, _: u64, rng: &mut u64) -> Op {
        let u = &self.users[(xorshift(rng) % self.users.len() as u64) as usize];
        let cookie = format!("slugbase.sid={}", u.sid);
        let headers = [
            ("Cookie", cookie.as_str()),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.bench.test"),
            ("X-Forwarded-Uri", "/dashboard?x=1"),
            ("X-Forwarded-Method", "GET"),
            ("Accept", "text/html"),
        ];
        done(
            expect(
                c.request("GET", "/api/authz/forward-auth", &headers, None)
                    .await,
                "forward-auth",
                200,
            )
            .map(|_| ()),
        )
    }
}

/// `POST …/enroll/begin` then `POST …/enroll/cancel`, on users without MFA; each
/// connection walks its own slice of them.
pub struct BeginCancel {
    pub users: Arc<Vec<User>>,
    /// Indexes of users without MFA.
    pub plain: Arc<Vec<usize>>,
    pub conns: usize,
}

impl Workload for BeginCancel {
    async fn op(&self, c: &mut Conn, worker: usize, iter: u64, _: &mut u64) -> Op {
        let i = (worker as u64 + iter * self.conns as u64) % self.plain.len() as u64;
        let u = &self.users[self.plain[i as usize]];
        let auth = format!("Bearer {}", u.jwt);
        let h = [("Authorization", auth.as_str())];
        let r = async {
            let b = expect(
                c.request("POST", "/api/auth/mfa/enroll/begin", &h, None)
                    .await,
                "begin",
                200,
            )?;
            if !b.body.windows(9).any(|w| w == b"\"secret\":") {
                return Err(format!("begin: no secret in {}", b.excerpt()));
            }
            expect(
                c.request("POST", "/api/auth/mfa/enroll/cancel", &h, None)
                    .await,
                "cancel",
                200,
            )
            .map(|_| ())
        };
        done(r.await)
    }
}

/// begin → confirm (TOTP of the current step) → disable (one backup code), each cycle on a
/// fresh password-less user.
pub struct Cycle {
    pub pool: Pool<User>,
}

async fn cycle(c: &mut Conn, u: &User) -> Result<(), String> {
    let auth = format!("Bearer {}", u.jwt);
    let h = [("Authorization", auth.as_str())];
    let b = expect(
        c.request("POST", "/api/auth/mfa/enroll/begin", &h, None)
            .await,
        "begin",
        200,
    )?;
    let v: Value = serde_json::from_slice(&b.body).map_err(|e| format!("begin: {e}"))?;
    let secret = v["secret"].as_str().ok_or("begin: no secret")?;
    let secret = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, secret)
        .ok_or("begin: bad Base32")?;
    let code = totp::code_for_step(&secret, totp::step_of(seed::now()), totp::DIGITS);
    let body = json!({ "code": code }).to_string();
    let r = expect(
        c.request(
            "POST",
            "/api/auth/mfa/enroll/confirm",
            &h,
            Some(body.as_bytes()),
        )
        .await,
        "confirm",
        200,
    )?;
    let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("confirm: {e}"))?;
    let backup = v["backup_codes"][0]
        .as_str()
        .ok_or("confirm: no backup codes")?;
    let body = json!({ "code": backup }).to_string();
    expect(
        c.request("POST", "/api/auth/mfa/disable", &h, Some(body.as_bytes()))
            .await,
        "disable",
        200,
    )
    .map(|_| ())
}

impl Workload for Cycle {
    async fn op(&self, c: &mut Conn, _: usize, _: u64, _: &mut u64) -> Op {
        match self.pool.take() {
            Some(u) => done(cycle(c, u).await),
            None => Op::Exhausted,
        }
    }
}

/// `POST /api/auth/mfa/verify` with a pending cookie and a backup code.
pub struct Verify {
    pub pool: Pool<Pending>,
}

impl Workload for Verify {
    async fn op(&self, c: &mut Conn, _: usize, _: u64, _: &mut u64) -> Op {
        let Some(p) = self.pool.take() else {
            return Op::Exhausted;
        };
        let cookie = format!("slugbase.mfa_pending={}", p.jwt);
        let body = json!({ "code": p.code }).to_string();
        let r = expect(
            c.request(
                "POST",
                "/api/auth/mfa/verify",
                &[("Cookie", &cookie)],
                Some(body.as_bytes()),
            )
            .await,
            "verify",
            200,
        );
        done(r.and_then(|r| match r.cookie("slugbase.sid") {
            Some(_) => Ok(()),
            None => Err("verify: no session cookie".into()),
        }))
    }
}

/// `POST /api/auth/login` with the right password, on users without MFA.
pub struct Login {
    pub users: Arc<Vec<User>>,
    pub plain: Arc<Vec<usize>>,
    pub conns: usize,
}

impl Workload for Login {
    async fn op(&self, c: &mut Conn, worker: usize, iter: u64, _: &mut u64) -> Op {
        let i = (worker as u64 + iter * self.conns as u64) % self.plain.len() as u64;
        let u = &self.users[self.plain[i as usize]];
        let body = json!({ "email": u.email, "password": seed::PASSWORD }).to_string();
        let r = expect(
            c.request("POST", "/api/auth/login", &[], Some(body.as_bytes()))
                .await,
            "login",
            200,
        );
        done(r.and_then(|r| match r.cookie("slugbase.sid") {
            Some(_) => Ok(()),
            None => Err("login: no session cookie".into()),
        }))
    }
}
