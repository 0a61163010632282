//! The command line: `serve` (the default), account and token administration, `backup` and
//! `check`. Every command reads the same configuration as the server.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::{self, Config};
use crate::db::{sessions, tokens, users};
use crate::state::App;
use crate::{auth, mfa};

mod oidc;
mod ops;
use ops::{backup, check};

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
    /// Set a new password (read from standard input); ends every session, pending sign-in and
    /// API token of the account.
    SetPassword {
        #[arg(long)]
        email: String,
    },
    /// Delete an account with its sessions, tokens and MFA data.
    Delete {
        #[arg(long)]
        email: String,
    },
    /// Add or remove groups (for forward-auth access rules); prints the groups after. The
    /// built-in `admins` group is the admin flag: adding or removing it sets or clears the flag.
    Groups {
        #[arg(long)]
        email: String,
        /// A group to join (repeatable).
        #[arg(long)]
        add: Vec<String>,
        /// A group to leave (repeatable).
        #[arg(long)]
        remove: Vec<String>,
    },
    /// Clear MFA for a user who lost their device; ends every session, pending sign-in and API
    /// token of the account.
    ResetMfa {
        #[arg(long)]
        email: String,
    },
    /// Link an account to its identity (`sub`) at a configured OpenID provider.
    LinkOidc {
        #[arg(long)]
        email: String,
        /// The provider's id in oidc_providers.
        #[arg(long)]
        provider: String,
        /// The identity's `sub` at the provider.
        #[arg(long)]
        subject: String,
    },
    /// Remove an account's link to an OpenID provider.
    UnlinkOidc {
        #[arg(long)]
        email: String,
        #[arg(long)]
        provider: String,
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
        Cmd::Check => check(config).and_then(|_| oidc::check(config)),
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
                None,
            )
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "{} already holds {} API tokens; revoke one first",
                    u.email,
                    tokens::MAX_PER_USER
                )
            })?;
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
    let listen = format!("{}:{}", config.address, config.port);
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
            Err(e) => Err(match e.kind() {
                rocket::error::ErrorKind::Bind(io) => format!(
                    "cannot listen on {listen}: {} (set SLUGBASE_PORT or port in Rocket.toml, \
                     SLUGBASE_ADDRESS or address for the address)",
                    io.to_string().to_lowercase()
                ),
                other => format!("server failed: {other}"),
            }),
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

fn new_password_hash(known: &[&str]) -> Result<String, String> {
    let pw = read_password()?;
    auth::password::validate(&pw, "password", known).map_err(|e| e.message)?;
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
                Some(new_password_hash(&[&email, &name])?)
            };
            let u = users::create(&conn, &email, &name, admin, hash.as_deref(), app.now())
                .map_err(err)?;
            println!("{}", u.id);
        }
        UserCmd::List => {
            let groups = crate::db::groups::all(&conn).map_err(err)?;
            let linked = crate::db::oidc::providers_by_user(&conn).map_err(err)?;
            for u in users::list(&conn).map_err(err)? {
                let flags = [
                    (u.is_admin, "admin"),
                    (u.mfa_enabled, "mfa"),
                    (!u.has_password, "oidc-only"),
                ];
                let flags: Vec<&str> = flags.iter().filter(|f| f.0).map(|f| f.1).collect();
                let mut g = groups.get(&u.id).cloned().unwrap_or_default();
                if u.is_admin {
                    g.push(crate::authz::ADMINS.into());
                    g.sort();
                }
                let via = linked.get(&u.id).map(|p| format!("\toidc:{}", p.join(",")));
                println!(
                    "{}\t{}\t{}\t{}\tgroups={}{}",
                    u.id,
                    u.email,
                    u.name,
                    flags.join(","),
                    g.join(","),
                    via.unwrap_or_default()
                );
            }
        }
        UserCmd::SetPassword { email } => {
            let u = find(&conn, &email)?;
            let hash = new_password_hash(&[&u.email, &u.name])?;
            // Whatever the old password opened ends with it: sessions, pending sign-ins and
            // API tokens (a reset is what an operator does for a compromised account).
            let ended = crate::db::in_tx(&mut conn, |tx| {
                users::set_password(tx, u.id, &hash)?;
                let ended = sessions::end_credentials(tx, u.id, None, true)?;
                let a = mfa::service::cli_audit();
                mfa::service::event(tx, u.id, "password_reset", app.now(), &a)?;
                Ok(ended)
            })
            .map_err(err)?;
            eprintln!("password updated for {}; {ended}", u.email);
        }
        UserCmd::Delete { email } => {
            let u = find(&conn, &email)?;
            users::delete(&conn, u.id).map_err(err)?;
            eprintln!("deleted {}", u.email);
        }
        UserCmd::Groups { email, add, remove } => {
            let u = find(&conn, &email)?;
            let groups = change_groups(&mut conn, &u, &add, &remove)?;
            println!("{}", groups.join(","));
        }
        UserCmd::ResetMfa { email } => {
            let u = find(&conn, &email)?;
            let ended = mfa::service::admin_reset(app, &mut conn, u.id).map_err(err)?;
            eprintln!("MFA cleared for {}; {ended}", u.email);
        }
        UserCmd::LinkOidc {
            email,
            provider,
            subject,
        } => oidc::link(app, &email, &provider, &subject)?,
        UserCmd::UnlinkOidc { email, provider } => oidc::unlink(app, &email, &provider)?,
    }
    Ok(())
}

/// Applies `user groups`: every name checked first, then all changes in one transaction.
/// Returns the groups after, `admins` included for an admin.
fn change_groups(
    conn: &mut rusqlite::Connection,
    u: &users::User,
    add: &[String],
    remove: &[String],
) -> Result<Vec<String>, String> {
    use crate::authz::{rules::group_name_ok, ADMINS};
    use crate::db::groups;
    let norm = |g: &String| {
        let g = g.trim().to_ascii_lowercase();
        if group_name_ok(&g) {
            Ok(g)
        } else {
            Err(format!(
                "malformed group name {g:?} (1-64 of a-z 0-9 _ - .)"
            ))
        }
    };
    let add = add.iter().map(norm).collect::<Result<Vec<_>, _>>()?;
    let remove = remove.iter().map(norm).collect::<Result<Vec<_>, _>>()?;
    if let Some(g) = add.iter().find(|g| remove.contains(g)) {
        return Err(format!("group {g:?} is both added and removed"));
    }
    crate::db::in_tx(conn, |tx| {
        for g in &add {
            if g == ADMINS {
                groups::set_admin(tx, u.id, true)?;
            } else {
                groups::add(tx, u.id, g)?;
            }
        }
        for g in &remove {
            if g == ADMINS {
                groups::set_admin(tx, u.id, false)?;
            } else {
                groups::remove(tx, u.id, g)?;
            }
        }
        let admin = users::record_by_id(tx, u.id)?.is_some_and(|r| r.user.is_admin);
        groups::effective(tx, u.id, admin)
    })
    .map_err(|e| e.message)
}
