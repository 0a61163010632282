//! The markdown report: the figures, the process figures and the targets with PASS/FAIL.

use std::fmt::Write as _;

use super::load::{self, Auth, Outcome};
use super::nginx;
use super::Options;

/// One measured window.
pub struct Figure {
    pub scale: usize,
    pub name: String,
    pub conns: usize,
    pub out: Outcome,
}

/// Figures of the server process at one database size.
#[derive(Default)]
pub struct Process {
    pub scale: usize,
    pub seed_secs: f64,
    pub first_start_ms: f64,
    pub restart_ms: f64,
    pub idle_rss_kib: u64,
    pub restart_idle_rss_kib: u64,
    pub hwm_before_pools_kib: u64,
    pub hwm_before_login_kib: u64,
    pub hwm_end_kib: u64,
    pub db_bytes: u64,
    /// Size of the WAL file just before the server stopped.
    pub wal_bytes: u64,
    pub rows: Vec<(String, i64)>,
}

pub struct Report {
    pub smoke: bool,
    pub cores: usize,
    pub cpu_model: String,
    pub mem_total: String,
    pub server_bin: String,
    pub bin_size: u64,
    pub warmup: f64,
    pub measure: f64,
    pub conns: Vec<usize>,
    pub scales: Vec<usize>,
    /// One-core argon2id verifications/s, measured just before and just after the login rows;
    /// the ceiling uses their mean.
    pub argon2_runs: Vec<f64>,
    pub figures: Vec<Figure>,
    pub processes: Vec<Process>,
    pub notes: Vec<String>,
    pub total_secs: f64,
    /// Why the nginx rows were wanted but not run (nginx missing).
    pub nginx_skipped: Option<String>,
}

const MIB: f64 = 1024.0 * 1024.0;

fn cpuinfo() -> (String, String) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let total = mem
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    (model, total)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct Target {
    what: String,
    measured: String,
    limit: String,
    pass: bool,
    /// Not measured (a missing tool); neither met nor missed.
    skipped: bool,
}

impl Report {
    pub fn new(opts: &Options, cores: usize, server_bin: String, bin_size: u64) -> Report {
        let (cpu_model, mem_total) = cpuinfo();
        Report {
            smoke: opts.smoke,
            cores,
            cpu_model,
            mem_total,
            server_bin,
            bin_size,
            warmup: opts.warmup.as_secs_f64(),
            measure: opts.measure.as_secs_f64(),
            conns: opts.conns.clone(),
            scales: opts.scales.clone(),
            argon2_runs: Vec::new(),
            figures: Vec::new(),
            processes: Vec::new(),
            notes: Vec::new(),
            total_secs: 0.0,
            nginx_skipped: None,
        }
    }

    pub fn errors(&self) -> u64 {
        self.figures.iter().map(|f| f.out.errors).sum()
    }

    fn fig(&self, scale: usize, name: &str, conns: usize) -> Option<&Outcome> {
        self.figures
            .iter()
            .find(|f| f.scale == scale && f.name == name && f.conns == conns)
            .map(|f| &f.out)
    }

