//! Which refusals get an audit event: at most one per user, rule and host per minute, so a
//! busy app that keeps asking cannot flood the events table.

use std::collections::HashMap;
use std::sync::Mutex;

/// Seconds between two `forward_auth_denied` events for the same user, rule and host.
pub const WINDOW_SECS: i64 = 60;
/// Keys kept before old ones are dropped.
const MAX_KEYS: usize = 10_000;

/// (user id, rule index or None for the default policy, host).
type Key = (i64, Option<usize>, String);

/// In-memory record of the last audited refusal per (user, rule, host).
#[derive(Debug, Default)]
pub struct DenyAudit {
    last: Mutex<HashMap<Key, i64>>,
}

impl DenyAudit {
    /// Whether a refusal of `user` by `rule` (None: the default policy) on `host` at `now`
    /// should be written; records it when so.
    pub fn should_record(&self, user: i64, rule: Option<usize>, host: &str, now: i64) -> bool {
        let Ok(mut map) = self.last.lock() else {
            return false;
        };
        if map.len() >= MAX_KEYS {
            map.retain(|_, at| now - *at < WINDOW_SECS);
            if map.len() >= MAX_KEYS {
                // Still full of fresh keys: refuse to grow; these refusals go to the log only.
                return false;
            }
        }
        let key = (user, rule, host.to_string());
        match map.get(&key) {
            Some(at) if now - *at < WINDOW_SECS => false,
            _ => {
                map.insert(key, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_a_minute_per_user_rule_and_host() {
        let a = DenyAudit::default();
        assert!(a.should_record(1, Some(0), "app.test", 1000));
        assert!(!a.should_record(1, Some(0), "app.test", 1059));
        assert!(a.should_record(1, Some(1), "app.test", 1059));
        assert!(a.should_record(2, Some(0), "app.test", 1059));
        assert!(a.should_record(1, Some(0), "other.test", 1059));
        assert!(a.should_record(1, None, "app.test", 1059));
        assert!(a.should_record(1, Some(0), "app.test", 1060));
    }

    #[test]
    fn the_map_stays_bounded() {
        let a = DenyAudit::default();
        for u in 0..MAX_KEYS as i64 {
            assert!(a.should_record(u, None, "h", 0));
        }
        assert!(!a.should_record(-1, None, "h", 30), "full of fresh keys");
        assert!(a.should_record(-1, None, "h", 61), "old keys are dropped");
    }
}
