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
    rocket::execute(async move {
        match crate::rocket_for(figment, app).launch().await {
            Ok(_) => Ok(()),
            // kind() marks the error handled; Rocket would otherwise panic when it drops.
            Err(e) => Err(format!("server failed: {}", e.kind())),
        }
    })
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

/// Copies the live database with SQLite's online backup API, in small steps so that the
/// running server's writers are never blocked for long, then checks the copy.
fn backup(config: &Config, dest: &Path) -> Result<(), String> {
    let src_path = config.db_path();
    if !src_path.exists() {
        return Err(format!("no database at {}", src_path.display()));
    }
    let src = db::open(&src_path)?;
    let tmp = dest.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    {
        let mut dst = rusqlite::Connection::open(&tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        let b = rusqlite::backup::Backup::new(&src, &mut dst)
            .map_err(|e| format!("backup failed: {e}"))?;
        b.run_to_completion(256, Duration::from_millis(5), None)
            .map_err(|e| format!("backup failed: {e}"))?;
        drop(b);
        let ok: String = dst
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| format!("cannot check the copy: {e}"))?;
        if ok != "ok" {
            return Err(format!("the copy failed its integrity check: {ok}"));
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
    }
    std::fs::rename(&tmp, dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))?;
    eprintln!(
        "backup written to {}; keep the secret key ({} or SLUGBASE_SECRET_KEY) backed up separately",
        dest.display(),
        config.key_path().display()
    );
    Ok(())
}

/// Reports on the configuration, key and database; fails on the first real problem.
fn check(config: &Config) -> Result<(), String> {
    println!(
        "configuration: ok (data folder {})",
        config.data_dir.display()
    );
    let key = if config.secret_key.is_some() || config.key_path().exists() {
        let k = keys::load_master(config)?;
        println!("secret key: ok");
        Some(k)
    } else {
        println!(
            "secret key: none yet ({} is created on first start)",
            config.key_path().display()
        );
        None
    };
    let path = config.db_path();
    if !path.exists() {
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
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("integrity check failed to run: {e}"))?;
    if ok != "ok" {
        return Err(format!("database integrity check failed: {ok}"));
    }
    println!("database: integrity ok");
    if let (Some(k), true) = (key, pending.is_empty()) {
        let sample: Option<(i64, Vec<u8>)> = conn
            .query_row(
                "SELECT id, mfa_secret FROM users WHERE mfa_secret IS NOT NULL LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        if let Some((id, sealed)) = sample {
            mfa::seal::unseal(&keys::Keys::derive(&k).seal, id, &sealed).map_err(|_| {
                "the secret key does not match this database: TOTP secrets cannot be unsealed"
                    .to_string()
            })?;
            println!("secret key matches the database: ok");
        }
    }
    Ok(())
}
