//! `backup` and `check`: the operator's commands that read the database file directly.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::db;
use crate::{keys, mfa};

/// Copies the live database with SQLite's online backup API in a single step: one read
/// transaction, so the copy is one consistent snapshot. In WAL mode that reader never blocks
/// the server's writers. (A copy in small steps starts over whenever another connection
/// writes between two steps, so under steady load it may never finish.) The copy is made a
/// self-contained rollback-journal file, checked and synced, then renamed into place.
pub(super) fn backup(config: &Config, dest: &Path) -> Result<(), String> {
    let src_path = config.db_path();
    if !src_path.exists() {
        return Err(format!("no database at {}", src_path.display()));
    }
    if let (Ok(a), Ok(b)) = (src_path.canonicalize(), dest.canonicalize()) {
        if a == b {
            return Err("the backup file cannot be the live database".into());
        }
    }
    if let Some(dir) = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let src = db::open(&src_path)?;
    let mut tmp = dest.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    if let Err(e) = copy_database(&src, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Makes the rename itself durable; not every file system can sync a folder.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    eprintln!(
        "backup written to {}; back up the secret key ({} or SLUGBASE_SECRET_KEY) separately: \
         without it the copy's TOTP secrets cannot be unsealed",
        dest.display(),
        config.key_path().display()
    );
    Ok(())
}

/// Writes a checked copy of `src` to the new file `tmp` (mode 0600 from the start).
fn copy_database(src: &rusqlite::Connection, tmp: &Path) -> Result<(), String> {
    let cannot = |e: std::io::Error| format!("cannot create {}: {e}", tmp.display());
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)
            .map_err(cannot)?;
    }
    let mut dst = rusqlite::Connection::open(tmp)
        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    {
        use rusqlite::backup::{Backup, StepResult};
        let b = Backup::new(src, &mut dst).map_err(|e| format!("backup failed: {e}"))?;
        let mut waits = 0;
        loop {
            match b.step(-1).map_err(|e| format!("backup failed: {e}"))? {
                StepResult::Done => break,
                StepResult::More => {}
                _ if waits < 200 => {
                    waits += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => return Err("backup failed: the database stayed locked for 10 s".into()),
            }
        }
    }
    // The copy carries the source's WAL flag; as a rollback-journal file it is complete on
    // its own and readable from read-only media. The server turns WAL back on when it opens it.
    dst.pragma_update(None, "journal_mode", "DELETE")
        .map_err(|e| format!("cannot finish the copy: {e}"))?;
    integrity(&dst).map_err(|e| format!("the copy failed its check: {e}"))?;
    drop(dst);
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", tmp.display()))
}

