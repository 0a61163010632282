//! Seeding SQLite directly through the slugbase library: users sharing one argon2 hash, each
//! with an `sb_` token, a session and an access JWT; some with MFA on. Seeded as active
//! accounts: each token was last used, and each session last seen, at seeding time. Also the pools the
//! one-shot benchmarks consume (fresh users, pending second-step logins), inserted into the
//! live database while the server is idle.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use base32::Alphabet;
use rand::RngCore;
use rusqlite::{params, Connection};
use slugbase::auth::jwt::{self, Claims};
use slugbase::keys::{hmac256, Keys};
use slugbase::mfa::{backup, seal};

/// The password every seeded account shares.
pub const PASSWORD: &str = "bench-password-1";
/// Every tenth seeded account has MFA on.
pub const MFA_EVERY: i64 = 10;

/// One seeded account and its credentials.
pub struct User {
    pub id: i64,
    pub email: String,
    pub mfa: bool,
    /// Access JWT (`sid` = the session row).
    pub jwt: String,
    /// `sb_` API token.
    pub token: String,
    /// The `slugbase.sid` cookie value.
    pub sid: String,
}

/// One second-step login: the `slugbase.mfa_pending` JWT and an unused backup code.
pub struct Pending {
    pub jwt: String,
    pub code: String,
}

/// Items handed out once each, across all connections.
pub struct Pool<T> {
    items: Vec<T>,
    next: AtomicUsize,
}

