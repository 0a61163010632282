//! SQLite: the pool, its pragmas, the embedded migrations and the repository functions.
//!
//! Repository functions are plain synchronous `&Connection -> Result` code; async callers
//! reach them through [`Db::run`], which moves the work off Rocket's async workers.

pub mod activity;
pub mod groups;
pub mod mfa;
pub mod oidc;
pub mod sessions;
pub mod tokens;
pub mod users;
pub mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use crate::error::ApiError;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// A pooled connection.
pub type Conn = PooledConnection<SqliteConnectionManager>;

/// The shared connection pool.
#[derive(Clone)]
pub struct Db {
    pool: Pool<SqliteConnectionManager>,
    /// Last-activity timestamps waiting to be written.
    pub activity: Arc<activity::Activity>,
    writer: Arc<writer::Writer>,
}

/// SQLite page cache per connection, KiB (SQLite's default is 2,048). A small server's whole
/// database fits either way; a large one is served from the OS page cache behind it. Measured
/// at 100,000 users with 5 connections: peak RSS 70-71 -> 62-63 MiB during logins and
/// 32-33 -> 25 MiB without, status req/s within the run-to-run noise.
const CACHE_KIB: u32 = 512;

/// Per-connection settings: WAL for concurrent readers, enforced foreign keys, a busy
/// timeout so writers queue instead of failing at once, and a small page cache.
fn init(conn: &mut Connection) -> rusqlite::Result<()> {
    // SQLite quietly opens a write-protected file read-only. Refuse such a connection: kept in
    // the pool it would fail every write even after the file is writable again.
    if conn.is_readonly(rusqlite::MAIN_DB)? {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            Some("the database file is read-only".into()),
        ));
    }
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -{CACHE_KIB};"
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Opens one connection with the standard pragmas (for the CLI and start-up).
pub fn open(path: &Path) -> Result<Connection, String> {
    let mut conn = Connection::open(path)
        .map_err(|e| format!("cannot open database {}: {e}", path.display()))?;
    init(&mut conn).map_err(|e| format!("cannot configure database {}: {e}", path.display()))?;
    Ok(conn)
}

/// Applies any pending embedded migrations. Foreign keys are off while they run, since a
/// table rebuild (V3) drops tables that others reference and must not cascade; they are
/// checked once the migrations are done and turned back on.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("database migration failed: {e}");
    conn.execute_batch("PRAGMA foreign_keys = OFF")
        .map_err(|e| fail(&e))?;
    let ran = embedded::migrations::runner().run(conn);
    // The check reads every referencing table (a second or more on a large database), so
    // only after a start that migrated something.
    let applied = ran
        .as_ref()
        .map_or(true, |r| !r.applied_migrations().is_empty());
    let broken: rusqlite::Result<i64> = if applied {
        conn.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
    } else {
        Ok(0)
    };
    let ran = ran.map(|_| ());
    conn.execute_batch("PRAGMA foreign_keys = ON")
        .map_err(|e| fail(&e))?;
    ran.map_err(|e| fail(&e))?;
    match broken {
        Ok(0) => {}
        Ok(n) => return Err(fail(&format!("{n} rows break a foreign key"))),
        Err(e) => return Err(fail(&e)),
    }
    // A data migration SQL cannot express (Unicode normalisation).
    users::canonicalize_stored_emails(conn).map(|_| ())
}

/// Names of embedded migrations not yet applied to this database.
pub fn pending_migrations(conn: &mut Connection) -> Result<Vec<String>, String> {
    let runner = embedded::migrations::runner();
    let applied = runner
        .get_applied_migrations(conn)
        .map_err(|e| format!("cannot read migration history: {e}"))?;
    Ok(runner
        .get_migrations()
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version() == m.version()))
        .map(|m| m.to_string())
        .collect())
}

impl Db {
    /// Opens the pool on `path`, after the caller has migrated the database.
    pub fn open(path: &Path, size: u32) -> Result<Db, String> {
        let manager = SqliteConnectionManager::file(path).with_init(init);
        let pool = Pool::builder()
            .max_size(size.max(1))
            .connection_timeout(Duration::from_secs(10))
            // A file connection does not go stale; the check ran an empty statement per checkout.
            .test_on_check_out(false)
            .build(manager)
            .map_err(|e| format!("cannot open database {}: {e}", path.display()))?;
        let writer = writer::Writer::start(open(path)?)?;
        Ok(Db {
            pool,
            activity: Arc::default(),
            writer: Arc::new(writer),
        })
    }

