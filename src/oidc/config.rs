//! `[[oidc_providers]]`: what an operator writes in Rocket.toml, and its checks at start-up.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// A client secret: never printed, not even in `{:?}`.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// One OpenID provider entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `[a-z0-9-]{1,32}`, used in URLs.
    pub id: String,
    /// The button label ("Sign in with <name>").
    pub name: String,
    /// Discovery runs at `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret, or None for a public client (or when `client_secret_file` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// A file holding the client secret (trailing white space ignored); read at start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<String>,
    /// Scopes asked for; `openid` is added when missing.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Create an OIDC-only account on a first sign-in with a verified email.
    #[serde(default)]
    pub signup: bool,
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}

fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Checks every entry and reads `client_secret_file`s into `client_secret`, so that a
/// malformed entry stops start-up with one line naming it. Nothing here goes on the network:
/// a provider that is down at start-up is discovered later.
pub fn resolve(providers: &mut [ProviderConfig]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for (i, p) in providers.iter_mut().enumerate() {
        let at = |what: String| {
            format!(
                "invalid configuration: oidc_providers[{i}] ({:?}): {what}",
                p.id
            )
        };
        if !valid_id(&p.id) {
            return Err(at("id must be 1 to 32 of a-z, 0-9 and -".into()));
        }
        if !seen.insert(p.id.clone()) {
            return Err(at("id is used by another provider".into()));
        }
        if p.name.trim().is_empty() || p.name.chars().count() > 64 {
            return Err(at("name must be 1 to 64 characters".into()));
        }
        if p.client_id.trim().is_empty() {
            return Err(at("client_id is empty".into()));
        }
        issuer_ok(&p.issuer).map_err(|e| at(format!("issuer {e}")))?;
        if p.scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
            return Err(at("scopes must be single words".into()));
        }
        if !p.scopes.iter().any(|s| s == "openid") {
            p.scopes.insert(0, "openid".into());
        }
        match (&p.client_secret, &p.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err(at(
                    "set client_secret or client_secret_file, not both".into()
                ))
            }
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| at(format!("cannot read client_secret_file {path}: {e}")))?;
                let secret = text.trim_end().to_string();
                if secret.is_empty() {
                    return Err(at(format!("client_secret_file {path} is empty")));
                }
                p.client_secret = Some(Secret(secret));
                p.client_secret_file = None;
            }
            _ => {}
        }
        if p.client_secret.as_ref().is_some_and(|s| s.0.is_empty()) {
            return Err(at("client_secret is empty".into()));
        }
    }
    Ok(())
}

/// An issuer is an absolute https URL (http only on loopback, for tests and local providers)
/// without query or fragment.
fn issuer_ok(issuer: &str) -> Result<(), String> {
    let (scheme, rest) = issuer
        .split_once("://")
        .ok_or("must be an absolute URL such as https://id.home.example")?;
    let host = rest.split(['/', ':']).next().unwrap_or("");
    let loopback = matches!(host, "127.0.0.1" | "localhost") || rest.starts_with("[::1]");
    match scheme {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must use https (http only on a loopback address)".into()),
    }
    if host.is_empty() || rest.contains(['?', '#', ' ', '@']) {
        return Err("must be a URL with a host and no query, fragment or user info".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, issuer: &str) -> ProviderConfig {
        ProviderConfig {
            id: id.into(),
            name: "Test".into(),
            issuer: issuer.into(),
            client_id: "slugbase".into(),
            client_secret: Some(Secret("s".into())),
            client_secret_file: None,
            scopes: vec!["email".into()],
            signup: false,
        }
    }

    #[test]
    fn good_entries_pass_and_get_openid() {
        let mut ps = vec![
            p("pocket-id", "https://id.example"),
            p("t1", "http://127.0.0.1:9/x"),
        ];
        resolve(&mut ps).unwrap();
        assert_eq!(ps[0].scopes, ["openid", "email"]);
    }

    #[test]
    fn bad_entries_name_the_setting() {
        for (entry, needle) in [
            (p("Bad_Id", "https://id.example"), "id must"),
            (p("x", "id.example"), "issuer"),
            (p("x", "http://id.example"), "https"),
            (p("x", "https://id.example/?q"), "query"),
        ] {
            let e = resolve(&mut [entry]).unwrap_err();
            assert!(e.contains("oidc_providers[0]") && e.contains(needle), "{e}");
        }
        let e = resolve(&mut [p("a", "https://x"), p("a", "https://y")]).unwrap_err();
        assert!(e.contains("another provider"), "{e}");
        let mut both = p("a", "https://x");
        both.client_secret_file = Some("/nonexistent".into());
        assert!(resolve(&mut [both.clone()])
            .unwrap_err()
            .contains("not both"));
        both.client_secret = None;
        assert!(resolve(&mut [both]).unwrap_err().contains("cannot read"));
    }

    #[test]
    fn secret_file_is_read_and_never_debug_printed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "hunter2-secret\n").unwrap();
        let mut e = p("a", "https://x");
        e.client_secret = None;
        e.client_secret_file = Some(f.to_string_lossy().into());
        let mut ps = [e];
        resolve(&mut ps).unwrap();
        assert_eq!(ps[0].client_secret.as_ref().unwrap().0, "hunter2-secret");
        assert!(!format!("{ps:?}").contains("hunter2"));
    }
}
