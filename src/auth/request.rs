//! Facts about the request itself: the client IP, the user agent and cross-site checks.

use std::net::IpAddr;

use rocket::http::Method;
use rocket::request::{FromRequest, Outcome};
use rocket::Request;

use crate::state::App;

/// Who is calling, as far as audit and rate limits care.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client IP: the socket peer, or the `X-Forwarded-For` hop before the trusted
    /// proxies when the peer is one of them.
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header, truncated.
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// The IP as text, for storage.
    pub fn ip_text(&self) -> Option<String> {
        self.ip.map(|i| i.to_string())
    }

    /// A rate-limit key for the IP.
    pub fn ip_key(&self) -> String {
        self.ip_text().unwrap_or_else(|| "unknown".into())
    }
}

/// The client IP, believing `X-Forwarded-For` only from trusted proxies.
pub fn client_ip(req: &Request<'_>, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.remote()?.ip().to_canonical();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = req
        .headers()
        .get("X-Forwarded-For")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut ip = peer;
    // Walk back from the nearest hop; the first address not ours is the client.
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(parsed) => {
                ip = parsed.to_canonical();
                if !trusted.contains(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(ip)
}

/// Builds the client info for a request.
pub fn client_info(req: &Request<'_>) -> ClientInfo {
    let trusted = req
        .rocket()
        .state::<App>()
        .map(|a| a.config.trusted_proxies.as_slice())
        .unwrap_or(&[]);
    ClientInfo {
        ip: client_ip(req, trusted),
        user_agent: req
            .headers()
            .get_one("User-Agent")
            .map(|s| s.chars().take(256).collect()),
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientInfo {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        Outcome::Success(req.local_cache(|| client_info(req)).clone())
    }
}

/// Whether an unsafe request comes from another site: `Sec-Fetch-Site: cross-site`, or an
/// `Origin` whose host is not the one the request was sent to.
pub fn is_cross_site(req: &Request<'_>) -> bool {
    if !matches!(
        req.method(),
        Method::Post | Method::Put | Method::Patch | Method::Delete
    ) {
        return false;
    }
    let h = req.headers();
    if h.get_one("Sec-Fetch-Site")
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return true;
    }
    match h.get_one("Origin") {
        None => false,
        Some(origin) => {
            let authority = origin
                .split_once("://")
                .map(|(_, a)| a.trim_end_matches('/'));
            match (authority, h.get_one("Host")) {
                (Some(a), Some(host)) => !a.eq_ignore_ascii_case(host),
                _ => true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::local::blocking::Client;

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let client = Client::debug_with(vec![]).unwrap();
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let mut req = client.get("/");
        req.set_remote("10.0.0.1:5000".parse().unwrap());
        req.add_header(rocket::http::Header::new(
            "X-Forwarded-For",
            "203.0.113.9, 10.0.0.1",
        ));
        assert_eq!(
            client_ip(req.inner(), &[proxy]),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(client_ip(req.inner(), &[]), Some(proxy));
    }

    #[test]
    fn cross_site_rules() {
        let client = Client::debug_with(vec![]).unwrap();
        let req = |origin: Option<&str>, site: Option<&str>| {
            let mut r = client
                .post("/")
                .header(rocket::http::Header::new("Host", "127.0.0.1:8000"));
            if let Some(o) = origin {
                r.add_header(rocket::http::Header::new("Origin", o.to_string()));
            }
            if let Some(s) = site {
                r.add_header(rocket::http::Header::new("Sec-Fetch-Site", s.to_string()));
            }
            is_cross_site(r.inner())
        };
        assert!(!req(None, None));
        assert!(!req(Some("http://127.0.0.1:8000"), Some("same-origin")));
        assert!(req(Some("https://evil.example"), None));
        assert!(req(Some("null"), None));
        assert!(req(None, Some("cross-site")));
    }
}
