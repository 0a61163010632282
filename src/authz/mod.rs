//! Forward-auth: the access rules that decide whether a reverse proxy may pass a request to
//! another application, and the start-up checks of the settings they rely on. Pure; the
//! routes are in `api::authz`.

pub mod audit;
pub mod decide;
pub mod rules;

use crate::config::Config;

pub use decide::{decide, Caller, Decision, Target};
pub use rules::{AccessRule, Policy, Rules};

/// The built-in group every account with the admin flag is in.
pub const ADMINS: &str = "admins";

/// What the forward-auth routes share: the compiled rules and the refusal-audit limiter.
#[derive(Debug)]
pub struct Gate {
    /// The compiled rules.
    pub rules: Rules,
    /// Which refusals get an audit event.
    pub denied: audit::DenyAudit,
}

impl Gate {
    /// The gate for `config`. Its rules were checked by [`check`] at start-up; should they
    /// still fail to compile (a hand-built Config), every request is refused.
    pub fn new(config: &Config) -> Gate {
        let rules =
            Rules::compile(&config.access_rules, &config.default_policy).unwrap_or_else(|e| {
                tracing::error!("forward-auth refuses every request: {e}");
                Rules::deny_all()
            });
        Gate {
            rules,
            denied: Default::default(),
        }
    }
}

/// Checks `cookie_domain` against `public_url` and the public-suffix list, and compiles the
/// access rules; the error is one line naming the setting.
pub fn check(config: &Config) -> Result<(), String> {
    if let Some(raw) = &config.cookie_domain {
        cookie_domain(raw, &config.public_origin().host)
            .map_err(|e| format!("invalid configuration: cookie_domain: {e}"))?;
    }
    Rules::compile(&config.access_rules, &config.default_policy)
        .map_err(|e| format!("invalid configuration: {e}"))?;
    Ok(())
}

/// `raw` as a cookie domain (lower case, no leading dot) for a server reached at `host`.
pub fn cookie_domain(raw: &str, host: &str) -> Result<String, String> {
    let d = raw.trim().trim_start_matches('.').to_ascii_lowercase();
    if !rules::host_name_ok(&d) || d.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!("{raw:?} is not a domain name"));
    }
    // A public suffix has no registrable domain: a cookie there would reach every site under it.
    if psl::domain_str(&d).is_none() {
        return Err(format!(
            "{d:?} is a public suffix; use a domain you own, e.g. home.example"
        ));
    }
    if host != d && !host.ends_with(&format!(".{d}")) {
        return Err(format!(
            "public_url's host {host:?} is not inside {d:?}; set public_url to slugbase's address under it"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_domains_must_hold_public_url_and_not_be_a_public_suffix() {
        assert_eq!(
            cookie_domain(".Home.Example", "auth.home.example").unwrap(),
            "home.example"
        );
        assert!(cookie_domain("home.example", "home.example").is_ok());
        assert!(cookie_domain("home.test", "auth.home.test").is_ok());
        let e = cookie_domain("home.example", "auth.other.example").unwrap_err();
        assert!(e.contains("not inside"), "{e}");
        let e = cookie_domain("home.example", "127.0.0.1").unwrap_err();
        assert!(e.contains("not inside"), "{e}");
        for suffix in ["com", "co.uk", "github.io", "example"] {
            let host = format!("auth.{suffix}");
            let e = cookie_domain(suffix, &host).unwrap_err();
            assert!(e.contains("public suffix"), "{suffix}: {e}");
        }
        assert!(cookie_domain("not a domain", "x").is_err());
        assert!(cookie_domain("10.0.0.1", "10.0.0.1").is_err());
    }
}