    /// `metric` of the rows named `name` at (scale, conns), averaged: the health floor is
    /// measured before and after the status rows, so that drift during them cancels.
    fn mean_of(
        &self,
        scale: usize,
        name: &str,
        conns: usize,
        metric: &impl Fn(&Outcome) -> f64,
    ) -> Option<f64> {
        let v: Vec<f64> = self
            .figures
            .iter()
            .filter(|f| f.scale == scale && f.conns == conns && base_name(&f.name) == name)
            .map(|f| metric(&f.out))
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// Mean of [`Report::argon2_runs`] (0 without login rows).
    pub fn argon2_per_core(&self) -> f64 {
        let n = self.argon2_runs.len().max(1) as f64;
        self.argon2_runs.iter().sum::<f64>() / n
    }

    fn small(&self) -> usize {
        *self.scales.iter().min().unwrap_or(&0)
    }
    fn large(&self) -> usize {
        *self.scales.iter().max().unwrap_or(&0)
    }
    fn top_conns(&self) -> usize {
        *self.conns.iter().max().unwrap_or(&0)
    }

    /// Ratios of `metric` between rows a and b over every (scale, conns) pair where both
    /// exist (each side averaged over its repeats, see [`Report::mean_of`]).
    fn ratios(
        &self,
        a: &str,
        b: &str,
        metric: impl Fn(&Outcome) -> f64,
        conns: &[usize],
    ) -> Vec<(usize, usize, f64)> {
        let mut v = Vec::new();
        for &s in &self.scales {
            for &c in conns {
                if let (Some(x), Some(y)) = (
                    self.mean_of(s, a, c, &metric),
                    self.mean_of(s, b, c, &metric),
                ) {
                    v.push((s, c, x / y));
                }
            }
        }
        v
    }

    fn ratio_target(
        what: String,
        v: &[(usize, usize, f64)],
        limit: f64,
        at_least: bool,
        limit_text: String,
    ) -> Option<Target> {
        if v.is_empty() {
            return None;
        }
        let worst = if at_least {
            v.iter().map(|x| x.2).fold(f64::INFINITY, f64::min)
        } else {
            v.iter().map(|x| x.2).fold(f64::NEG_INFINITY, f64::max)
        };
        let detail: Vec<String> = v
            .iter()
            .map(|(s, c, r)| format!("{s}u/{c}c {r:.2}"))
            .collect();
        Some(Target {
            what,
            measured: format!(
                "{} {worst:.2} ({})",
                if at_least { "min" } else { "max" },
                detail.join(", ")
            ),
            limit: limit_text,
            pass: if at_least {
                worst >= limit
            } else {
                worst <= limit
            },
            skipped: false,
        })
    }

    fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let all = self.conns.clone();
        let top = [self.top_conns()];
        for a in Auth::ALL {
            let v = self.ratios(a.name(), "health", Outcome::rate, &all);
            t.extend(Self::ratio_target(
                format!("{} req/s ÷ health req/s", a.name()),
                &v,
                0.6,
                true,
                "≥ 0.60".into(),
            ));
        }
        // Forward-auth is on the path of every request to every protected app: it must cost
        // about what status does (issue 15).
        let v = self.ratios(load::FORWARD_AUTH, "health", Outcome::rate, &all);
        t.extend(Self::ratio_target(
            format!("{} req/s ÷ health req/s", load::FORWARD_AUTH),
            &v,
            0.6,
            true,
            "≥ 0.60".into(),
        ));
        for a in Auth::ALL {
            let v = self.ratios(a.name(), "health", |o| o.q_ms(0.99), &top);
            t.extend(Self::ratio_target(
                format!("{} p99 ÷ health p99 at {} conns", a.name(), top[0]),
                &v,
                3.0,
                false,
                "≤ 3.00".into(),
            ));
        }
        // The file costs nginx almost nothing, so this is the price of the auth_request round
        // trip on a request a browser makes many times per page (issue 15).
        let what = format!("{} req/s ÷ {} req/s", nginx::PROTECTED, nginx::PLAIN);
        if let Some(why) = &self.nginx_skipped {
            t.push(Target {
                what,
                measured: why.clone(),
                limit: "≥ 0.40".into(),
                pass: false,
                skipped: true,
            });
        } else {
            let v = self.ratios(nginx::PROTECTED, nginx::PLAIN, Outcome::rate, &all);
            t.extend(Self::ratio_target(what, &v, 0.4, true, "≥ 0.40".into()));
        }
        let v = self.ratios("begin→cancel pairs", "health", Outcome::rate, &all);
        t.extend(Self::ratio_target(
            "begin→cancel pairs/s ÷ health req/s".into(),
            &v,
            0.15,
            true,
            "≥ 0.15".into(),
        ));
        let ceiling = self.cores as f64 * self.argon2_per_core();
        let mut v = Vec::new();
        for &c in &all {
            if let Some(l) = self.fig(self.large(), "password login", c) {
                v.push((self.large(), c, l.rate() / ceiling));
            }
        }
        t.extend(Self::ratio_target(
            format!(
                "logins/s ÷ ({} cores × {:.1} argon2id/s on one core = {ceiling:.1}/s)",
                self.cores,
                self.argon2_per_core()
            ),
            &v,
            0.8,
            true,
            "≥ 0.80".into(),
        ));
        if self.scales.len() >= 2 {
            let (s, l) = (self.small(), self.large());
            let mut names: Vec<&str> = Auth::ALL.iter().map(|a| a.name()).collect();
            names.extend(["begin→cancel pairs", "enroll→confirm→disable cycles"]);
            for n in names {
                let mut v = Vec::new();
                for &c in &all {
                    if let (Some(x), Some(y)) = (self.fig(l, n, c), self.fig(s, n, c)) {
                        v.push((l, c, x.rate() / y.rate()));
                    }
                }
                t.extend(Self::ratio_target(
                    format!("{n}: {l} users ÷ {s} users"),
                    &v,
                    0.9,
                    true,
                    "≥ 0.90".into(),
                ));
            }
        }
        if let Some(p) = self.processes.iter().max_by_key(|p| p.scale) {
            let idle = p.idle_rss_kib.max(p.restart_idle_rss_kib);
            t.push(Target {
                what: format!(
                    "RSS idle ({} users; after first start / after restart)",
                    p.scale
                ),
                measured: format!(
                    "{:.1} MiB ({:.1} / {:.1})",
                    mib(idle),
                    mib(p.idle_rss_kib),
                    mib(p.restart_idle_rss_kib)
                ),
                limit: "≤ 30 MiB".into(),
                pass: mib(idle) <= 30.0,
                skipped: false,
            });
        }
        let top_figs: Vec<&Figure> = self
            .figures
            .iter()
            .filter(|f| f.conns == self.top_conns())
            .collect();
        if let Some(peak) = top_figs.iter().max_by_key(|f| f.out.rss_max_kib) {
            let non_login = top_figs
                .iter()
                .filter(|f| f.name != "password login")
                .max_by_key(|f| f.out.rss_max_kib);
            let other = non_login
                .map(|f| {
                    format!(
                        "; without login: {:.1} MiB ({}, {} users)",
                        mib(f.out.rss_max_kib),
                        f.name,
                        f.scale
                    )
                })
                .unwrap_or_default();
            t.push(Target {
                what: format!(
                    "RSS peak under {} connections (sampled VmRSS, every workload)",
                    self.top_conns()
                ),
                measured: format!(
                    "{:.1} MiB, anon {:.1} ({}, {} users){other}",
                    mib(peak.out.rss_max_kib),
                    mib(peak.out.anon_max_kib),
                    peak.name,
                    peak.scale
                ),
                limit: "≤ 60 MiB".into(),
                pass: mib(peak.out.rss_max_kib) <= 60.0,
                skipped: false,
            });
        }
        if let Some(p) = self.processes.iter().max_by_key(|p| p.scale) {
            let others: Vec<String> = self
                .processes
                .iter()
                .map(|q| {
                    format!(
                        "{}u: first {:.0} ms, restart {:.0} ms",
                        q.scale, q.first_start_ms, q.restart_ms
                    )
                })
                .collect();
            t.push(Target {
                what: format!(
                    "start → first healthy /api/health (restart on the seeded {}-user database)",
                    p.scale
                ),
                measured: format!("{:.0} ms ({})", p.restart_ms, others.join("; ")),
                limit: "≤ 200 ms".into(),
                pass: p.restart_ms <= 200.0,
                skipped: false,
            });
        }
        t.push(Target {
            what: "release binary size".into(),
            measured: format!("{:.2} MiB", self.bin_size as f64 / MIB),
            limit: "≤ 20 MiB".into(),
            pass: self.bin_size as f64 / MIB <= 20.0,
            skipped: false,
        });
        t
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let mode = if self.smoke {
            "smoke (checks that the benchmark works; figures are not meaningful)"
        } else {
            "full"
        };
        let _ = writeln!(s, "## slugbase benchmark: {mode}\n");
        let _ = writeln!(
            s,
            "Machine: {} cores, {}, {} RAM. Server: `{}` ({:.2} MiB). Load: closed loop, one tokio thread, \
             HTTP/1.1 keep-alive over loopback; {:.1} s warm-up then {:.1} s measured per row; latencies exact. \
             Whole run: {:.0} s.\n",
            self.cores,
            self.cpu_model,
            self.mem_total,
            self.server_bin,
            self.bin_size as f64 / MIB,
            self.warmup,
            self.measure,
            self.total_secs
        );
        let _ = writeln!(
            s,
            "### Figures\n\nGrouped by scale here. Each row of a workload run at every scale is {} windows of 1/{} of the measured time, taken in turns across the scales as A B B A, {} times (the server not being measured stopped with SIGSTOP), so that a drift of the machine falls on every scale alike; each window has its own warm-up.\n",
            2 * super::TURNS,
            2 * super::TURNS,
            super::TURNS
        );
        let _ = writeln!(s, "| users | benchmark | conns | ops/s | p50 ms | p99 ms | p99.9 ms | errors | server CPU | bench CPU | other CPU | server threads | server RSS max MiB (anon) |");
        let _ = writeln!(
            s,
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let mut by_scale: Vec<&Figure> = self.figures.iter().collect();
        by_scale.sort_by_key(|f| f.scale);
        for f in by_scale {
            let o = &f.out;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {:.0}% | {:.0}% | {:.0}% | {} | {:.1} ({:.1}) |",
                f.scale,
                f.name,
                f.conns,
                o.rate(),
                o.q_ms(0.5),
                o.q_ms(0.99),
                o.q_ms(0.999),
                o.errors,
                o.server_cpu_pct(),
                o.bench_cpu_pct(),
                o.other_cpu_pct(),
                o.threads_max,
                mib(o.rss_max_kib),
                mib(o.anon_max_kib)
            );
        }
        let _ = writeln!(
            s,
            "\nops: one request, except begin→cancel (2 requests), enroll cycles (3: begin, confirm, disable), \
             and verify (one request whose pending cookie was made beforehand). CPU: percent of one core over \
             the measured window (the machine has {} cores); other = every other process on the machine \
             (should be near 0). Server threads and RSS: the largest sample (every 50 ms) in the window; RSS is VmRSS (what the targets use), anon is RssAnon (VmRSS without the file pages the process maps, e.g. SQLite's shared-memory index).\n",
            self.cores
        );
        let _ = writeln!(s, "### Process\n");
        let _ = writeln!(s, "| users | seed s | DB MiB | WAL MiB at the end of the load | first start → healthy ms | restart → healthy ms | RSS idle MiB | RSS idle after restart MiB | VmHWM after status/write MiB | VmHWM before login MiB | VmHWM at end MiB | rows |");
        let _ = writeln!(
            s,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for p in &self.processes {
            let rows: Vec<String> = p.rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
            let _ = writeln!(
                s,
                "| {} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                p.scale,
                p.seed_secs,
                p.db_bytes as f64 / MIB,
                p.wal_bytes as f64 / MIB,
                p.first_start_ms,
                p.restart_ms,
                mib(p.idle_rss_kib),
                mib(p.restart_idle_rss_kib),
                mib(p.hwm_before_pools_kib),
                mib(p.hwm_before_login_kib),
                mib(p.hwm_end_kib),
                rows.join(", ")
            );
        }
        let _ = writeln!(
            s,
            "\nargon2id (m = 19 MiB, t = 2, p = 1) on one core (this process, server idle): {} verifications/s just before / just after the login rows, mean {:.1}; {} cores → login ceiling {:.1}/s.\n",
            self.argon2_runs
                .iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>()
                .join(" / "),
            self.argon2_per_core(),
            self.cores,
            self.cores as f64 * self.argon2_per_core()
        );
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        if !self.notes.is_empty() {
            s.push('\n');
        }
        let targets = self.targets();
        let _ = writeln!(s, "### Targets\n");
        let _ = writeln!(s, "| target | measured | limit | result |");
        let _ = writeln!(s, "|---|---|---|---|");
        for t in &targets {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                t.what,
                t.measured,
                t.limit,
                match (t.skipped, t.pass) {
                    (true, _) => "SKIPPED",
                    (false, true) => "PASS",
                    (false, false) => "FAIL",
                }
            );
        }
        let skipped = targets.iter().filter(|t| t.skipped).count();
        let met = targets.iter().filter(|t| t.pass).count();
        let _ = writeln!(
            s,
            "\n{met} of {} targets met.{}",
            targets.len() - skipped,
            if skipped > 0 {
                format!(" {skipped} SKIPPED (not measured, see the table).")
            } else {
                String::new()
            }
        );
        s
    }
}

/// Suffix of a row measured a second time in the same run.
pub const REPEAT: &str = " (after status)";

/// The row name without [`REPEAT`]: "health (after status)" counts as "health".
pub fn base_name(name: &str) -> &str {
    name.strip_suffix(REPEAT).unwrap_or(name)
}
