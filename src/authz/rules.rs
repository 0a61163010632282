//! Access rules as written in Rocket.toml, checked and compiled once at start-up.

use serde::{Deserialize, Serialize};

/// What a matching rule asks of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Let it pass without a sign-in (identity headers empty).
    Bypass,
    /// A signed-in account.
    OneFactor,
    /// A signed-in account whose session passed a second factor.
    TwoFactor,
    /// Refuse.
    Deny,
}

impl Policy {
    /// Parses a policy name as written in the configuration.
    pub fn parse(s: &str) -> Result<Policy, String> {
        match s {
            "bypass" => Ok(Policy::Bypass),
            "one_factor" => Ok(Policy::OneFactor),
            "two_factor" => Ok(Policy::TwoFactor),
            "deny" => Ok(Policy::Deny),
            other => Err(format!(
                "unknown policy {other:?} (expected bypass, one_factor, two_factor or deny)"
            )),
        }
    }
}

/// One `[[access_rules]]` table as written in Rocket.toml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessRule {
    /// Host patterns: `app.home.example`, `*.home.example` (any subdomain) or `*` (any host).
    pub hosts: Vec<String>,
    /// Path patterns matched against the whole path; `*` matches any run of characters.
    /// Empty: any path.
    pub paths: Vec<String>,
    /// HTTP methods; empty: any method.
    pub methods: Vec<String>,
    /// `bypass`, `one_factor`, `two_factor` or `deny`.
    pub policy: String,
    /// Only accounts in one of these groups (or listed in `users`).
    pub groups: Vec<String>,
    /// Only these accounts (or members of `groups`), by email.
    pub users: Vec<String>,
    /// Accept `Authorization: Bearer sb_…` for this rule.
    pub api_tokens: bool,
}

/// A host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.<suffix>`: any name ending in `.<suffix>`.
    Subdomains(String),
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its position in the configuration (0-based), for logs and audit.
    pub index: usize,
    hosts: Vec<HostPattern>,
    paths: Vec<String>,
    methods: Vec<String>,
    /// What it asks.
    pub policy: Policy,
    /// Allowed groups (lower case).
    pub groups: Vec<String>,
    /// Allowed emails (lower case).
    pub users: Vec<String>,
    /// Whether `sb_` tokens are accepted.
    pub api_tokens: bool,
}

/// The compiled rule list and the policy when none matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// In configuration order; the first match decides.
    pub rules: Vec<Rule>,
    /// The policy when no rule matches.
    pub default_policy: Policy,
}

/// Whether `s` is a valid DNS label (letters, digits, hyphens; not at either end).
fn label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is a host name made of valid labels (an IPv4 address passes too).
pub fn host_name_ok(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(label_ok)
}

fn host_pattern(raw: &str) -> Result<HostPattern, String> {
    let p = raw.trim().to_ascii_lowercase();
    if p == "*" {
        return Ok(HostPattern::Any);
    }
    let bad =
        || format!("malformed host pattern {raw:?} (expected app.example.com, *.example.com or *)");
    match p.strip_prefix("*.") {
        Some(rest) if host_name_ok(rest) => Ok(HostPattern::Subdomains(rest.to_string())),
        Some(_) => Err(bad()),
        None if host_name_ok(&p) => Ok(HostPattern::Exact(p)),
        None => Err(bad()),
    }
}

fn path_pattern(raw: &str) -> Result<String, String> {
    if !raw.starts_with('/') || raw.chars().any(|c| c.is_control() || c == ' ' || c == '?') {
        return Err(format!(
            "malformed path pattern {raw:?} (expected a path starting with /, * as wildcard)"
        ));
    }
    Ok(raw.to_string())
}

fn method(raw: &str) -> Result<String, String> {
    let m = raw.trim().to_ascii_uppercase();
    if m.is_empty() || m.len() > 20 || !m.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("malformed method {raw:?}"));
    }
    Ok(m)
}

/// Whether `g` is a usable group name: 1–64 of `a-z 0-9 _ - .`.
pub fn group_name_ok(g: &str) -> bool {
    (1..=64).contains(&g.len())
        && g.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        })
}

fn compile_rule(index: usize, r: &AccessRule) -> Result<Rule, String> {
    let policy = Policy::parse(&r.policy)?;
    if r.hosts.is_empty() {
        return Err("hosts is missing (use [\"*\"] for every host)".into());
    }
    let hosts = r
        .hosts
        .iter()
        .map(|h| host_pattern(h))
        .collect::<Result<_, _>>()?;
    let paths = r
        .paths
        .iter()
        .map(|p| path_pattern(p))
        .collect::<Result<_, _>>()?;
    let methods = r
        .methods
        .iter()
        .map(|m| method(m))
        .collect::<Result<_, _>>()?;
    let groups: Vec<String> = r
        .groups
        .iter()
        .map(|g| g.trim().to_ascii_lowercase())
        .collect();
    if let Some(g) = groups.iter().find(|g| !group_name_ok(g)) {
        return Err(format!(
            "malformed group name {g:?} (1-64 of a-z 0-9 _ - .)"
        ));
    }
    let users: Vec<String> = r.users.iter().map(|u| u.trim().to_lowercase()).collect();
    if let Some(u) = users.iter().find(|u| !u.contains('@')) {
        return Err(format!("users: {u:?} is not an email address"));
    }
    if matches!(policy, Policy::Bypass | Policy::Deny) && (!groups.is_empty() || !users.is_empty())
    {
        return Err(format!("{} cannot be limited to users or groups", r.policy));
    }
    Ok(Rule {
        index,
        hosts,
        paths,
        methods,
        policy,
        groups,
        users,
        api_tokens: r.api_tokens,
    })
}

