//! Rolling-window rate limits kept in memory, per client address.
//!
//! The per-user enrollment window is kept in the database (`mfa_begin_calls`), the per-address
//! one here. In memory, the windows of the users who called begin in a short bench run (of
//! 139,150 accounts) held 12.6 MiB, a fifth of the footprint target, and a restart reset
//! them; the addresses that call begin are few.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

/// Seconds until a window that holds `held` calls has room under `limit`; 0 when it has room
/// now. `frees` is the time of the `limit`-th newest call, whose expiry makes room.
pub fn wait_for_slot(held: u64, frees: Option<i64>, limit: u32, window: i64, now: i64) -> i64 {
    if limit == 0 {
        return 1;
    }
    if held < u64::from(limit) {
        return 0;
    }
    frees.map_or(1, |t| (t + window - now).max(1))
}

/// [`wait_for_slot`] for a window's times, oldest first.
fn wait_for_times(times: &[i64], limit: u32, window: i64, now: i64) -> i64 {
    let frees = (limit as usize)
        .checked_sub(1)
        .and_then(|k| times.iter().rev().nth(k).copied());
    wait_for_slot(times.len() as u64, frees, limit, window, now)
}

/// In-memory rolling windows per client address.
#[derive(Default)]
pub struct AddressLimiter {
    hits: Mutex<Hits>,
}

/// Keys below which expired entries are left alone (each is dropped on its key's next hit).
const PRUNE_FLOOR: usize = 50_000;

#[derive(Default)]
struct Hits {
    windows: HashMap<Option<IpAddr>, VecDeque<i64>>,
    /// Size that triggers the next sweep of expired keys.
    prune_at: usize,
}

impl Hits {
    /// Sweeps expired keys once the map reaches `prune_at`, then moves the mark to twice what
    /// is left: a sweep that finds every key still live is not repeated on the next call
    /// (measured: with 100,000 live keys a per-call sweep took 60 % of the server's CPU).
    fn prune(&mut self, now: i64, window: i64) {
        if self.windows.len() < self.prune_at.max(PRUNE_FLOOR) {
            return;
        }
        self.windows
            .retain(|_, q| q.back().is_some_and(|&t| t > now - window));
        self.prune_at = (2 * self.windows.len()).max(PRUNE_FLOOR);
    }
}

impl AddressLimiter {
    /// Takes one slot of `ip`'s window at `now`, unless the window is full or `other_wait`
    /// (another limit's wait, in seconds) is positive: then takes nothing and returns the
    /// whole seconds until both allow a call.
    pub fn hit(
        &self,
        ip: Option<IpAddr>,
        limit: u32,
        window: i64,
        now: i64,
        other_wait: i64,
    ) -> Result<(), u64> {
        let mut hits = match self.hits.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        hits.prune(now, window);
        let q = hits.windows.entry(ip).or_default();
        while q.front().is_some_and(|&t| t <= now - window) {
            q.pop_front();
        }
        let wait = wait_for_times(q.make_contiguous(), limit, window, now).max(other_wait);
        if wait > 0 {
            return Err(wait as u64);
        }
        q.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u32) -> Option<IpAddr> {
        Some(IpAddr::from(n.to_be_bytes()))
    }

    #[test]
    fn sweeps_expired_keys_without_rescanning_live_ones() {
        let l = AddressLimiter::default();
        let hit = |key: usize, now| l.hit(addr(key as u32), 5, 100, now, 0);
        for k in 0..PRUNE_FLOOR {
            assert!(hit(k, 1000).is_ok());
        }
        // All live: the sweep at the floor keeps them and moves the mark to twice as many.
        assert!(hit(PRUNE_FLOOR, 1000).is_ok());
        {
            let h = l.hits.lock().unwrap();
            assert_eq!(h.windows.len(), PRUNE_FLOOR + 1);
            assert_eq!(h.prune_at, 2 * PRUNE_FLOOR);
        }
        // Later every key has expired: the next sweep (at the mark) drops them.
        for k in PRUNE_FLOOR + 1..2 * PRUNE_FLOOR {
            assert!(hit(k, 1000).is_ok());
        }
        assert!(hit(2 * PRUNE_FLOOR, 5000).is_ok());
        let h = l.hits.lock().unwrap();
        assert_eq!(h.windows.len(), 1, "only the key hit after the sweep");
        assert_eq!(h.prune_at, PRUNE_FLOOR);
    }

    #[test]
    fn rolling_window_and_retry_after() {
        let l = AddressLimiter::default();
        for i in 0..3 {
            assert!(l.hit(addr(1), 3, 100, 1000 + i, 0).is_ok());
        }
        // Full: the oldest (t=1000) frees at 1100.
        assert_eq!(l.hit(addr(1), 3, 100, 1050, 0), Err(50));
        assert!(l.hit(addr(2), 3, 100, 1050, 0).is_ok(), "per address");
        assert!(l.hit(None, 1, 100, 1050, 0).is_ok(), "unknown address");
        assert!(l.hit(None, 1, 100, 1051, 0).is_err());
        assert!(l.hit(addr(1), 3, 100, 1100, 0).is_ok(), "window rolled");
    }

    #[test]
    fn another_limits_wait_takes_nothing() {
        let l = AddressLimiter::default();
        assert_eq!(l.hit(addr(1), 1, 60, 0, 30), Err(30));
        // The refused call did not use the address's quota.
        assert!(l.hit(addr(1), 1, 60, 1, 0).is_ok());
        assert_eq!(l.hit(addr(1), 1, 60, 2, 5), Err(59), "the longer wait wins");
    }

    #[test]
    fn wait_counts_from_the_call_that_frees_a_slot() {
        assert_eq!(wait_for_times(&[], 3, 100, 50), 0);
        assert_eq!(wait_for_times(&[10, 20], 3, 100, 50), 0);
        assert_eq!(wait_for_times(&[10, 20, 30], 3, 100, 50), 60);
        // More calls than the limit (a lowered limit): the first two must expire.
        assert_eq!(wait_for_times(&[10, 20, 30, 40], 3, 100, 50), 70);
        assert_eq!(wait_for_times(&[10], 0, 100, 50), 1);
        assert_eq!(wait_for_times(&[0], 1, 100, 100), 1, "never 0 while full");
        assert_eq!(wait_for_slot(5, Some(20), 3, 100, 50), 70);
        assert_eq!(wait_for_slot(2, None, 3, 100, 50), 0);
    }
}
