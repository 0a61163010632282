//! slugbase: a self-hosted, single-binary account and TOTP multi-factor server.
//!
//! [`rocket`] builds the server from a figment; `main` and the tests both go through it.

pub mod alloc;
pub mod api;
pub mod auth;
pub mod authz;
pub mod body;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod fairings;
pub mod keys;
pub mod limits;
pub mod mfa;
pub mod oidc;
pub mod state;
pub mod web;

use std::fs;
use std::sync::{Arc, Mutex};

use figment::Figment;
use rocket::fairing::AdHoc;
use rocket::{Build, Rocket};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::db::Db;
use crate::keys::Keys;
use crate::state::{App, Inner};

/// Creates the data folder (mode 0700) and checks that it can be written.
pub fn prepare_data_dir(config: &Config) -> Result<(), String> {
    let dir = &config.data_dir;
    fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create data folder {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    }
    // One per process: a CLI command may run while the server starts.
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    fs::write(&probe, b"ok")
        .and_then(|_| fs::remove_file(&probe))
        .map_err(|e| format!("data folder {} is not writable: {e}", dir.display()))
}

/// Opens the database with migrations applied and the derived keys: everything that can fail
/// at start-up, reported as one line.
pub fn open_app(config: &Config, clock: Arc<dyn Clock>) -> Result<App, String> {
    prepare_data_dir(config)?;
    let path = config.db_path();
    if config.secret_key.is_none() && !config.key_path().exists() && path.exists() {
        return Err(format!(
            "the secret key {} is missing but the database {} exists: restore the key file from \
             the same backup as the database, or set SLUGBASE_SECRET_KEY (a new key would make \
             its TOTP secrets, sessions and API tokens unusable; to start over on purpose, move \
             the database away)",
            config.key_path().display(),
            path.display()
        ));
    }
    let master = keys::load_master(config)?;
    let mut conn = db::open(&path)?;
    db::migrate(&mut conn)?;
    drop(conn);
    let db = Db::open(&path, config.pool_size)?;
    let has_users = db
        .get()
        .and_then(|c| db::users::any_exist(&c))
        .map_err(|e| format!("cannot read database: {e}"))?;
    let setup_token = (!has_users).then(|| auth::session::random_token(24));
    let dummy_hash = auth::password::hash(&auth::session::random_token(16))?;
    Ok(App::new(Inner {
        db,
        keys: Keys::derive(&master),
        config: config.clone(),
        clock,
        dummy_hash,
        setup_token: Mutex::new(setup_token),
        begin_limiter: Default::default(),
        oidc: oidc::Registry::new(&config.oidc_providers)?,
    }))
}

/// Builds the server from `figment` with the system clock.
pub fn rocket(figment: Figment) -> Result<Rocket<Build>, String> {
    rocket_with_clock(figment, Arc::new(SystemClock))
}

/// Builds the server with an injected clock (tests move time; production uses the system's).
pub fn rocket_with_clock(figment: Figment, clock: Arc<dyn Clock>) -> Result<Rocket<Build>, String> {
    let config = Config::from_figment(&figment)?;
    let app = open_app(&config, clock)?;
    Ok(rocket_for(figment, app))
}

/// Builds the server around an opened [`App`].
pub fn rocket_for(figment: Figment, app: App) -> Rocket<Build> {
    let purge = app.clone();
    rocket::custom(figment)
        .manage(authz::Gate::new(&app.config))
        .manage(app)
        .mount("/api", api::routes())
        .mount("/", web::routes())
        .register("/", error::catchers())
        .register("/", web::catchers())
        .attach(fairings::request_log::RequestLog)
        .attach(fairings::headers::SecurityHeaders)
        .attach(AdHoc::on_liftoff("announce", |rocket| {
            Box::pin(async move {
                let c = rocket.config();
                let base = format!("http://{}:{}", c.address, c.port);
                tracing::info!("slugbase listening on {base}");
                if let Some(app) = rocket.state::<App>() {
                    if let Ok(Some(t)) = app.setup_token.lock().map(|t| t.clone()) {
                        tracing::info!("no account exists yet; create the first admin at {base}/setup?token={t}");
                    }
                }
            })
        }))
        .attach(AdHoc::on_shutdown("announce shutdown", |rocket| {
            Box::pin(async move {
                tracing::info!("shutdown requested: finishing the requests in flight");
                if let Some(app) = rocket.state::<App>() {
                    app.db.flush_activity().await;
                }
            })
        }))
        .attach(AdHoc::on_liftoff("purge", move |_| {
            Box::pin(async move {
                rocket::tokio::spawn(activity_loop(purge.clone()));
                rocket::tokio::spawn(purge_loop(purge));
            })
        }))
}

/// Drops expired and idle sessions, challenges, old failure records and audit events past
/// their retention every ten minutes.
async fn purge_loop(app: App) {
    loop {
        let a = app.clone();
        let _ = app.db.write(move |c| purge(&a, c)).await;
        rocket::tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    }
}

/// One purge pass (see [`purge_loop`]), in the caller's write transaction.
pub fn purge(app: &App, c: &rusqlite::Connection) -> Result<(), error::ApiError> {
    let (now, cfg) = (app.now(), &app.config);
    // Recent uses may still wait in memory (up to a minute and a flush late); a margin keeps
    // such a session from being purged as idle.
    let idle_before = now - cfg.session_idle_secs - 120;
    db::sessions::purge_expired(c, now, idle_before)?;
    let window = cfg.failure_window_secs.max(cfg.begin_window_secs);
    db::mfa::purge(c, now, now - window)?;
    db::mfa::purge_events(c, now - cfg.event_retention_days.saturating_mul(86_400))?;
    db::oidc::purge_states(c, now)?;
    Ok(())
}

/// Writes recorded session and token activity every few seconds (see [`db::activity`]), then
/// returns freed heap pages to the kernel ([`alloc::trim`]).
async fn activity_loop(app: App) {
    let every = std::time::Duration::from_secs(db::activity::FLUSH_SECS);
    loop {
        rocket::tokio::time::sleep(every).await;
        app.db.flush_activity().await;
        // Off the async workers: it walks every heap.
        let _ = rocket::tokio::task::spawn_blocking(alloc::trim).await;
    }
}