    /// Runs blocking database work on the blocking thread pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut Conn) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        rocket::tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// Runs `f` as a write transaction on the writer thread (see [`writer`]), committed
    /// together with whatever other writes are queued. As with [`in_tx`], a client error (4xx)
    /// keeps what `f` wrote and a server error undoes it; either way the caller hears back
    /// only after the commit.
    pub async fn write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Connection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.writer.write(f).await
    }

    /// Runs blocking work that takes connections itself (via [`Db::get`]) only while it
    /// needs them, e.g. around an argon2 verification.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        rocket::tokio::task::spawn_blocking(f)
            .await
            .map_err(ApiError::internal)?
    }

    /// Writes the recorded activity (see [`activity`]) through the writer, one batch per
    /// transaction. Best effort: a failure is logged and those timestamps are dropped.
    pub async fn flush_activity(&self) {
        let t = std::time::Instant::now();
        let mut rows = 0;
        for batch in self.activity.drain() {
            match self.write(move |tx| batch.write(tx)).await {
                Ok(n) => rows += n,
                Err(e) => {
                    tracing::warn!("could not record session and token activity: {}", e.message)
                }
            }
        }
        if rows > 0 {
            tracing::debug!(
                rows,
                ms = t.elapsed().as_millis() as u64,
                "activity written"
            );
        }
    }

    /// A connection for synchronous callers (CLI, tests).
    pub fn get(&self) -> Result<Conn, ApiError> {
        Ok(self.pool.get()?)
    }
}

/// Serializes this process's write transactions: each batch of the writer thread
/// ([`writer`]) and each [`in_tx`] (logins, failure records, CLI work). SQLite admits one
/// writer at a time anyway; queueing here hands the lock over the moment it is free, where
/// SQLite's busy handler would sleep 1–100 ms and retry. Other processes (the CLI) still meet
/// the busy timeout.
static WRITER: Mutex<()> = Mutex::new(());

/// Runs `f` in an IMMEDIATE transaction. Client errors (4xx) still commit, so that failure
/// counters and audit events written before the error persist; server errors roll back.
pub fn in_tx<T>(
    conn: &mut Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    // A panic elsewhere cannot leave the () inside in a bad state.
    let _writer = WRITER.lock().unwrap_or_else(|p| p.into_inner());
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let out = f(&tx);
    if keeps_writes(&out) {
        tx.commit()?;
    }
    out
}

