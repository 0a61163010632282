//! Facts about the request itself: the client IP, the user agent and cross-site checks.

use std::net::IpAddr;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use rocket::http::Method;
use rocket::request::{FromRequest, Outcome};
use rocket::Request;

use crate::config::{Config, Origin};
use crate::state::App;

/// The authenticated user id of a request, for its log line (0 = none). Shared, so that a
/// credential resolved on a blocking thread can fill it in; the request-log fairing reads it.
#[derive(Default)]
pub struct LoggedUser(pub Arc<AtomicI64>);

/// The slot holding this request's user id for its log line.
pub fn user_slot(req: &Request<'_>) -> Arc<AtomicI64> {
    req.local_cache(LoggedUser::default).0.clone()
}

/// The key under which per-address limits count a client: the address itself, or for IPv6
/// its /64, since one host usually holds a whole /64 and could rotate through it.
pub fn limit_key(ip: Option<IpAddr>) -> Option<IpAddr> {
    ip.map(|ip| match ip {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    })
}

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

    /// A rate-limit key for the IP ([`limit_key`]: IPv6 by its /64).
    pub fn ip_key(&self) -> String {
        match limit_key(self.ip) {
            Some(IpAddr::V6(net)) => format!("{net}/64"),
            Some(ip) => ip.to_string(),
            None => "unknown".into(),
        }
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

fn is_unsafe(req: &Request<'_>) -> bool {
    matches!(
        req.method(),
        Method::Post | Method::Put | Method::Patch | Method::Delete
    )
}

/// Whether an unsafe request comes from another site: `Sec-Fetch-Site: cross-site`, or an
/// `Origin` that is not `public_url` (when set) or the host the request was sent to.
pub fn is_cross_site(req: &Request<'_>) -> bool {
    if !is_unsafe(req) {
        return false;
    }
    let h = req.headers();
    if h.get_one("Sec-Fetch-Site")
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return true;
    }
    let config = req.rocket().state::<App>().map(|a| &a.config);
    match h.get_one("Origin") {
        None => false,
        Some(origin) => !origin_allowed(origin, h.get_one("Host"), config),
    }
}

/// Whether an unsafe request fails to declare `Content-Type: application/json`. A page on
/// another site cannot send that type without a CORS preflight, so a cookie-authenticated
/// request without it is refused; this covers bodiless requests too, which a browser sends
/// with no type at all. (Routes with a JSON body refuse other types with 415 anyway.)
pub fn lacks_json_type(req: &Request<'_>) -> bool {
    is_unsafe(req) && !req.content_type().is_some_and(|c| c.is_json())
}

/// Whether an `Origin` header names this server: exactly `public_url` when it is set,
/// otherwise the `Host` the request was sent to.
fn origin_allowed(origin: &str, host: Option<&str>, config: Option<&Config>) -> bool {
    match config.filter(|c| c.public_url.is_some()) {
        Some(c) => Origin::parse(origin).is_ok_and(|o| o == c.public_origin()),
        None => {
            let authority = origin
                .split_once("://")
                .map(|(_, a)| a.trim_end_matches('/'));
            matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
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
        let untyped = client.post("/");
        assert!(lacks_json_type(untyped.inner()));
        assert!(!lacks_json_type(client.get("/").inner()));
        let typed = client.delete("/").header(rocket::http::ContentType::JSON);
        assert!(!lacks_json_type(typed.inner()));
    }

    #[test]
    fn origin_is_public_url_exactly_when_set() {
        let mut c = Config::default();
        assert!(origin_allowed("http://h:1", Some("h:1"), Some(&c)));
        c.public_url = Some("https://auth.example.com".into());
        assert!(origin_allowed(
            "https://auth.example.com",
            Some("x"),
            Some(&c)
        ));
        assert!(origin_allowed(
            "https://AUTH.example.com:443",
            None,
            Some(&c)
        ));
        assert!(!origin_allowed(
            "http://auth.example.com",
            Some("auth.example.com"),
            Some(&c)
        ));
        assert!(!origin_allowed(
            "https://auth.example.com:8443",
            None,
            Some(&c)
        ));
        assert!(!origin_allowed(
            "https://evil.example",
            Some("evil.example"),
            Some(&c)
        ));
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let k = |s: &str| limit_key(Some(s.parse().unwrap()));
        assert_eq!(k("2001:db8::1"), k("2001:db8::ffff:2"));
        assert_ne!(k("2001:db8::1"), k("2001:db8:0:1::1"));
        assert_eq!(k("192.0.2.1"), Some("192.0.2.1".parse().unwrap()));
        let info = ClientInfo {
            ip: Some("2001:db8::7".parse().unwrap()),
            user_agent: None,
        };
        assert_eq!(info.ip_key(), "2001:db8::/64");
    }
}
