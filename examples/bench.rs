//! The benchmark suite: `cargo run --release --example bench` (full) or
//! `cargo run --release --example bench -- --smoke` (a quick check that it still works).
//! See `examples/bench/mod.rs` and BENCHMARKS.md.

#[path = "bench/mod.rs"]
mod bench;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::ExitCode::from(bench::main_with_args(&args) as u8)
}