/// Whether a write's changes are committed: on success and on client errors (4xx), so that
/// failure counters and audit events written before the error persist; a server error undoes
/// them. The one rule for [`in_tx`] and the writer thread.
pub(crate) fn keeps_writes<T>(out: &Result<T, ApiError>) -> bool {
    match out {
        Ok(_) => true,
        Err(e) => e.is_client_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// .cargo/config.toml builds SQLite without SQLITE_ENABLE_MEMORY_MANAGEMENT, so that each
    /// pooled connection keeps its own page cache (see the note there and BENCHMARKS.md).
    #[test]
    fn page_caches_are_per_connection() {
        let conn = Connection::open_in_memory().unwrap();
        let mut st = conn.prepare("PRAGMA compile_options").unwrap();
        let opts: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert!(opts.iter().any(|o| o.starts_with("THREADSAFE")), "{opts:?}");
        assert!(
            !opts.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "SQLite was built with ENABLE_MEMORY_MANAGEMENT (shared page cache): {opts:?}"
        );
    }

    /// A database made by the first release (V1 only) upgrades in place and keeps its data.
    #[test]
    fn upgrades_a_v1_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let mut conn = open(&path).unwrap();
        embedded::migrations::runner()
            .set_target(refinery::Target::Version(1))
            .run(&mut conn)
            .unwrap();
        conn.execute(
            "INSERT INTO users (email, name, created_at) VALUES ('ann@example.com', 'Ann', 1)",
            [],
        )
        .unwrap();
        let pending = pending_migrations(&mut conn).unwrap();
        // Every migration after V1 (so that adding one does not break this test).
        let all = embedded::migrations::runner().get_migrations().len();
        assert_eq!(pending.len(), all - 1, "{pending:?}");
        assert!(pending[0].contains("begin_calls"), "{pending:?}");
        assert!(pending.iter().any(|m| m.contains("groups")), "{pending:?}");

        migrate(&mut conn).unwrap();
        assert!(pending_migrations(&mut conn).unwrap().is_empty());
        let id: i64 = conn
            .query_row(
                "SELECT id FROM users WHERE email = 'ann@example.com'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        mfa::record_begin_call(&conn, id, 100).unwrap();
        assert_eq!(mfa::begin_calls_since(&conn, id, 0, 10).unwrap(), (1, None));
        // Deleting the user drops its calls (foreign key, ON DELETE CASCADE).
        conn.execute("DELETE FROM users WHERE id = ?1", [id])
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM mfa_begin_calls", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    /// A V2 database upgrades to V3 in place: every row keeps its id and data, the foreign keys
    /// still cascade, and from then on no row id is handed out twice.
    #[test]
    fn upgrades_a_v2_database_keeping_data_and_never_reusing_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.db");
        let mut conn = open(&path).unwrap();
        embedded::migrations::runner()
            .set_target(refinery::Target::Version(2))
            .run(&mut conn)
            .unwrap();
        conn.execute_batch(
            "INSERT INTO users (id, email, name, is_admin, password_hash, created_at, mfa_enabled,
                                mfa_secret, mfa_last_step)
                 VALUES (1, 'ann@example.com', 'Ann', 1, 'phc', 10, 1, x'0102', 77),
                        (2, 'bob@example.com', 'Bob', 0, NULL, 11, 0, NULL, NULL);
             INSERT INTO sessions (id, user_id, id_hash, created_at, last_seen_at, expires_at)
                 VALUES (5, 1, x'aa', 10, 12, 99999);
             INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, last_used_at)
                 VALUES (7, 2, 'cli', x'bb', 11, 13);
             INSERT INTO backup_codes (user_id, code_hash) VALUES (1, x'cc');
             INSERT INTO mfa_events (user_id, event, at) VALUES (1, 'confirm_success', 10);
             INSERT INTO mfa_begin_calls (user_id, at) VALUES (2, 12);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert!(pending_migrations(&mut conn).unwrap().is_empty());

        let ann = users::record_by_id(&conn, 1).unwrap().unwrap();
        assert_eq!(ann.user.email, "ann@example.com");
        assert!(ann.user.is_admin && ann.user.mfa_enabled);
        assert_eq!(ann.password_hash.as_deref(), Some("phc"));
        assert_eq!(ann.mfa_secret.as_deref(), Some(&[1u8, 2][..]));
        assert_eq!(ann.mfa_last_step, Some(77));
        let s = sessions::by_hash(&conn, &[0xaa], 20).unwrap().unwrap();
        assert_eq!((s.session_id, s.user.id, s.created_at), (5, 1, 10));
        assert_eq!(s.handle.len(), 32, "a fresh 128-bit handle");
        let t = tokens::authenticate(&conn, &[0xbb], 20).unwrap().unwrap();
        assert_eq!((t.token_id, t.user.id, t.last_used_at), (7, 2, Some(13)));
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT COUNT(*) FROM backup_codes"), 1);
        assert_eq!(count("SELECT COUNT(*) FROM mfa_events"), 1);
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1, "foreign keys are back on");

        // The highest ids are deleted; new rows get new ids, and cascades still work.
        users::delete(&conn, 2).unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM api_tokens"), 0, "cascade");
        assert_eq!(count("SELECT COUNT(*) FROM mfa_begin_calls"), 0, "cascade");
        let carl = users::create(&conn, "carl@example.com", "Carl", false, None, 30).unwrap();
        assert_eq!(carl.id, 3, "user id 2 is not handed out again");
        sessions::revoke(&conn, 5).unwrap();
        let (id, _) = sessions::create(&conn, &sessions::NewRow::test(1, &[0xdd]), 30).unwrap();
        assert_eq!(id, 6, "session id 5 is not handed out again");
        // Events (paged by id) too, from V6 on.
        conn.execute("DELETE FROM mfa_events", []).unwrap();
        let event = mfa::record_event_id(&conn, 1, "confirm_success", 40, None, None).unwrap();
        assert_eq!(event, 2, "event id 1 is not handed out again");
    }

    /// Stored emails are rewritten to their NFKC, lower-case form once; two accounts that
    /// would collide stop the upgrade with a message naming both, changing nothing.
    #[test]
    fn stored_emails_are_normalised_once_and_collisions_stop_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.db");
        let mut conn = open(&path).unwrap();
        embedded::migrations::runner().run(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO users (email, name, created_at) VALUES
                 ('\u{ff41}nn@example.com', 'Ann', 1), ('Bob@Example.com', 'Bob', 1);",
        )
        .unwrap();
        assert_eq!(users::canonicalize_stored_emails(&mut conn).unwrap(), 2);
        assert!(users::record_by_email(&conn, "ann@example.com")
            .unwrap()
            .is_some());
        assert!(users::record_by_email(&conn, "bob@example.com")
            .unwrap()
            .is_some());
        // Done once: a later odd row is left to the entry points, which store canonical forms.
        conn.execute(
            "INSERT INTO users (email, name, created_at) VALUES ('Carl@x', 'C', 1)",
            [],
        )
        .unwrap();
        assert_eq!(users::canonicalize_stored_emails(&mut conn).unwrap(), 0);

        let path = dir.path().join("clash.db");
        let mut conn = open(&path).unwrap();
        embedded::migrations::runner().run(&mut conn).unwrap();
        conn.execute_batch(
            "INSERT INTO users (email, name, created_at) VALUES
                 ('alice@example.com', 'A', 1), ('\u{ff41}lice@example.com', 'B', 1);",
        )
        .unwrap();
        let e = migrate(&mut conn).unwrap_err();
        assert!(
            e.contains("alice@example.com") && e.contains("same email"),
            "{e}"
        );
        let left: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM users WHERE email LIKE '~%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0, "nothing half-done");
    }
}
