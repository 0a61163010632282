//! The original request a proxy asks about, and the decision for it (pure).

use percent_encoding::percent_decode_str;

use super::rules::{host_name_ok, Policy, Rule, Rules};

/// The request the proxy is about to pass on, as far as the rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: String,
    /// Host as sent (lower case), with its port when one was given, for the return URL.
    pub authority: String,
    /// Host name only (lower case, no port), for matching.
    pub host: String,
    /// The path and query as sent, for the return URL.
    pub uri: String,
    /// The normalized path (see [`normalize_path`]), for matching.
    pub path: String,
    /// Upper-case method.
    pub method: String,
}

impl Target {
    /// Builds a target from its parts (`X-Forwarded-Proto`, `-Host`, `-Uri`, `-Method`).
    pub fn from_parts(
        scheme: &str,
        authority: &str,
        uri: &str,
        method: &str,
    ) -> Result<Target, String> {
        let scheme = scheme.trim().to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("the scheme must be http or https, not {scheme:?}"));
        }
        let authority = authority.trim().to_ascii_lowercase();
        let host = match authority.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority.as_str(),
        };
        if !host_name_ok(host) {
            return Err("the host is malformed".into());
        }
        let uri = if uri.is_empty() { "/" } else { uri };
        if !uri.starts_with('/')
            || uri.len() > 8192
            || uri.chars().any(|c| c.is_control() || c == ' ')
        {
            return Err("the URI must be a path".into());
        }
        let method = method.trim().to_ascii_uppercase();
        if method.is_empty() || method.len() > 20 || !method.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err("the method is malformed".into());
        }
        Ok(Target {
            host: host.to_string(),
            path: normalize_path(uri),
            uri: uri.to_string(),
            authority,
            scheme,
            method,
        })
    }

    /// Builds a target from nginx's `X-Original-URL` and `X-Original-Method`.
    pub fn from_url(url: &str, method: &str) -> Result<Target, String> {
        let (scheme, rest) = url.split_once("://").ok_or("the URL must be absolute")?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, uri) = rest.split_at(end);
        if authority.contains('@') {
            return Err("the URL must not carry user info".into());
        }
        let uri = if uri.starts_with('?') {
            format!("/{uri}")
        } else {
            uri.to_string()
        };
        Target::from_parts(scheme, authority, &uri, method)
    }

    /// The URL the person asked for, to return to after signing in.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.uri)
    }
}

