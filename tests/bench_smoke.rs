//! The benchmark suite (examples/bench.rs) in smoke mode: seeds two small databases, starts
//! the server binary on each and runs every workload for a fraction of a second, checking
//! that each request succeeds and that the report (figures and targets tables) comes out.
//! Figures are not checked: a smoke run is not a timed test.
//!
//! The suite's code is compiled into this test (rather than spawning a possibly stale
//! target/debug/examples/bench), and drives the debug server that cargo builds for tests.

#[path = "../examples/bench/mod.rs"]
mod bench;

use std::time::Instant;

#[test]
fn bench_smoke_runs_every_workload_and_prints_the_tables() {
    let t0 = Instant::now();
    let args: Vec<String> = ["--smoke", "--server-bin", env!("CARGO_BIN_EXE_slugbase")]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let opts = bench::Options::parse(&args).expect("smoke options");
    assert!(opts.smoke);
    let report = bench::run(&opts).unwrap_or_else(|e| panic!("the benchmark failed: {e}"));
    let md = report.markdown();
    println!("{md}");
    assert_eq!(bench::exit_code(&report), 0, "some requests failed:\n{md}");
    assert!(
        md.contains("| users | benchmark | conns | ops/s | p50 ms | p99 ms | p99.9 ms |"),
        "{md}"
    );
    for name in [
        "health",
        "health (after status)",
        "status, Bearer JWT",
        "status, Bearer sb_ token",
        "status, token cookie",
        "status, slugbase.sid cookie",
        "begin→cancel pairs",
        "enroll→confirm→disable cycles",
        "login step-up (mfa/verify)",
        "password login",
    ] {
        assert!(
            md.contains(&format!("| {name} |")),
            "no row for {name}:\n{md}"
        );
    }
    // The nginx rows run when nginx is installed (.ci/run installs it, so CI must have them);
    // without it their target must say SKIPPED, never PASS.
    let nginx_rows = [bench::nginx::PROTECTED, bench::nginx::PLAIN];
    if bench::nginx::binary().is_some() || std::env::var_os("CI").is_some() {
        for name in nginx_rows {
            assert!(
                md.contains(&format!("| {name} |")),
                "no row for {name}:\n{md}"
            );
        }
        assert!(
            md.contains(&format!("| {} req/s ÷ ", nginx_rows[0])),
            "{md}"
        );
    } else {
        assert!(
            md.contains("| nginx not found | ≥ 0.40 | SKIPPED |"),
            "{md}"
        );
    }
    assert!(
        md.contains("### Targets") && md.contains("targets met."),
        "{md}"
    );
    eprintln!("bench smoke took {:.1} s", t0.elapsed().as_secs_f64());
}
