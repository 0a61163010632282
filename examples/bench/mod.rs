//! The benchmark suite: seeds databases of two sizes, starts the release server on each, runs
//! every workload at two connection counts, and prints one markdown table of figures and one
//! of targets (ratios from the same run).
//!
//! `cargo run --release --example bench` (full, about seven minutes) or `-- --smoke` (a
//! few seconds per figure, only checks that everything still works).

#![allow(dead_code)]

pub mod http;
pub mod load;
pub mod nginx;
pub mod report;
pub mod seed;
pub mod server;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use slugbase::keys::Keys;

use load::{Auth, Outcome};
use report::{Figure, Report};
use seed::{Pool, User};
use server::Server;

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct Options {
    pub smoke: bool,
    pub server_bin: Option<PathBuf>,
    /// Build the server binary with cargo first (when no --server-bin is given).
    pub build: bool,
    pub scales: Vec<usize>,
    pub conns: Vec<usize>,
    pub warmup: Duration,
    pub measure: Duration,
    pub argon2_secs: f64,
    /// Only benchmarks whose name contains one of these (empty: all).
    pub only: Vec<String>,
    /// Keep the temporary data folders (their path is printed).
    pub keep: bool,
}

impl Options {
    pub fn full() -> Options {
        Options {
            smoke: false,
            server_bin: None,
            build: true,
            scales: vec![1_000, 100_000],
            conns: vec![16, 64],
            warmup: Duration::from_secs(2),
            measure: Duration::from_secs(10),
            argon2_secs: 3.0,
            only: Vec::new(),
            keep: false,
        }
    }

    pub fn smoke() -> Options {
        Options {
            smoke: true,
            scales: vec![200, 2_000],
            // Light enough for any CI machine: 64 concurrent logins cost the server over 1 GiB.
            conns: vec![4, 16],
            warmup: Duration::from_millis(150),
            measure: Duration::from_millis(400),
            argon2_secs: 0.3,
            ..Options::full()
        }
    }

    /// Parses the command line (without the program name).
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = if args.iter().any(|a| a == "--smoke") {
            Options::smoke()
        } else {
            Options::full()
        };
        let mut it = args.iter();
        let secs = |v: Option<&String>, name: &str| -> Result<Duration, String> {
            v.and_then(|s| s.parse::<f64>().ok())
                .filter(|s| *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("{name} needs a number of seconds"))
        };
        let list = |v: Option<&String>, name: &str| -> Result<Vec<usize>, String> {
            v.ok_or_else(|| format!("{name} needs a comma-separated list"))?
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("{name}: not a number: {s}"))
                })
                .collect()
        };
        while let Some(a) = it.next() {
            match a.as_str() {
                "--smoke" => {}
                "--server-bin" => {
                    o.server_bin =
                        Some(PathBuf::from(it.next().ok_or("--server-bin needs a path")?))
                }
                "--no-build" => o.build = false,
                "--scales" => o.scales = list(it.next(), "--scales")?,
                "--conns" => o.conns = list(it.next(), "--conns")?,
                "--warmup" => o.warmup = secs(it.next(), "--warmup")?,
                "--duration" => o.measure = secs(it.next(), "--duration")?,
                "--only" => {
                    o.only = it
                        .next()
                        .ok_or("--only needs names")?
                        .split(',')
                        .map(str::to_string)
                        .collect()
                }
                "--keep" => o.keep = true,
                "-h" | "--help" => return Err(USAGE.into()),
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
        }
        if o.scales.is_empty() || o.conns.is_empty() || o.scales.iter().any(|&s| s < 20) {
            return Err(
                "--scales and --conns need at least one value; scales need 20 users or more".into(),
            );
        }
        Ok(o)
    }

    fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| name.contains(o.as_str()))
    }
}

pub const USAGE: &str = "usage: bench [--smoke] [--server-bin PATH] [--no-build] [--scales 1000,100000] \
[--conns 16,64] [--warmup SECS] [--duration SECS] [--only health,status,forward-auth,nginx,begin,cycle,verify,login] [--keep]";

fn log(msg: &str) {
    eprintln!("[bench] {msg}");
}