impl Rules {
    /// Checks and compiles the configured rules; the error names the rule and the problem.
    pub fn compile(rules: &[AccessRule], default_policy: &str) -> Result<Rules, String> {
        let default_policy =
            Policy::parse(default_policy).map_err(|e| format!("default_policy: {e}"))?;
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile_rule(i, r).map_err(|e| format!("access_rules[{i}]: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Rules {
            rules,
            default_policy,
        })
    }

    /// Refuses everything: what a server runs with when its rules could not be compiled.
    pub fn deny_all() -> Rules {
        Rules {
            rules: Vec::new(),
            default_policy: Policy::Deny,
        }
    }

    /// The first rule matching the request, if any.
    pub fn find(&self, host: &str, path: &str, method: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(host, path, method))
    }
}

impl Rule {
    /// Whether host (lower case, no port), path (normalized) and method (upper case) match.
    pub fn matches(&self, host: &str, path: &str, method: &str) -> bool {
        self.hosts.iter().any(|h| match h {
            HostPattern::Any => true,
            HostPattern::Exact(e) => e == host,
            HostPattern::Subdomains(s) => host
                .strip_suffix(s.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }) && (self.paths.is_empty() || self.paths.iter().any(|p| glob(p, path)))
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
    }
}

/// Whether `text` matches `pattern` as a whole, `*` matching any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(hosts: &[&str], policy: &str) -> AccessRule {
        AccessRule {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            policy: policy.into(),
            ..Default::default()
        }
    }

    #[test]
    fn globs_match_whole_paths() {
        assert!(glob("/api/public/*", "/api/public/x/y"));
        assert!(glob("/api/public/*", "/api/public/"));
        assert!(!glob("/api/public/*", "/api/public"));
        assert!(!glob("/api/public/*", "/api/private/x"));
        assert!(glob("/exact", "/exact"));
        assert!(!glob("/exact", "/exact/more"));
        assert!(glob("/a/*/c", "/a/b/c"));
        assert!(!glob("/a/*/c", "/a/b/d"));
        assert!(glob("*.png", "/img/x.png"));
        assert!(glob("/a*a", "/aa"));
        assert!(!glob("/a*ab", "/ab"));
    }

    #[test]
    fn hosts_match_exactly_or_as_subdomains() {
        let rs = Rules::compile(
            &[rule(&["*.home.example", "Wiki.Other"], "one_factor")],
            "deny",
        )
        .unwrap();
        let r = &rs.rules[0];
        assert!(r.matches("app.home.example", "/", "GET"));
        assert!(r.matches("a.b.home.example", "/", "GET"));
        assert!(!r.matches("home.example", "/", "GET"));
        assert!(!r.matches("evilhome.example", "/", "GET"));
        assert!(!r.matches("home.example.evil", "/", "GET"));
        assert!(r.matches("wiki.other", "/", "GET"));
        let any = Rules::compile(&[rule(&["*"], "bypass")], "deny").unwrap();
        assert!(any.rules[0].matches("whatever.test", "/", "POST"));
    }

    #[test]
    fn paths_and_methods_narrow_a_rule_and_the_first_match_decides() {
        let mut public = rule(&["*.home.example"], "bypass");
        public.paths = vec!["/api/public/*".into()];
        public.methods = vec!["get".into(), "HEAD".into()];
        let rs =
            Rules::compile(&[public, rule(&["app.home.example"], "two_factor")], "deny").unwrap();
        let p = |h, path, m| rs.find(h, path, m).map(|r| r.policy);
        assert_eq!(
            p("app.home.example", "/api/public/x", "GET"),
            Some(Policy::Bypass)
        );
        assert_eq!(
            p("app.home.example", "/api/public/x", "POST"),
            Some(Policy::TwoFactor)
        );
        assert_eq!(p("app.home.example", "/", "GET"), Some(Policy::TwoFactor));
        assert_eq!(p("other.home.example", "/", "GET"), None);
        assert_eq!(rs.default_policy, Policy::Deny);
    }

    #[test]
    fn bad_rules_are_named() {
        let err = |rules: &[AccessRule], d: &str| Rules::compile(rules, d).unwrap_err();
        assert!(err(&[rule(&["a.example"], "maybe")], "deny")
            .contains("access_rules[0]: unknown policy \"maybe\""));
        assert!(err(&[], "open").contains("default_policy"));
        for bad in [
            "",
            "a..example",
            "foo*.example",
            "a.*.example",
            "http://a.example",
            "a.example:80",
            "a_b.example",
            "*.",
        ] {
            let e = err(
                &[rule(&["ok.example"], "bypass"), rule(&[bad], "deny")],
                "deny",
            );
            assert!(
                e.starts_with("access_rules[1]: malformed host pattern"),
                "{bad}: {e}"
            );
        }
        let mut r = rule(&["a.example"], "one_factor");
        r.paths = vec!["api/*".into()];
        assert!(err(&[r], "deny").contains("malformed path pattern"));
        let mut r = rule(&["a.example"], "bypass");
        r.groups = vec!["admins".into()];
        assert!(err(&[r], "deny").contains("cannot be limited"));
        let mut r = rule(&["a.example"], "one_factor");
        r.groups = vec!["Has Space".into()];
        assert!(err(&[r], "deny").contains("malformed group name"));
        assert!(err(&[rule(&[], "deny")], "deny").contains("hosts is missing"));
    }
}