/// `PRAGMA integrity_check` and `PRAGMA foreign_key_check`; Err describes the first problems.
fn integrity(conn: &rusqlite::Connection) -> Result<(), String> {
    let rows = |sql: &str| -> Result<Vec<String>, String> {
        let mut st = conn
            .prepare(sql)
            .map_err(|e| format!("cannot run {sql}: {e}"))?;
        let out = st
            .query_map([], |r| {
                use rusqlite::types::ValueRef;
                let cols: Vec<String> = (0..r.as_ref().column_count())
                    .map(|i| match r.get_ref(i) {
                        Ok(ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
                        Ok(ValueRef::Integer(n)) => n.to_string(),
                        _ => String::new(),
                    })
                    .collect();
                Ok(cols.join(" "))
            })
            .map_err(|e| format!("cannot run {sql}: {e}"))?
            .take(10)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cannot run {sql}: {e}"))?;
        Ok(out)
    };
    let ic = rows("PRAGMA integrity_check")?;
    if ic != ["ok"] {
        return Err(format!("integrity check: {}", ic.join("; ")));
    }
    let fk = rows("PRAGMA foreign_key_check")?;
    if !fk.is_empty() {
        return Err(format!("rows point at missing rows: {}", fk.join("; ")));
    }
    Ok(())
}

/// Reports on the configuration, key and database; fails on the first real problem.
pub(super) fn check(config: &Config) -> Result<(), String> {
    println!(
        "configuration: ok (data folder {})",
        config.data_dir.display()
    );
    let key_source = if config.secret_key.is_some() {
        "the secret_key setting (SLUGBASE_SECRET_KEY)".to_string()
    } else {
        config.key_path().display().to_string()
    };
    let key = if config.secret_key.is_some() || config.key_path().exists() {
        let k = keys::load_master(config)?;
        println!("secret key: ok ({key_source})");
        Some(k)
    } else {
        None
    };
    let path = config.db_path();
    if !path.exists() {
        if key.is_none() {
            println!("secret key: none yet ({key_source} is created on first start)");
        }
        println!(
            "database: none yet ({} is created on first start)",
            path.display()
        );
        return Ok(());
    }
    let mut conn = db::open(&path)?;
    let pending = db::pending_migrations(&mut conn)?;
    if pending.is_empty() {
        println!("migrations: up to date");
    } else {
        println!(
            "migrations: {} pending ({}), applied on next start",
            pending.len(),
            pending.join(", ")
        );
    }
    integrity(&conn).map_err(|e| format!("database {} is damaged: {e}", path.display()))?;
    println!("database: integrity ok");
    if !pending.is_empty() {
        println!("secret key: not matched against the database until its migrations are applied");
        return Ok(());
    }
    let count = |sql: &str| -> Result<i64, String> {
        conn.query_row(sql, [], |r| r.get(0))
            .map_err(|e| format!("cannot read database: {e}"))
    };
    let accounts = count("SELECT COUNT(*) FROM users")?;
    let mfa_on = count("SELECT COUNT(*) FROM users WHERE mfa_enabled = 1")?;
    println!("accounts: {accounts} ({mfa_on} with MFA on)");
    let Some(k) = key else {
        let secrets = count("SELECT COUNT(*) FROM users WHERE mfa_secret IS NOT NULL")?;
        let sessions = count("SELECT COUNT(*) FROM sessions")?;
        let tokens = count("SELECT COUNT(*) FROM api_tokens")?;
        if secrets + sessions + tokens > 0 {
            return Err(format!(
                "the secret key is missing ({key_source}), but the database holds {secrets} TOTP \
                 secrets, {sessions} sessions and {tokens} API tokens made with it: restore the \
                 key file from the same backup as the database, or set SLUGBASE_SECRET_KEY. \
                 Starting without it would create a new key, with which none of them work"
            ));
        }
        println!("secret key: none yet ({key_source} is created on first start)");
        return Ok(());
    };
    let seal = keys::Keys::derive(&k).seal;
    let mut st = conn
        .prepare("SELECT id, mfa_secret FROM users WHERE mfa_secret IS NOT NULL")
        .map_err(|e| format!("cannot read database: {e}"))?;
    let sealed: Vec<(i64, Vec<u8>)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("cannot read database: {e}"))?;
    let bad = sealed
        .iter()
        .filter(|(id, s)| mfa::seal::unseal(&seal, *id, s).is_err())
        .count();
    match (sealed.len(), bad) {
        (0, _) => println!("secret key: no TOTP secrets stored yet to match it against"),
        (n, 0) => println!("secret key matches the database: ok ({n} TOTP secrets unseal)"),
        (n, b) if b == n => {
            return Err(format!(
                "the secret key ({key_source}) does not match this database: none of its {n} \
                 TOTP secrets can be unsealed. Use the key that was in place when they were \
                 enrolled (restore it from the same backup as the database)"
            ))
        }
        (n, b) => {
            return Err(format!(
                "{b} of {n} TOTP secrets cannot be unsealed with the secret key ({key_source}): \
                 those rows are damaged; `slugbase user reset-mfa` lets their owners enroll again"
            ))
        }
    }
    Ok(())
}
