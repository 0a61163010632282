//! The command line: `serve` (the default), account and token administration, `backup` and
//! `check`. Every command reads the same configuration as the server.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::{self, Config};
use crate::db::{self, tokens, users};
use crate::state::App;
use crate::{auth, keys, mfa};

/// slugbase: self-hosted accounts with TOTP multi-factor authentication.
#[derive(Parser)]
#[command(name = "slugbase", version, about)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the default).
    Serve,
    /// Manage accounts.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Manage personal API tokens.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Write a consistent copy of the database while the server runs.
    Backup {
        /// Destination file.
        file: PathBuf,
    },
    /// Validate the configuration, the key and the database.
    Check,
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create an account; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        admin: bool,
        /// No password: the account signs in through OIDC only.
        #[arg(long)]
        oidc_only: bool,
    },
    /// List accounts.
    List,
    /// Set a new password (read from standard input) and revoke all sessions.
    SetPassword {
        #[arg(long)]
        email: String,
    },
    /// Delete an account with its sessions, tokens and MFA data.
    Delete {
        #[arg(long)]
        email: String,
    },
    /// Clear MFA for a user who lost their device, and revoke their sessions.
    ResetMfa {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a personal API token and print it once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
}

/// Parses the command line, runs it, and turns any failure into one line and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let figment = config::figment();
    let result = Config::from_figment(&figment).and_then(|config| {
        init_logging(&config);
        run(cli.cmd.unwrap_or(Cmd::Serve), figment, &config)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slugbase: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if config.log_format.eq_ignore_ascii_case("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn run(cmd: Cmd, figment: figment::Figment, config: &Config) -> Result<(), String> {
    match cmd {
        Cmd::Serve => serve(figment, config),
        Cmd::Backup { file } => backup(config, &file),
        Cmd::Check => check(config),
        Cmd::User { cmd } => user(cmd, &open(config)?),
        Cmd::Token {
            cmd: TokenCmd::Create { email, name },
        } => {
            let app = open(config)?;
            let conn = app.db.get().map_err(|e| e.to_string())?;
            let u = find(&conn, &email)?;
            let name = crate::api::tokens::token_name(&name).map_err(|e| e.message)?;
            let token = crate::api::tokens::new_token();
            tokens::create(
                &conn,
                u.id,
                &name,
                &auth::api_token_hash(&app, &token),
                app.now(),
            )
            .map_err(|e| e.to_string())?;
            println!("{token}");
            Ok(())
        }
    }
}

fn serve(figment: figment::Figment, config: &Config) -> Result<(), String> {
    let app = crate::open_app(config, Arc::new(SystemClock))?;
    let db = app.db.clone();
    // The runtime is built here, not by rocket::execute, so that `workers` and `max_blocking`
    // come from this figment (embedded defaults and SLUGBASE_* too, not only ROCKET_*).
    let setting = |key: &str| {
        figment
            .extract_inner::<usize>(key)
            .map_err(|e| format!("invalid setting {key}: {e}"))
    };
    let force_end = figment
        .extract_inner::<bool>("shutdown.force")
        .unwrap_or(true);
    let runtime = rocket::tokio::runtime::Builder::new_multi_thread()
        .thread_name("rocket-worker-thread")
        .worker_threads(setting(rocket::Config::WORKERS)?.max(1))
        .max_blocking_threads(config.blocking_threads(setting(rocket::Config::MAX_BLOCKING)?))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let result = runtime.block_on(async move {
        let launched = crate::rocket_for(figment, app).launch().await;
        // Activity recorded by the last requests in flight.
        db.flush_activity().await;
        match launched {
            Ok(_) => {
                tracing::info!("slugbase stopped: in-flight requests finished");
                Ok(())
            }
            // kind() marks the error handled; Rocket would otherwise panic when it drops.
            Err(e) => Err(format!("server failed: {}", e.kind())),
        }
    });
    if force_end {
        runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    }
    result
}

fn open(config: &Config) -> Result<App, String> {
    crate::open_app(config, Arc::new(SystemClock))
}

fn find(conn: &rusqlite::Connection, email: &str) -> Result<users::User, String> {
    let email = users::normalize_email(email).map_err(|e| e.message)?;
    users::record_by_email(conn, &email)
        .map_err(|e| e.to_string())?
        .map(|r| r.user)
        .ok_or_else(|| format!("no account with email {email}"))
}

fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let p = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Password (again): ").map_err(|e| e.to_string())?;
        if p != again {
            return Err("the passwords do not match".into());
        }
        Ok(p)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

fn new_password_hash() -> Result<String, String> {
    let pw = read_password()?;
    auth::password::validate(&pw, "password").map_err(|e| e.message)?;
    auth::password::hash(&pw)
}

fn user(cmd: UserCmd, app: &App) -> Result<(), String> {
    let mut conn = app.db.get().map_err(|e| e.to_string())?;
    let err = |e: crate::error::ApiError| e.message;
    match cmd {
        UserCmd::Create {
            email,
            name,
            admin,
            oidc_only,
        } => {
            let email = users::normalize_email(&email).map_err(err)?;
            let name = users::normalize_name(
                name.as_deref()
                    .unwrap_or(email.split('@').next().unwrap_or("")),
            )
            .map_err(err)?;
            let hash = if oidc_only {
                None
            } else {
                Some(new_password_hash()?)
            };
            let u = users::create(&conn, &email, &name, admin, hash.as_deref(), app.now())
                .map_err(err)?;
            println!("{}", u.id);
        }
        UserCmd::List => {
            for u in users::list(&conn).map_err(err)? {
                let flags = [
                    (u.is_admin, "admin"),
                    (u.mfa_enabled, "mfa"),
                    (!u.has_password, "oidc-only"),
                ];
                let flags: Vec<&str> = flags.iter().filter(|f| f.0).map(|f| f.1).collect();
                println!("{}\t{}\t{}\t{}", u.id, u.email, u.name, flags.join(","));
            }
        }
        UserCmd::SetPassword { email } => {
            let u = find(&conn, &email)?;
            users::set_password(&conn, u.id, &new_password_hash()?).map_err(err)?;
            eprintln!("password updated; all sessions of {} revoked", u.email);
        }
        UserCmd::Delete { email } => {
            let u = find(&conn, &email)?;
            users::delete(&conn, u.id).map_err(err)?;
            eprintln!("deleted {}", u.email);
        }
        UserCmd::ResetMfa { email } => {
            let u = find(&conn, &email)?;
            mfa::service::admin_reset(app, &mut conn, u.id).map_err(err)?;
            eprintln!("MFA cleared and sessions revoked for {}", u.email);
        }
    }
    Ok(())
}

/// Copies the live database with SQLite's online backup API in a single step: one read
/// transaction, so the copy is one consistent snapshot. In WAL mode that reader never blocks
/// the server's writers. (A copy in small steps starts over whenever another connection
/// writes between two steps, so under steady load it may never finish.) The copy is made a
/// self-contained rollback-journal file, checked and synced, then renamed into place.
fn backup(config: &Config, dest: &Path) -> Result<(), String> {
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
fn check(config: &Config) -> Result<(), String> {
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