/// Runs the suite from command-line arguments; prints the report on stdout. Returns the exit
/// code: 0 when every request succeeded (missed targets are reported, not fatal), 1 otherwise.
pub fn main_with_args(args: &[String]) -> i32 {
    let opts = match Options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    match run(&opts) {
        Ok(rep) => {
            println!("{}", rep.markdown());
            exit_code(&rep)
        }
        Err(e) => {
            eprintln!("bench: error: {e}");
            1
        }
    }
}

/// 0 when every request of the run succeeded; missed targets are reported, not fatal.
pub fn exit_code(rep: &Report) -> i32 {
    if rep.errors() > 0 {
        eprintln!(
            "bench: {} requests failed (see the errors column)",
            rep.errors()
        );
        1
    } else {
        0
    }
}

/// One-core argon2id verifications per second, with the server's parameters.
fn argon2_rate(hash: &str, secs: f64) -> f64 {
    let t0 = Instant::now();
    let mut n = 0u64;
    while n < 2 || t0.elapsed().as_secs_f64() < secs {
        assert!(slugbase::auth::password::verify(seed::PASSWORD, hash));
        n += 1;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

struct Ctx<'a> {
    opts: &'a Options,
    rt: tokio::runtime::Runtime,
    keys: Keys,
    rep: &'a mut Report,
}

impl Ctx<'_> {
    fn measure<W: load::Workload>(
        &mut self,
        srv: &Server,
        scale: usize,
        name: &str,
        conns: usize,
        w: Arc<W>,
    ) -> Outcome {
        let o = self.window(srv, conns, w, self.opts.measure);
        self.record(scale, name, conns, o)
    }

    /// One warm-up and measured window of `measure`, not recorded.
    fn window<W: load::Workload>(
        &mut self,
        srv: &Server,
        conns: usize,
        w: Arc<W>,
        measure: Duration,
    ) -> Outcome {
        self.window_at(srv.addr, srv.pid, conns, w, measure)
    }

    /// [`Ctx::window`] against `addr` (a proxy in front of the server), with the CPU and
    /// memory figures of process `pid`.
    fn window_at<W: load::Workload>(
        &mut self,
        addr: std::net::SocketAddr,
        pid: u32,
        conns: usize,
        w: Arc<W>,
        measure: Duration,
    ) -> Outcome {
        self.rt
            .block_on(load::run(w, addr, conns, self.opts.warmup, measure, pid))
    }

    /// Measures one workload on every site in turns, forward then backward, [`TURNS`] times
    /// (A B B A A B B A), each window a 2 × TURNS-th of the row's duration, and records each
    /// site's windows as one figure: a drift of the machine that is linear over a round falls
    /// on every site alike, and slower swings are sampled by both sites more than once.
    fn in_turns<W: load::Workload>(
        &mut self,
        sites: &mut [Site],
        name: &str,
        conns: usize,
        ws: &[Arc<W>],
    ) -> Vec<Outcome> {
        let n = sites.len();
        let part = self.opts.measure / (2 * TURNS);
        let mut outs = vec![Outcome::default(); n];
        for _ in 0..TURNS {
            for i in (0..n).chain((0..n).rev()) {
                let s = focus(sites, i);
                let o = self.window(&s.srv, conns, ws[i].clone(), part);
                outs[i].merge(o);
            }
        }
        outs.into_iter()
            .zip(sites.iter())
            .map(|(o, s)| self.record(s.scale, name, conns, o))
            .collect()
    }

    /// Logs `o` and adds it to the report.
    fn record(&mut self, scale: usize, name: &str, conns: usize, o: Outcome) -> Outcome {
        log(&format!(
            "{scale:>7} users  {name:<32} {conns:>3} conns  {:>9.1}/s  p50 {:.2} ms  p99 {:.2} ms  errors {}{}",
            o.rate(),
            o.q_ms(0.5),
            o.q_ms(0.99),
            o.errors,
            o.error_samples.first().map(|e| format!(" ({e})")).unwrap_or_default()
        ));
        for e in &o.error_samples {
            self.rep.notes.push(format!(
                "error in {name} at {scale} users, {conns} conns: {e}"
            ));
        }
        self.rep.figures.push(Figure {
            scale,
            name: name.to_string(),
            conns,
            out: o.clone(),
        });
        o
    }
}