/// The path the application will most likely act on: the query dropped, percent-escapes
/// decoded (except `%2F` and `%5C`, which an application may keep inside one segment), `\` and
/// repeated slashes read as `/`, and `.`/`..` segments resolved. Rules match this, so that
/// `/public/../admin` or `/public/%2e%2e/admin` cannot pass as `/public/…`.
pub fn normalize_path(uri: &str) -> String {
    let raw = uri.split(['?', '#']).next().unwrap_or("/");
    // Keep encoded separators encoded; decode the rest.
    let guarded = raw
        .replace("%2F", "%252F")
        .replace("%2f", "%252F")
        .replace("%5C", "%255C")
        .replace("%5c", "%255C");
    let decoded = percent_decode_str(&guarded)
        .decode_utf8_lossy()
        .replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded.split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "" | "." => {
                if i == last && i > 0 {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// The signed-in caller, as the rules see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Email (lower case).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Group names, sorted, the built-in `admins` included when the account is an admin.
    pub groups: Vec<String>,
    /// Whether the account has MFA turned on.
    pub mfa_enabled: bool,
    /// Whether the session passed a second factor; None for an `sb_` token.
    pub session_mfa: Option<bool>,
}

/// What the proxy is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Pass; with the caller's identity, or None for `bypass`.
    Allow(Option<Caller>),
    /// Sign in first (again, with a second factor, for `two_factor`).
    SignIn,
    /// `two_factor`, and the account has no second factor yet.
    Enroll,
    /// Signed in but refused by the rule.
    Forbidden,
}

/// Decides for `caller` (None: not signed in) under the rule that matched (None: the
/// default policy).
pub fn decide(rules: &Rules, rule: Option<&Rule>, caller: Option<Caller>) -> Decision {
    let policy = rule.map_or(rules.default_policy, |r| r.policy);
    if policy == Policy::Bypass {
        return Decision::Allow(None);
    }
    let Some(caller) = caller else {
        return Decision::SignIn;
    };
    if policy == Policy::Deny {
        return Decision::Forbidden;
    }
    if let Some(r) = rule {
        let restricted = !r.users.is_empty() || !r.groups.is_empty();
        let listed =
            r.users.contains(&caller.email) || r.groups.iter().any(|g| caller.groups.contains(g));
        if restricted && !listed {
            return Decision::Forbidden;
        }
    }
    if policy == Policy::TwoFactor {
        if !caller.mfa_enabled {
            return Decision::Enroll;
        }
        // An sb_ token of an account with MFA on counts: creating one took a recent sign-in
        // with a code (or the operator's CLI).
        if caller.session_mfa == Some(false) {
            return Decision::SignIn;
        }
    }
    Decision::Allow(Some(caller))
}

/// Whether the proxied request is a browser navigation (gets a redirect rather than a 401).
pub fn is_navigation(method: &str, accept: Option<&str>) -> bool {
    matches!(method, "GET" | "HEAD")
        && accept.is_some_and(|a| a.to_ascii_lowercase().contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::super::rules::AccessRule;
    use super::*;

    #[test]
    fn paths_are_normalized_like_an_application_would() {
        for (raw, want) in [
            ("/", "/"),
            ("/a/b?x=1", "/a/b"),
            ("/public/../admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2E/admin/", "/admin/"),
            ("//admin", "/admin"),
            ("/a/./b", "/a/b"),
            ("/..", "/"),
            ("/a/..", "/"),
            ("/admin/..%2fpublic/x", "/admin/..%2Fpublic/x"),
            ("/a\\..\\b", "/b"),
            ("/%61dmin", "/admin"),
        ] {
            assert_eq!(normalize_path(raw), want, "{raw}");
        }
    }

    #[test]
    fn targets_from_headers_and_from_urls_agree() {
        let a = Target::from_parts("https", "App.Home.Test:8443", "/x?y=1", "get").unwrap();
        let b = Target::from_url("https://app.home.test:8443/x?y=1", "GET").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.host, "app.home.test");
        assert_eq!(a.url(), "https://app.home.test:8443/x?y=1");
        assert!(Target::from_url("https://evil@app.home.test/", "GET").is_err());
        assert!(Target::from_url("javascript:alert(1)", "GET").is_err());
        assert!(Target::from_parts("ftp", "a.test", "/", "GET").is_err());
        assert!(Target::from_parts("http", "a b", "/", "GET").is_err());
        assert!(Target::from_parts("http", "a.test", "x", "GET").is_err());
        assert_eq!(Target::from_url("http://a.test", "GET").unwrap().uri, "/");
    }

    fn caller(groups: &[&str], mfa_enabled: bool, session_mfa: Option<bool>) -> Caller {
        Caller {
            email: "ann@example.com".into(),
            name: "Ann".into(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            mfa_enabled,
            session_mfa,
        }
    }

    fn rules(policy: &str, groups: &[&str], users: &[&str]) -> Rules {
        let r = AccessRule {
            hosts: vec!["app.test".into()],
            policy: policy.into(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            users: users.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        Rules::compile(&[r], "deny").unwrap()
    }

    #[test]
    fn the_answer_table() {
        let d = |rs: &Rules, c: Option<Caller>| decide(rs, rs.rules.first(), c);
        let one = rules("one_factor", &[], &[]);
        assert_eq!(d(&one, None), Decision::SignIn);
        assert!(matches!(
            d(&one, Some(caller(&[], false, Some(false)))),
            Decision::Allow(Some(_))
        ));
        let bypass = rules("bypass", &[], &[]);
        assert_eq!(d(&bypass, None), Decision::Allow(None));
        let deny = rules("deny", &[], &[]);
        assert_eq!(d(&deny, None), Decision::SignIn);
        assert_eq!(
            d(&deny, Some(caller(&[], true, Some(true)))),
            Decision::Forbidden
        );
        let two = rules("two_factor", &[], &[]);
        assert_eq!(
            d(&two, Some(caller(&[], false, Some(false)))),
            Decision::Enroll
        );
        assert_eq!(
            d(&two, Some(caller(&[], true, Some(false)))),
            Decision::SignIn
        );
        assert!(matches!(
            d(&two, Some(caller(&[], true, Some(true)))),
            Decision::Allow(Some(_))
        ));
        assert!(matches!(
            d(&two, Some(caller(&[], true, None))),
            Decision::Allow(Some(_))
        ));
        assert_eq!(d(&two, Some(caller(&[], false, None))), Decision::Enroll);
        let admins = rules("two_factor", &["admins"], &[]);
        assert_eq!(
            d(&admins, Some(caller(&["staff"], false, Some(false)))),
            Decision::Forbidden
        );
        assert_eq!(
            d(&admins, Some(caller(&["admins"], false, Some(false)))),
            Decision::Enroll
        );
        let ann = rules("one_factor", &["wiki"], &["Ann@Example.com"]);
        assert!(matches!(
            d(&ann, Some(caller(&[], false, Some(false)))),
            Decision::Allow(_)
        ));
        let mut bob = caller(&["wiki"], false, Some(false));
        bob.email = "bob@example.com".into();
        assert!(matches!(d(&ann, Some(bob.clone())), Decision::Allow(_)));
        bob.groups.clear();
        assert_eq!(d(&ann, Some(bob)), Decision::Forbidden);
        // No rule: the default policy.
        assert_eq!(
            decide(&deny, None, Some(caller(&[], true, Some(true)))),
            Decision::Forbidden
        );
    }

    #[test]
    fn navigations_are_get_or_head_asking_for_html() {
        let html = Some("text/html,application/xhtml+xml,*/*;q=0.8");
        assert!(is_navigation("GET", html));
        assert!(is_navigation("HEAD", html));
        assert!(!is_navigation("POST", html));
        assert!(!is_navigation("GET", Some("application/json")));
        assert!(!is_navigation("GET", None));
    }
}
