//! Rolling-window rate limits, and the fairing that applies them to enrollment begin.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Method;
use rocket::{Data, Request};

use crate::auth::request::client_info;
use crate::auth::{authenticate, PreRejection};
use crate::db::mfa as repo;
use crate::error::ApiError;
use crate::state::App;

/// In-memory rolling-window counters, keyed by text.
#[derive(Default)]
pub struct RateLimiter {
    hits: Mutex<Hits>,
}

/// Keys below which expired entries are left alone (each is dropped on its key's next hit).
const PRUNE_FLOOR: usize = 50_000;

#[derive(Default)]
struct Hits {
    map: HashMap<String, VecDeque<i64>>,
    /// Map size that triggers the next sweep of expired keys.
    prune_at: usize,
}

impl Hits {
    /// Sweeps expired keys once the map reaches `prune_at`, then moves the mark to twice what
    /// is left: a sweep that finds every key still live is not repeated on the next call
    /// (measured: with 100,000 live keys a per-call sweep took 60 % of the server's CPU).
    fn prune(&mut self, now: i64, window: i64) {
        if self.map.len() < self.prune_at.max(PRUNE_FLOOR) {
            return;
        }
        self.map
            .retain(|_, q| q.back().is_some_and(|&t| t > now - window));
        self.prune_at = (2 * self.map.len()).max(PRUNE_FLOOR);
    }
}

impl RateLimiter {
    /// Takes one slot under every `(key, limit)` at `now`, or none at all: when any key is
    /// full, returns the whole seconds until that key frees a slot.
    pub fn hit(&self, keys: &[(String, u32)], window: i64, now: i64) -> Result<(), u64> {
        let mut hits = match self.hits.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        hits.prune(now, window);
        let map = &mut hits.map;
        let mut wait = 0i64;
        for (key, limit) in keys {
            let q = map.entry(key.clone()).or_default();
            while q.front().is_some_and(|&t| t <= now - window) {
                q.pop_front();
            }
            if q.len() >= *limit as usize {
                let oldest = q.front().copied().unwrap_or(now);
                wait = wait.max(oldest + window - now);
            }
        }
        if wait > 0 || keys.iter().any(|(_, l)| *l == 0) {
            return Err(wait.max(1) as u64);
        }
        for (key, _) in keys {
            map.entry(key.clone()).or_default().push_back(now);
        }
        Ok(())
    }
}

/// Limits `POST /api/auth/mfa/enroll/begin` per user and per client IP. Only authenticated
/// calls count, so a stranger cannot spend someone else's quota.
pub struct BeginRateLimit;

/// The path the fairing guards.
pub const BEGIN_PATH: &str = "/api/auth/mfa/enroll/begin";

#[rocket::async_trait]
impl Fairing for BeginRateLimit {
    fn info(&self) -> Info {
        Info {
            name: "enrollment rate limit",
            kind: Kind::Request,
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        if req.method() != Method::Post || req.uri().path() != BEGIN_PATH {
            return;
        }
        let req: &Request<'_> = req;
        let Some(app) = req.rocket().state::<App>() else {
            return;
        };
        let Ok(auth) = authenticate(req).await else {
            return;
        };
        let info = client_info(req);
        let c = &app.config;
        let keys = [
            (format!("user:{}", auth.user.id), c.begin_limit_per_user),
            (format!("ip:{}", info.ip_key()), c.begin_limit_per_ip),
        ];
        let now = app.now();
        if let Err(retry) = app.begin_limiter.hit(&keys, c.begin_window_secs, now) {
            if let Ok(mut slot) = req.local_cache(PreRejection::default).0.lock() {
                *slot = Some(ApiError::rate_limited(retry));
            }
            let user_id = auth.user.id;
            let _ = app
                .db
                .write(move |conn| {
                    repo::record_event(
                        conn,
                        user_id,
                        "rate_limited",
                        now,
                        info.ip_text().as_deref(),
                        info.user_agent.as_deref(),
                    )
                })
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_expired_keys_without_rescanning_live_ones() {
        let l = RateLimiter::default();
        let hit = |key: usize, now| l.hit(&[(format!("k{key}"), 5)], 100, now);
        for k in 0..PRUNE_FLOOR {
            assert!(hit(k, 1000).is_ok());
        }
        // All live: the sweep at the floor keeps them and moves the mark to twice as many.
        assert!(hit(PRUNE_FLOOR, 1000).is_ok());
        {
            let h = l.hits.lock().unwrap();
            assert_eq!(h.map.len(), PRUNE_FLOOR + 1);
            assert_eq!(h.prune_at, 2 * PRUNE_FLOOR);
        }
        // Later every key has expired: the next sweep (at the mark) drops them.
        for k in PRUNE_FLOOR + 1..2 * PRUNE_FLOOR {
            assert!(hit(k, 1000).is_ok());
        }
        assert!(hit(2 * PRUNE_FLOOR, 5000).is_ok());
        let h = l.hits.lock().unwrap();
        assert_eq!(h.map.len(), 1, "only the key hit after the sweep");
        assert_eq!(h.prune_at, PRUNE_FLOOR);
    }

    #[test]
    fn rolling_window_and_retry_after() {
        let l = RateLimiter::default();
        let k = |n: &str, lim| vec![(n.to_string(), lim)];
        for i in 0..3 {
            assert!(l.hit(&k("a", 3), 100, 1000 + i).is_ok());
        }
        // Full: the oldest (t=1000) frees at 1100.
        assert_eq!(l.hit(&k("a", 3), 100, 1050), Err(50));
        assert!(
            l.hit(&k("b", 3), 100, 1050).is_ok(),
            "other keys unaffected"
        );
        assert!(l.hit(&k("a", 3), 100, 1100).is_ok(), "window rolled");
    }

    #[test]
    fn all_or_nothing() {
        let l = RateLimiter::default();
        let both = vec![("u".to_string(), 5), ("ip".to_string(), 1)];
        assert!(l.hit(&both, 60, 0).is_ok());
        assert!(l.hit(&both, 60, 1).is_err());
        // The refused call did not use the user's quota.
        for t in 2..6 {
            assert!(l.hit(&[("u".to_string(), 5)], 60, t).is_ok());
        }
        assert!(l.hit(&[("u".to_string(), 5)], 60, 7).is_err());
    }
}