/// Runs everything and returns the report.
pub fn run(opts: &Options) -> Result<Report, String> {
    let t_all = Instant::now();
    let bin = server::server_binary(opts.server_bin.clone(), opts.build, &mut |m| log(m))?;
    let bin_size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut rep = Report::new(opts, cores, bin.display().to_string(), bin_size);

    let mut master = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut master);
    let key_b64 = STANDARD.encode(master);
    let keys = Keys::derive(&master);

    log("one shared argon2id hash for every seeded account");
    let pw_hash = slugbase::auth::password::hash(seed::PASSWORD)?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the load runtime: {e}"))?;
    let mut ctx = Ctx {
        opts,
        rt,
        keys,
        rep: &mut rep,
    };
    let mut sites = Vec::new();
    for &scale in &opts.scales {
        sites.push(Site::open(&mut ctx, &bin, &key_b64, &pw_hash, scale)?);
    }
    measure_all(&mut ctx, &mut sites, &pw_hash)?;
    for site in sites {
        site.close(&mut ctx, &bin, &key_b64)?;
    }
    rep.total_secs = t_all.elapsed().as_secs_f64();
    Ok(rep)
}

/// One scale: its seeded data dir and running server.
struct Site {
    scale: usize,
    dir: tempfile::TempDir,
    db_path: PathBuf,
    log_path: PathBuf,
    users: Arc<Vec<User>>,
    /// Indexes of users without MFA.
    plain: Arc<Vec<usize>>,
    next_id: i64,
    srv: Server,
    proc_fig: report::Process,
    pairs_rate: f64,
    cycle_rate: f64,
}

