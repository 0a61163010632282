//! Configuration: one namespace read by figment from Rocket.toml (profiles), then `ROCKET_*`,
//! then `SLUGBASE_*` environment variables; the later source wins.

use std::net::IpAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Profile};
use serde::{Deserialize, Serialize};

/// Every slugbase setting. Rocket's own settings (address, port, limits, …) share the namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Listening address (Rocket's `address`).
    pub address: IpAddr,
    /// Listening port (Rocket's `port`).
    pub port: u16,
    /// Folder holding the database and the key file; created when missing.
    pub data_dir: PathBuf,
    /// Base64 of 32 bytes; overrides `<data_dir>/secret.key` when set.
    pub secret_key: Option<String>,
    /// Peers whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Mark cookies `Secure` (turn on behind HTTPS).
    pub cookie_secure: bool,
    /// Issuer shown in authenticator apps.
    pub mfa_issuer: String,
    /// Browser session lifetime, seconds.
    pub session_ttl_secs: i64,
    /// Access JWT lifetime, seconds (never beyond its session's expiry).
    pub access_ttl_secs: i64,
    /// Enrollment begin calls allowed per user per window.
    pub begin_limit_per_user: u32,
    /// Enrollment begin calls allowed per client IP per window.
    pub begin_limit_per_ip: u32,
    /// The begin window, seconds (rolling).
    pub begin_window_secs: i64,
    /// Failed logins allowed per account per window.
    pub login_failures_per_account: u32,
    /// Failed logins allowed per client IP per window.
    pub login_failures_per_ip: u32,
    /// Failed MFA code attempts allowed per account per window.
    pub mfa_failures_per_account: u32,
    /// The failure window for logins and MFA codes, seconds.
    pub failure_window_secs: i64,
    /// Largest JSON body accepted, bytes.
    pub max_body_bytes: u64,
    /// Database connections in the pool. Writes go one at a time anyway; on 2 cores, 4 read
    /// connections served status as fast as 8 with 9 MiB less RSS (bench, 100k users).
    pub pool_size: u32,
    /// Log filter, e.g. `info` or `slugbase=debug` (RUST_LOG syntax).
    pub log_filter: String,
    /// `text` or `json` log lines.
    pub log_format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            data_dir: PathBuf::from("data"),
            secret_key: None,
            trusted_proxies: Vec::new(),
            cookie_secure: false,
            mfa_issuer: "SlugBase".into(),
            session_ttl_secs: 7 * 24 * 3600,
            access_ttl_secs: 3600,
            begin_limit_per_user: 10,
            begin_limit_per_ip: 30,
            begin_window_secs: 3600,
            login_failures_per_account: 10,
            login_failures_per_ip: 50,
            mfa_failures_per_account: 10,
            failure_window_secs: 15 * 60,
            max_body_bytes: 16 * 1024,
            pool_size: 4,
            // Rocket's generated handler code logs every failed guard as a warning under the
            // handler's module (slugbase::api::*::_); the JSON error already says it all.
            log_filter: "info,rocket=error,refinery_core=warn,hyper=warn,slugbase::api=error"
                .into(),
            log_format: "text".into(),
        }
    }
}

/// The standard figment: embedded defaults < Rocket.toml (or `ROCKET_CONFIG`) < `ROCKET_*` <
/// `SLUGBASE_*`, with the profile from `ROCKET_PROFILE` (default: `debug`/`release` by build).
pub fn figment() -> Figment {
    let toml = Env::var_or("ROCKET_CONFIG", "Rocket.toml");
    let profile = Profile::from_env_or("ROCKET_PROFILE", rocket::Config::DEFAULT_PROFILE);
    Figment::from(rocket::Config::default())
        .merge(Serialized::defaults(Config::default()))
        .merge(Serialized::default("log_level", "off"))
        .merge(Serialized::default("ip_header", false))
        .merge(Serialized::default("cli_colors", false))
        .merge(Serialized::default("ident", false))
        // Blocking threads; 0 means pool_size + cores (see `blocking_threads`).
        .merge(Serialized::default("max_blocking", 0))
        .merge(Toml::file(toml).nested())
        .merge(Env::prefixed("ROCKET_").ignore(&["PROFILE"]).global())
        .merge(Env::prefixed("SLUGBASE_").global())
        .select(profile)
}

/// The cores this process may use (2 when the system does not say).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Config {
    /// Threads for blocking work when `max_blocking` is 0 (the default): database work waits
    /// for one of `pool_size` connections and argon2 for one slot per core, so more threads
    /// only park on those and add stacks and wake-ups. Measured at 64 connections: Rocket's
    /// 512 grew 175 threads; 16 gave 11 threads; pool_size + cores (6) raised health and
    /// status by 15-30 % over 16.
    pub fn blocking_threads(&self, max_blocking: usize) -> usize {
        if max_blocking > 0 {
            return max_blocking;
        }
        self.pool_size.max(1) as usize + cores()
    }

    /// Reads the slugbase settings out of a figment.
    pub fn from_figment(figment: &Figment) -> Result<Config, String> {
        figment
            .extract::<Config>()
            .map_err(|e| format!("invalid configuration: {e}"))
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("slugbase.db")
    }

    /// The key file used when `secret_key` is unset.
    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join("secret.key")
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn slugbase_env_wins_over_rocket_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "Rocket.toml",
                "[default]\nport = 7000\nmfa_issuer = \"Toml\"\n",
            )?;
            jail.set_env("ROCKET_PORT", "7001");
            jail.set_env("SLUGBASE_PORT", "7002");
            jail.set_env("SLUGBASE_TRUSTED_PROXIES", "[\"10.0.0.1\"]");
            let c = Config::from_figment(&figment()).map_err(|e| e.to_string())?;
            assert_eq!(c.port, 7002);
            assert_eq!(c.mfa_issuer, "Toml");
            assert_eq!(c.trusted_proxies, vec![IpAddr::from([10, 0, 0, 1])]);
            Ok(())
        });
    }

    #[test]
    fn defaults_without_any_file() {
        figment::Jail::expect_with(|_| {
            let c = Config::from_figment(&figment()).map_err(|e| e.to_string())?;
            assert_eq!(c.port, 8000);
            assert_eq!(c.data_dir, PathBuf::from("data"));
            Ok(())
        });
    }

    #[test]
    fn blocking_threads_follow_the_pool_unless_set() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SLUGBASE_POOL_SIZE", "3");
            let f = figment();
            let c = Config::from_figment(&f).map_err(|e| e.to_string())?;
            let set: usize = f.extract_inner(rocket::Config::MAX_BLOCKING)?;
            assert_eq!(c.blocking_threads(set), 3 + cores());
            jail.set_env("SLUGBASE_MAX_BLOCKING", "9");
            let set: usize = figment().extract_inner(rocket::Config::MAX_BLOCKING)?;
            assert_eq!(c.blocking_threads(set), 9);
            Ok(())
        });
    }
}
