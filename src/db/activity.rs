//! Last-activity bookkeeping: sessions' `last_seen_at` and API tokens' `last_used_at`.
//!
//! An authenticated read must not write: at 100,000 users nearly every request used a
//! credential not seen in the last minute, so the old inline `UPDATE` turned most reads into
//! write transactions queued behind SQLite's single writer. The guard now records activity
//! here, in memory, and [`crate::db::Db::flush_activity`] writes it every few seconds and
//! at shutdown (the token list writes it first too). A crash loses at most one interval of
//! timestamps, never a credential or a security decision.

use std::collections::HashMap;
use std::sync::Mutex;

use rusqlite::{params, Connection};

use crate::error::ApiError;

/// How often the server writes recorded activity, seconds.
pub const FLUSH_SECS: u64 = 10;

/// Activity is recorded at most once a minute per credential.
const GRANULARITY_SECS: i64 = 60;

/// Bounds the memory a flood of distinct credentials can take between two flushes; beyond it
/// new entries wait for a later request (the bookkeeping is best effort).
const MAX_PENDING: usize = 65_536;

/// Whether a credential last seen at `last` should be recorded again at `now`.
pub fn due(last: Option<i64>, now: i64) -> bool {
    last.is_none_or(|t| now - t >= GRANULARITY_SECS)
}

#[derive(Default)]
struct Pending {
    sessions: HashMap<i64, i64>,
    tokens: HashMap<i64, i64>,
}

/// Activity waiting to be written.
#[derive(Default)]
pub struct Activity {
    pending: Mutex<Pending>,
}

fn note(map: &mut HashMap<i64, i64>, id: i64, now: i64) {
    if map.len() < MAX_PENDING || map.contains_key(&id) {
        let t = map.entry(id).or_insert(now);
        *t = (*t).max(now);
    }
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that session `id` was used at `now`.
    pub fn session(&self, id: i64, now: i64) {
        note(&mut self.lock().sessions, id, now);
    }

    /// Records that API token `id` was used at `now`.
    pub fn token(&self, id: i64, now: i64) {
        note(&mut self.lock().tokens, id, now);
    }

    /// The latest recorded, not yet written use of session `id`.
    pub fn session_seen(&self, id: i64) -> Option<i64> {
        self.lock().sessions.get(&id).copied()
    }

    /// Number of entries waiting.
    pub fn len(&self) -> usize {
        let p = self.lock();
        p.sessions.len() + p.tokens.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes everything recorded so far, sorted by row id (so a write walks each table's
    /// B-tree in order) and cut into batches of [`BATCH`] rows.
    pub fn drain(&self) -> Vec<Batch> {
        let p = std::mem::take(&mut *self.lock());
        let sorted = |m: HashMap<i64, i64>| {
            let mut v: Vec<(i64, i64)> = m.into_iter().collect();
            v.sort_unstable();
            v
        };
        let mut out = Vec::new();
        for (table, rows) in [
            (Table::Sessions, sorted(p.sessions)),
            (Table::Tokens, sorted(p.tokens)),
        ] {
            out.extend(rows.chunks(BATCH).map(|c| Batch {
                table,
                rows: c.to_vec(),
            }));
        }
        out
    }

    /// Writes everything recorded so far, in the caller's write transaction; returns the rows
    /// touched.
    pub fn flush(&self, tx: &Connection) -> Result<usize, ApiError> {
        self.drain().iter().map(|b| b.write(tx)).sum()
    }
}

/// Rows per write transaction of the background flush: at 100,000 active credentials a single
/// transaction held the writer for about 0.2 s; batches let other writes in between.
pub const BATCH: usize = 1_000;

#[derive(Clone, Copy)]
enum Table {
    Sessions,
    Tokens,
}

/// Recorded uses of one table, `(row id, time)`, sorted by id.
pub struct Batch {
    table: Table,
    rows: Vec<(i64, i64)>,
}

impl Batch {
    /// Writes the batch in the caller's write transaction; returns the rows touched. Rows
    /// deleted meanwhile (logout, revoked token) are simply not found.
    pub fn write(&self, tx: &Connection) -> Result<usize, ApiError> {
        let mut st = tx.prepare_cached(match self.table {
            Table::Sessions => {
                "UPDATE sessions SET last_seen_at = max(last_seen_at, ?1) WHERE id = ?2"
            }
            Table::Tokens => {
                "UPDATE api_tokens SET last_used_at = max(coalesce(last_used_at, 0), ?1) WHERE id = ?2"
            }
        })?;
        let mut n = 0;
        for (id, t) in &self.rows {
            n += st.execute(params![t, id])?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_once_a_minute() {
        assert!(due(None, 100));
        assert!(!due(Some(100), 159));
        assert!(due(Some(100), 160));
    }

    #[test]
    fn keeps_the_latest_time_and_bounds_the_map() {
        let a = Activity::default();
        a.session(1, 200);
        a.session(1, 100);
        assert_eq!(a.lock().sessions[&1], 200);
        for id in 0..(MAX_PENDING as i64 + 10) {
            a.token(id, 5);
        }
        assert_eq!(a.lock().tokens.len(), MAX_PENDING);
        // An entry already waiting is still updated when the map is full.
        a.token(0, 9);
        assert_eq!(a.lock().tokens[&0], 9);
    }
}