impl Site {
    /// Seeds a fresh data dir with `scale` users and starts the server on it.
    fn open(
        ctx: &mut Ctx<'_>,
        bin: &std::path::Path,
        key_b64: &str,
        pw_hash: &str,
        scale: usize,
    ) -> Result<Site, String> {
        let dir = tempfile::Builder::new()
            .prefix("slugbase-bench-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let data = dir.path().to_path_buf();
        let (db_path, log_path) = (data.join("slugbase.db"), data.join("server.log"));
        log(&format!(
            "scale {scale}: seeding {} (every {}th account with MFA on)",
            data.display(),
            seed::MFA_EVERY
        ));
        let t = Instant::now();
        let mut conn = seed::open(&db_path)?;
        let users = Arc::new(seed::users(
            &mut conn,
            &ctx.keys,
            1,
            scale,
            Some(pw_hash),
            true,
            true,
            "user",
        )?);
        // Closed before the server starts: the last connection to close checkpoints the WAL,
        // and an open one here would leave the server's restart to replay it.
        drop(conn);
        let seed_secs = t.elapsed().as_secs_f64();
        log(&format!(
            "scale {scale}: {} users with a token and a session each in {seed_secs:.2} s",
            users.len()
        ));
        let plain = Arc::new((0..users.len()).filter(|&i| !users[i].mfa).collect());
        let srv = Server::start(bin, &data, key_b64, &log_path)?;
        log(&format!(
            "scale {scale}: server pid {} on {}, healthy {:.1} ms after start",
            srv.pid,
            srv.addr,
            srv.start_to_healthy.as_secs_f64() * 1e3
        ));
        std::thread::sleep(Duration::from_millis(if ctx.opts.smoke {
            200
        } else {
            1000
        }));
        let proc_fig = report::Process {
            scale,
            seed_secs,
            first_start_ms: srv.start_to_healthy.as_secs_f64() * 1e3,
            idle_rss_kib: srv.rss_kib().0,
            ..Default::default()
        };
        Ok(Site {
            scale,
            dir,
            db_path,
            log_path,
            users,
            plain,
            next_id: scale as i64 + 1,
            srv,
            proc_fig,
            pairs_rate: 0.0,
            cycle_rate: 0.0,
        })
    }

    /// Final figures: table sizes, then a restart on the database (start-to-healthy and idle
    /// RSS of a fresh process).
    fn close(
        mut self,
        ctx: &mut Ctx<'_>,
        bin: &std::path::Path,
        key_b64: &str,
    ) -> Result<(), String> {
        let (opts, scale) = (ctx.opts, self.scale);
        self.srv.resume();
        let data = self.dir.path().to_path_buf();
        self.proc_fig.hwm_end_kib = self.srv.rss_kib().1;
        self.proc_fig.wal_bytes = std::fs::metadata(data.join("slugbase.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
        {
            let conn = seed::open(&self.db_path)?;
            self.proc_fig.rows = [
                "users",
                "sessions",
                "api_tokens",
                "backup_codes",
                "mfa_events",
            ]
            .iter()
            .map(|t| (t.to_string(), seed::count(&conn, t)))
            .collect();
        }
        self.srv.stop();
        let mut p = self.proc_fig;
        p.db_bytes = std::fs::metadata(&self.db_path)
            .map(|m| m.len())
            .unwrap_or(0);
        let srv = Server::start(bin, &data, key_b64, &self.log_path)?;
        p.restart_ms = srv.start_to_healthy.as_secs_f64() * 1e3;
        std::thread::sleep(Duration::from_millis(if opts.smoke { 200 } else { 1000 }));
        p.restart_idle_rss_kib = srv.rss_kib().0;
        log(&format!(
            "scale {scale}: restart on the seeded database healthy after {:.1} ms, idle RSS {} KiB",
            p.restart_ms, p.restart_idle_rss_kib
        ));
        srv.stop();
        ctx.rep.processes.push(p);
        if opts.keep {
            let kept = self.dir.keep();
            log(&format!("kept {}", kept.display()));
        }
        Ok(())
    }
}

/// Lets `sites[i]`'s server run and freezes the others (SIGSTOP), so that an idle server's
/// background work (its activity flush, every 10 s) does not fall into another's row.
/// Rounds of A B B A in a cross-scale row. The health rows do the same work at both scales,
/// so their 100k ÷ 1k shows the method's noise: 0.86-1.14 over eight rows with one round,
/// 0.90-1.06 over eight with two (test runs), 0.82-1.00 in the committed two-round run.
pub const TURNS: u32 = 2;

fn focus(sites: &mut [Site], i: usize) -> &mut Site {
    for (k, s) in sites.iter().enumerate() {
        if k != i {
            s.srv.pause();
        }
    }
    sites[i].srv.resume();
    &mut sites[i]
}

/// Every row. The scales take turns row by row (1,000 users, then 100,000, at the same
/// workload and connection count), so that the machine's drift over the run falls on both
/// alike; the health floor is measured before and after the status rows. The nginx rows
/// (smallest scale only) follow the second health floor.
fn measure_all(ctx: &mut Ctx<'_>, sites: &mut [Site], pw_hash: &str) -> Result<(), String> {
    let opts = ctx.opts;
    let conns_list = opts.conns.clone();
    let statuses: Vec<Auth> = Auth::ALL
        .into_iter()
        .filter(|a| opts.wants(a.name()))
        .collect();
    let health = |ctx: &mut Ctx<'_>, sites: &mut [Site], name: &str| {
        let ws = per_site(sites, |_| load::Health);
        for &c in &conns_list {
            ctx.in_turns(sites, name, c, &ws);
        }
    };
    if opts.wants("health") {
        health(ctx, sites, "health");
    }
    for &auth in &statuses {
        let ws = per_site(sites, |s| load::Status {
            users: s.users.clone(),
            auth,
        });
        for &c in &conns_list {
            ctx.in_turns(sites, auth.name(), c, &ws);
        }
    }
    if opts.wants("forward-auth") {
        let ws = per_site(sites, |s| load::ForwardAuth {
            users: s.users.clone(),
        });
        for &c in &conns_list {
            ctx.in_turns(sites, load::FORWARD_AUTH, c, &ws);
        }
    }
    // The status ratios use the mean of both health rows, so that the machine's drift over
    // the status rows cancels.
    if opts.wants("health") && !statuses.is_empty() {
        health(ctx, sites, &format!("health{}", report::REPEAT));
    }
    if opts.wants(nginx::PROTECTED) || opts.wants(nginx::PLAIN) {
        nginx::rows(ctx, sites)?;
    }
    if opts.wants("begin→cancel") || opts.wants("begin") {
        for &c in &conns_list {
            let ws = per_site(sites, |s| load::BeginCancel {
                users: s.users.clone(),
                plain: s.plain.clone(),
                conns: c,
            });
            let outs = ctx.in_turns(sites, "begin→cancel pairs", c, &ws);
            for (s, o) in sites.iter_mut().zip(outs) {
                s.pairs_rate = s.pairs_rate.max(o.rate());
            }
        }
    }
    for s in sites.iter_mut() {
        s.proc_fig.hwm_before_pools_kib = s.srv.rss_kib().1;
    }
    if opts.wants("cycle") {
        for &c in &conns_list {
            cycle_rows(ctx, sites, c)?;
        }
    }
    for s in sites.iter_mut() {
        s.proc_fig.hwm_before_login_kib = s.srv.rss_kib().1;
    }
    let Some(largest) = (0..sites.len()).max_by_key(|&i| sites[i].scale) else {
        return Ok(());
    };
    let s = focus(sites, largest);
    if opts.wants("verify") {
        verify_rows(ctx, s, &conns_list)?;
    }
    s.proc_fig.hwm_before_login_kib = s.srv.rss_kib().1;
    if opts.wants("login") {
        login_rows(ctx, s, &conns_list, pw_hash);
    }
    Ok(())
}

/// One workload per site, for [`Ctx::in_turns`].
fn per_site<W>(sites: &[Site], make: impl Fn(&Site) -> W) -> Vec<Arc<W>> {
    sites.iter().map(|s| Arc::new(make(s))).collect()
}

/// Enroll cycles on fresh password-less users, inserted (into each site while its server
/// runs idle) before the row and sized from the measured rates so each pool lasts the row.
fn cycle_rows(ctx: &mut Ctx<'_>, sites: &mut [Site], c: usize) -> Result<(), String> {
    let mut ws = Vec::new();
    let mut firsts = Vec::new();
    for i in 0..sites.len() {
        let s = focus(sites, i);
        let est = if s.pairs_rate > 0.0 {
            (s.pairs_rate / 2.0).max(s.cycle_rate)
        } else {
            500.0_f64.max(s.cycle_rate)
        };
        let n = pool_size(est, ctx.opts, c);
        let mut conn = seed::open(&s.db_path)?;
        let fresh = seed::users(
            &mut conn, &ctx.keys, s.next_id, n, None, false, false, "fresh",
        )?;
        seed::settle(&conn)?;
        firsts.push(s.next_id);
        s.next_id += n as i64;
        ws.push(Arc::new(load::Cycle {
            pool: Pool::new(fresh),
        }));
    }
    let outs = ctx.in_turns(sites, "enroll→confirm→disable cycles", c, &ws);
    for (i, o) in outs.iter().enumerate() {
        let s = focus(sites, i);
        let conn = seed::open(&s.db_path)?;
        seed::drop_users(&conn, firsts[i] + ws[i].pool.used() as i64, s.next_id)?;
        seed::settle(&conn)?;
        note_pool(ctx, "cycle", (s.scale, c), &ws[i].pool, o);
        // The next cycle row sizes its pool from this one's rate too.
        s.cycle_rate = s.cycle_rate.max(o.rate());
    }
    Ok(())
}

fn verify_rows(ctx: &mut Ctx<'_>, s: &mut Site, conns_list: &[usize]) -> Result<(), String> {
    let mfa_users: Vec<&User> = s.users.iter().filter(|u| u.mfa).collect();
    check_real_login(ctx, &s.srv, &s.db_path, &mfa_users)?;
    // A verify is one write transaction, a pair two: start from twice the pair rate.
    let mut est = if s.pairs_rate > 0.0 {
        2.0 * s.pairs_rate
    } else {
        4000.0
    };
    for &c in conns_list {
        let n = pool_size(est, ctx.opts, c);
        let mut conn = seed::open(&s.db_path)?;
        let pend = seed::pending(&mut conn, &ctx.keys, &mfa_users, n)?;
        seed::settle(&conn)?;
        let w = Arc::new(load::Verify {
            pool: Pool::new(pend),
        });
        let o = ctx.measure(&s.srv, s.scale, "login step-up (mfa/verify)", c, w.clone());
        note_pool(ctx, "verify", (s.scale, c), &w.pool, &o);
        est = est.max(o.rate());
    }
    Ok(())
}

fn login_rows(ctx: &mut Ctx<'_>, s: &Site, conns_list: &[usize], pw_hash: &str) {
    // The ceiling logins are held to: one core's argon2id rate, measured here with the
    // server idle just before and just after the login rows, so that both figures see the
    // same machine conditions.
    let one_core = |ctx: &mut Ctx<'_>| {
        let r = argon2_rate(pw_hash, ctx.opts.argon2_secs);
        log(&format!(
            "argon2id: {r:.1} verifications/s on one core (server idle)"
        ));
        ctx.rep.argon2_runs.push(r);
    };
    one_core(ctx);
    for &c in conns_list {
        let w = Arc::new(load::Login {
            users: s.users.clone(),
            plain: s.plain.clone(),
            conns: c,
        });
        ctx.measure(&s.srv, s.scale, "password login", c, w);
    }
    one_core(ctx);
}

/// Items for one pooled run: the estimated rate over warm-up and window, doubled, plus slack.
fn pool_size(rate: f64, opts: &Options, conns: usize) -> usize {
    let secs = (opts.warmup + opts.measure).as_secs_f64();
    ((rate * secs * 2.0) as usize + 20 * conns).clamp(200, 400_000)
}

/// Logs and notes how much of a row's pre-made pool the row used.
fn note_pool<T>(
    ctx: &mut Ctx<'_>,
    what: &str,
    (scale, conns): (usize, usize),
    pool: &Pool<T>,
    o: &Outcome,
) {
    let (used, len) = (pool.used(), pool.len());
    let mut s = format!("{what} pool at {scale} users, {conns} conns: {used} of {len} used");
    if o.exhausted {
        let _ = write!(
            s,
            " (ran out: the window was cut short at the last completion)"
        );
    }
    log(&s);
    ctx.rep.notes.push(s);
}

/// Signs in a few MFA users with their password over HTTP to check that the real first step
/// answers `mfa_required` with the pending cookie, and that this cookie passes `verify` like
/// the seeded challenges do. Not timed.
fn check_real_login(
    ctx: &mut Ctx<'_>,
    srv: &Server,
    db_path: &std::path::Path,
    mfa_users: &[&User],
) -> Result<(), String> {
    let keys = ctx.keys.clone();
    let addr = srv.addr;
    let users: Vec<(i64, String)> = mfa_users
        .iter()
        .take(2)
        .map(|u| (u.id, u.email.clone()))
        .collect();
    let conn = seed::open(db_path)?;
    let mut codes = Vec::new();
    for (id, _) in &users {
        let (shown, hashes) = slugbase::mfa::backup::generate(&keys.backup, *id);
        slugbase::db::mfa::replace_backup_codes(&conn, *id, &hashes).map_err(|e| e.message)?;
        codes.push(shown[0].clone());
    }
    drop(conn);
    ctx.rt.block_on(async move {
        let mut c = http::Conn::new(addr);
        for ((_, email), code) in users.iter().zip(codes) {
            let body =
                serde_json::json!({ "email": email, "password": seed::PASSWORD }).to_string();
            let r = c
                .request("POST", "/api/auth/login", &[], Some(body.as_bytes()))
                .await
                .map_err(|e| e.to_string())?;
            let pending = r.cookie("slugbase.mfa_pending").map(str::to_string);
            if r.status != 200 || !r.excerpt().contains("mfa_required") || pending.is_none() {
                return Err(format!(
                    "login of an MFA user: HTTP {} {}",
                    r.status,
                    r.excerpt()
                ));
            }
            let cookie = format!("slugbase.mfa_pending={}", pending.unwrap_or_default());
            let body = serde_json::json!({ "code": code }).to_string();
            let r = c
                .request(
                    "POST",
                    "/api/auth/mfa/verify",
                    &[("Cookie", &cookie)],
                    Some(body.as_bytes()),
                )
                .await
                .map_err(|e| e.to_string())?;
            if r.status != 200 || r.cookie("slugbase.sid").is_none() {
                return Err(format!(
                    "verify after a real login: HTTP {} {}",
                    r.status,
                    r.excerpt()
                ));
            }
        }
        Ok(())
    })
}
