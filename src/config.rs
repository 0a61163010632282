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
    /// The address users reach slugbase at, e.g. `https://auth.home.example` (default
    /// `http://<address>:<port>`). When set, the cross-site check compares `Origin` with it
    /// exactly; when https, cookies are `Secure` and responses carry HSTS.
    pub public_url: Option<String>,
    /// Mark cookies `Secure`; unset means "when `public_url` is https".
    pub cookie_secure: Option<bool>,
    /// Domain the sign-in cookies are shared on (e.g. `home.example`), so that one sign-in
    /// covers every app under it (forward-auth); unset means slugbase's host only.
    pub cookie_domain: Option<String>,
    /// Issuer shown in authenticator apps.
    pub mfa_issuer: String,
    /// Browser session lifetime, seconds.
    pub session_ttl_secs: i64,
    /// Access JWT lifetime, seconds (never beyond its session's expiry).
    pub access_ttl_secs: i64,
    /// A session unused for this long ends, seconds.
    pub session_idle_secs: i64,
    /// How recent a sign-in must be to create an API token without re-entering the password,
    /// seconds.
    pub recent_auth_secs: i64,
    /// Audit events older than this are purged, days.
    pub event_retention_days: i64,
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
    /// Forward-auth: the policy when no access rule matches (`deny`, `bypass`, `one_factor`
    /// or `two_factor`).
    pub default_policy: String,
    /// Forward-auth: the access rules, checked in order; the first match decides (see
    /// docs/forward-auth.md).
    pub access_rules: Vec<crate::authz::AccessRule>,
    /// OpenID providers people may sign in with (`[[oidc_providers]]`, see src/oidc/).
    pub oidc_providers: Vec<crate::oidc::config::ProviderConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            data_dir: PathBuf::from("data"),
            secret_key: None,
            trusted_proxies: Vec::new(),
            public_url: None,
            cookie_secure: None,
            cookie_domain: None,
            mfa_issuer: "SlugBase".into(),
            session_ttl_secs: 7 * 24 * 3600,
            access_ttl_secs: 3600,
            session_idle_secs: 86_400,
            recent_auth_secs: 600,
            event_retention_days: 400,
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
            // Rocket's own "No matching routes" line is an ERROR; the request log already
            // records every request, unmatched ones included, at INFO.
            log_filter: "info,rocket=error,rocket::server::_=off,refinery_core=warn,hyper=warn,\
                         slugbase::api=error"
                .into(),
            log_format: "text".into(),
            default_policy: "deny".into(),
            access_rules: Vec::new(),
            oidc_providers: Vec::new(),
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

    /// Reads the slugbase settings out of a figment and checks the ones serde cannot.
    pub fn from_figment(figment: &Figment) -> Result<Config, String> {
        let mut c = figment
            .extract::<Config>()
            .map_err(|e| format!("invalid configuration: {e}"))?;
        if let Some(url) = &c.public_url {
            Origin::parse(url).map_err(|e| format!("invalid configuration: public_url: {e}"))?;
        }
        // Floors (documented in Rocket.toml): below them a session or token could not be used.
        for (name, v, floor) in [
            ("session_ttl_secs", c.session_ttl_secs, 60),
            ("session_idle_secs", c.session_idle_secs, 60),
            ("access_ttl_secs", c.access_ttl_secs, 60),
            ("recent_auth_secs", c.recent_auth_secs, 1),
            ("event_retention_days", c.event_retention_days, 1),
        ] {
            if v < floor {
                return Err(format!(
                    "invalid configuration: {name} is {v}, below its floor of {floor}"
                ));
            }
        }
        crate::authz::check(&c)?;
        crate::oidc::config::resolve(&mut c.oidc_providers)?;
        Ok(c)
    }

    /// The origin users reach slugbase at: `public_url`, or `http://<address>:<port>`.
    pub fn public_origin(&self) -> Origin {
        self.public_url
            .as_deref()
            .and_then(|u| Origin::parse(u).ok())
            .unwrap_or_else(|| Origin {
                scheme: "http".into(),
                host: match self.address {
                    IpAddr::V6(a) => format!("[{a}]"),
                    a => a.to_string(),
                },
                port: self.port,
            })
    }

    /// Whether cookies carry `Secure`: as set, else when `public_url` is https.
    pub fn secure_cookies(&self) -> bool {
        self.cookie_secure
            .unwrap_or_else(|| self.public_origin().is_https())
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

/// A web origin: scheme, lower-cased host and port (the scheme's default when not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal (IPv6 in brackets), lower case.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port][/]`, as in `public_url` or an `Origin` header; a path,
    /// query, fragment or user info is refused.
    pub fn parse(url: &str) -> Result<Origin, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("expected an address like https://auth.example.com")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(format!("the scheme must be http or https, not {scheme:?}")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err("expected only a scheme, a host and an optional port".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => {
                let port = p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?;
                (h, port)
            }
            _ => (authority, default_port),
        };
        if host.is_empty() {
            return Err("the host is missing".into());
        }
        Ok(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether the scheme is https.
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
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
    fn origins_compare_by_scheme_host_and_port() {
        let o = |s: &str| Origin::parse(s).unwrap();
        assert_eq!(
            o("https://Auth.Example.com/"),
            o("https://auth.example.com:443")
        );
        assert_ne!(o("https://auth.example.com"), o("http://auth.example.com"));
        assert_ne!(
            o("https://auth.example.com"),
            o("https://auth.example.com:8443")
        );
        assert_eq!(o("http://[::1]:8000").host, "[::1]");
        for bad in [
            "auth.example.com",
            "ftp://x",
            "https://x/path",
            "https://",
            "https://u@x",
            "https://x:99999",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_url_decides_secure_cookies_unless_set() {
        figment::Jail::expect_with(|jail| {
            let c = Config::from_figment(&figment()).map_err(|e| e.to_string())?;
            assert!(!c.secure_cookies());
            assert_eq!(
                c.public_origin(),
                Origin::parse("http://127.0.0.1:8000").unwrap()
            );
            jail.set_env("SLUGBASE_PUBLIC_URL", "https://auth.example.com");
            let c = Config::from_figment(&figment()).map_err(|e| e.to_string())?;
            assert!(c.secure_cookies());
            jail.set_env("SLUGBASE_COOKIE_SECURE", "false");
            let c = Config::from_figment(&figment()).map_err(|e| e.to_string())?;
            assert!(!c.secure_cookies());
            jail.set_env("SLUGBASE_PUBLIC_URL", "auth.example.com");
            let e = Config::from_figment(&figment()).unwrap_err();
            assert!(e.contains("public_url"), "{e}");
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
