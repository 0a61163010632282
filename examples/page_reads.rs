//! Probe for SQLite's page cache (BENCHMARKS.md, session 5): looks up random sessions by id,
//! as the Bearer JWT status request does, on N connections used in turn from one thread.
//! Count the pages read from the OS with strace:
//!
//! ```sh
//! cargo run --release --example bench -- --scales 100000 --only health --duration 1 --warmup 1 --keep
//! cargo build --release --example page_reads
//! strace -f -c -e trace=pread64 target/release/examples/page_reads <kept dir>/slugbase.db 2 100000
//! ```
//!
//! With per-connection caches every connection count reads about 2 pages per lookup (the two
//! leaves); with SQLite's shared cache group (SQLITE_ENABLE_MEMORY_MANAGEMENT) it was 3.9 for
//! two connections.

use std::error::Error;
use std::path::Path;

use slugbase::db;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, conns, lookups] = args.as_slice() else {
        return Err("usage: page_reads <database> <connections> <lookups>".into());
    };
    let path = Path::new(path);
    let conns: usize = conns.parse()?;
    let lookups: usize = lookups.parse()?;
    let ids: Vec<String> = db::open(path)?
        .prepare("SELECT handle FROM sessions")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if ids.is_empty() || conns == 0 {
        return Err("no sessions in the database, or no connections asked for".into());
    }
    let cs = (0..conns)
        .map(|_| db::open(path))
        .collect::<Result<Vec<_>, _>>()?;
    // A fixed xorshift sequence: the same lookups in every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut found = 0;
    for i in 0..lookups {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = &ids[(x % ids.len() as u64) as usize];
        let live = db::sessions::by_handle(&cs[i % conns], id, 0).map_err(|e| e.message)?;
        found += usize::from(live.is_some());
    }
    println!("{lookups} lookups on {conns} connections, {found} found");
    Ok(())
}
