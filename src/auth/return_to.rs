//! Where a person may be sent after signing in (`rd`): only back to slugbase itself or to an
//! app under the cookie domain, never an open redirect.

use crate::config::{Config, Origin};

/// `rd` when it may be followed after sign-in, normalized; None otherwise. It must be an
/// absolute http(s) URL without user info or backslashes, whose host is `public_url`'s host or
/// inside `cookie_domain` (when set), over https unless `public_url` itself is http. Anything
/// else (scheme-relative `//host`, `javascript:`, look-alike hosts, another port on an IP) is
/// refused.
pub fn safe_return(config: &Config, rd: &str) -> Option<String> {
    safe_return_for(&config.public_origin(), config.cookie_domain.as_deref(), rd)
}

/// [`safe_return`] with the settings spelled out (pure, for tests).
pub fn safe_return_for(public: &Origin, cookie_domain: Option<&str>, rd: &str) -> Option<String> {
    if rd.len() > 2048 || rd.chars().any(|c| c.is_control() || c == '\\' || c == ' ') {
        return None;
    }
    let (scheme, rest) = rd.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "https" => {}
        "http" if !public.is_https() => {}
        _ => return None,
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let origin = Origin::parse(&format!("{scheme}://{authority}")).ok()?;
    let host = origin.host.as_str();
    let same_host = host == public.host;
    let under_domain = cookie_domain.is_some_and(|d| {
        let d = d.trim_start_matches('.').to_ascii_lowercase();
        !host.starts_with('[')
            && host.parse::<std::net::Ipv4Addr>().is_err()
            && (host == d || host.ends_with(&format!(".{d}")))
    });
    if !(same_host || under_domain) {
        return None;
    }
    // An IP literal names one server: only slugbase's own port on it.
    let is_ip = host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok();
    if same_host && is_ip && origin.port != public.port {
        return None;
    }
    let tail = if tail.is_empty() { "/" } else { tail };
    if !tail.starts_with('/') && !tail.starts_with('?') && !tail.starts_with('#') {
        return None;
    }
    Some(format!("{scheme}://{authority}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> Origin {
        Origin::parse(s).unwrap()
    }

    #[test]
    fn only_own_host_or_cookie_domain() {
        let p = o("https://auth.home.example");
        let ok = |rd: &str| safe_return_for(&p, Some("home.example"), rd);
        assert_eq!(
            ok("https://app.home.example/x?y=1").as_deref(),
            Some("https://app.home.example/x?y=1")
        );
        assert_eq!(
            ok("https://auth.home.example").as_deref(),
            Some("https://auth.home.example/")
        );
        assert!(ok("https://home.example/").is_some());
        for bad in [
            "//evil.example",
            "/local/path",
            "https://home.example.evil.example/",
            "https://evil.example\\@app.home.example/",
            "https://evil.example@app.home.example/",
            "javascript:alert(1)",
            "http://app.home.example/",
            "https://evilhome.example/",
            "ftp://app.home.example/",
            "https://app.home.example\n.evil/",
        ] {
            assert_eq!(ok(bad), None, "{bad}");
        }
        // Without a cookie domain only slugbase's own host.
        assert_eq!(safe_return_for(&p, None, "https://app.home.example/"), None);
    }

    #[test]
    fn ip_hosts_keep_their_port_and_http_only_when_public_url_is() {
        let p = o("http://127.0.0.1:8000");
        let ok = |rd: &str| safe_return_for(&p, None, rd);
        assert!(ok("http://127.0.0.1:8000/").is_some());
        assert!(
            ok("http://127.0.0.1:9000/").is_none(),
            "another port on an IP"
        );
        assert!(ok("http://127.0.0.2:8000/").is_none());
        let p = o("https://auth.example");
        assert!(safe_return_for(&p, None, "http://auth.example/").is_none());
    }
}