impl<T> Pool<T> {
    pub fn new(items: Vec<T>) -> Self {
        Pool {
            items,
            next: AtomicUsize::new(0),
        }
    }
    pub fn take(&self) -> Option<&T> {
        self.items.get(self.next.fetch_add(1, Ordering::Relaxed))
    }
    pub fn used(&self) -> usize {
        self.next.load(Ordering::Relaxed).min(self.items.len())
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn random_b64(n: usize) -> String {
    slugbase::auth::session::random_token(n)
}

fn db_err(e: impl std::fmt::Display) -> String {
    format!("seeding failed: {e}")
}

fn access_jwt(keys: &Keys, user_id: i64, handle: &str, now: i64) -> Result<String, String> {
    let claims = Claims {
        sub: user_id.to_string(),
        sid: Some(handle.to_string()),
        jti: None,
        iat: now,
        // The server's default access lifetime is an hour; a full run takes ten minutes.
        exp: now + 3600,
        typ: jwt::ACCESS.into(),
    };
    jwt::sign(&keys.jwt, &claims)
}

/// Opens the database the way the server does (WAL, foreign keys) with migrations applied.
pub fn open(db_path: &Path) -> Result<Connection, String> {
    let mut conn = slugbase::db::open(db_path)?;
    slugbase::db::migrate(&mut conn)?;
    Ok(conn)
}

/// Copies the bench's own inserts from the WAL into the database file and empties the WAL,
/// so that the server does not pay for the set-up of the next row inside its measurement.
pub fn settle(conn: &Connection) -> Result<(), String> {
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .map_err(db_err)
}

/// Deletes the users `from..to` (with their sessions and tokens): the fresh accounts a cycle
/// row did not reach, so that they do not inflate the next rows' database.
pub fn drop_users(conn: &Connection, from: i64, to: i64) -> Result<usize, String> {
    conn.execute("DELETE FROM users WHERE id >= ?1 AND id < ?2", [from, to])
        .map_err(db_err)
}

/// Inserts users `first_id..first_id+n` in one transaction. `password_hash` None makes them
/// password-less (OIDC-only) accounts; `with_mfa` turns MFA on for every MFA_EVERY-th one.
#[allow(clippy::too_many_arguments)]
pub fn users(
    conn: &mut Connection,
    keys: &Keys,
    first_id: i64,
    n: usize,
    password_hash: Option<&str>,
    with_mfa: bool,
    with_token: bool,
    prefix: &str,
) -> Result<Vec<User>, String> {
    let now = now();
    let tx = conn.transaction().map_err(db_err)?;
    let mut out = Vec::with_capacity(n);
    {
        let mut ins_user = tx
            .prepare(
                "INSERT INTO users (id, email, name, is_admin, password_hash, created_at, mfa_enabled, mfa_secret, mfa_enrolled_at) \
                 VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(db_err)?;
        let mut ins_token = tx
            .prepare(
                "INSERT INTO api_tokens (user_id, name, token_hash, created_at, last_used_at) \
                 VALUES (?1, 'bench', ?2, ?3, ?3)",
            )
            .map_err(db_err)?;
        let mut ins_code = tx
            .prepare("INSERT INTO backup_codes (user_id, code_hash) VALUES (?1, ?2)")
            .map_err(db_err)?;
        for i in 0..n as i64 {
            let id = first_id + i;
            let email = format!("{prefix}{id}@bench.test");
            let mfa = with_mfa && id % MFA_EVERY == 0;
            let sealed = if mfa {
                let mut secret = [0u8; 20];
                rand::rngs::OsRng.fill_bytes(&mut secret);
                Some(seal::seal(&keys.seal, id, &secret)?)
            } else {
                None
            };
            ins_user
                .execute(params![
                    id,
                    email,
                    format!("Bench {id}"),
                    password_hash,
                    now,
                    mfa,
                    sealed,
                    mfa.then_some(now)
                ])
                .map_err(db_err)?;
            if mfa {
                for h in backup::generate(&keys.backup, id).1 {
                    ins_code.execute(params![id, h]).map_err(db_err)?;
                }
            }
            let token = if with_token {
                let t = slugbase::api::tokens::new_token();
                ins_token
                    .execute(params![id, hmac256(&keys.token, t.as_bytes()), now])
                    .map_err(db_err)?;
                t
            } else {
                String::new()
            };
            let sid = random_b64(32);
            let new_row = slugbase::db::sessions::NewRow {
                user_id: id,
                id_hash: hmac256(&keys.session, sid.as_bytes()),
                handle: random_b64(16),
                public_id: random_b64(12),
                expires_at: now + 7 * 24 * 3600,
                mfa,
                ip: None,
                user_agent: None,
            };
            let (_, row) = slugbase::db::sessions::create(&tx, &new_row, now)
                .map_err(|e| db_err(e.message))?;
            out.push(User {
                id,
                email,
                mfa,
                jwt: access_jwt(keys, id, &row.handle, now)?,
                token,
                sid,
            });
        }
    }
    tx.commit().map_err(db_err)?;
    Ok(out)
}

/// Opens `n` second-step challenges (as a correct password would) for the given MFA users,
/// round robin, each with a fresh backup code to spend.
pub fn pending(
    conn: &mut Connection,
    keys: &Keys,
    mfa_users: &[&User],
    n: usize,
) -> Result<Vec<Pending>, String> {
    let now = now();
    let ttl = slugbase::auth::login::PENDING_TTL;
    let tx = conn.transaction().map_err(db_err)?;
    let mut out = Vec::with_capacity(n);
    {
        let mut ins_code = tx
            .prepare("INSERT INTO backup_codes (user_id, code_hash) VALUES (?1, ?2)")
            .map_err(db_err)?;
        for i in 0..n {
            let u = mfa_users[i % mfa_users.len()];
            let jti = random_b64(16);
            slugbase::db::mfa::create_challenge(&tx, &jti, u.id, now + ttl)
                .map_err(|e| db_err(e.message))?;
            let claims = Claims {
                sub: u.id.to_string(),
                sid: None,
                jti: Some(jti),
                iat: now,
                exp: now + ttl,
                typ: jwt::MFA_PENDING.into(),
            };
            let mut raw = [0u8; 10];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let code = base32::encode(Alphabet::Rfc4648 { padding: false }, &raw).to_lowercase();
            ins_code
                .execute(params![u.id, backup::hash(&keys.backup, u.id, &code)])
                .map_err(db_err)?;
            out.push(Pending {
                jwt: jwt::sign(&keys.jwt, &claims)?,
                code,
            });
        }
    }
    tx.commit().map_err(db_err)?;
    Ok(out)
}

/// Rows in a table (for the report).
pub fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap_or(-1)
}
