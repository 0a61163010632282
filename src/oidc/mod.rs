//! OpenID Connect sign-in: slugbase as the relying party of the operator's identity provider.
//!
//! - [`config`]: the `[[oidc_providers]]` entries and their start-up checks;
//! - [`Registry`] (here): the providers, the one outbound HTTP client and the discovery cache;
//! - [`state`]: the sealed, single-use `slugbase.oidc` cookie;
//! - [`token`]: ID-token validation (pure);
//! - [`flow`]: start and callback;
//! - [`account`]: which account a verified identity signs in to.
//!
//! The protocol (discovery, PKCE, JOSE) is the `openidconnect` crate's; nothing is hand-rolled.

pub mod account;
pub mod config;
pub mod flow;
pub mod state;
pub mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openidconnect::core::CoreProviderMetadata;
use openidconnect::{reqwest, IssuerUrl};
use serde::Serialize;

use self::config::ProviderConfig;

/// Time allowed for each request to a provider (discovery, token, userinfo).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Discovery documents (and their keys) are fetched again after this long, so that rotated
/// signing keys are picked up.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// Why a sign-in through a provider failed: the `?error=` code the page explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Missing, expired, reused or mismatched `state` (or cookie).
    StateInvalid,
    /// The provider could not be reached or answered nonsense.
    ProviderUnavailable,
    /// The provider answered with `error=…`.
    ProviderError,
    /// The ID token failed validation.
    TokenInvalid,
    /// An account with the email exists but is not linked (the operator links it).
    AccountNotLinked,
    /// No account for this identity, and sign-up is off or impossible.
    AccountNotFound,
}

impl Failure {
    /// The machine code.
    pub fn code(self) -> &'static str {
        match self {
            Failure::StateInvalid => "OIDC_STATE_INVALID",
            Failure::ProviderUnavailable => "OIDC_PROVIDER_UNAVAILABLE",
            Failure::ProviderError => "OIDC_PROVIDER_ERROR",
            Failure::TokenInvalid => "OIDC_TOKEN_INVALID",
            Failure::AccountNotLinked => "OIDC_ACCOUNT_NOT_LINKED",
            Failure::AccountNotFound => "OIDC_ACCOUNT_NOT_FOUND",
        }
    }
}

/// A provider as the page lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderInfo {
    /// Used in URLs.
    pub id: String,
    /// The button label.
    pub name: String,
}

/// The configured providers, the HTTP client for them and what discovery found.
pub struct Registry {
    providers: Vec<ProviderConfig>,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, Arc<CoreProviderMetadata>)>>,
}

/// The outbound HTTP client: rustls, a 10 s timeout, and no redirects followed, so that a
/// provider (or whoever answers at its address) cannot point slugbase at another host (SSRF).
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(HTTP_TIMEOUT)
        .user_agent(concat!("slugbase/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the OpenID HTTP client: {e}"))
}

impl Registry {
    /// The registry for checked providers (see [`config::resolve`]); nothing is fetched yet.
    pub fn new(providers: &[ProviderConfig]) -> Result<Registry, String> {
        Ok(Registry {
            providers: providers.to_vec(),
            http: http_client()?,
            cache: Mutex::default(),
        })
    }

    /// The provider with this id.
    pub fn provider(&self, id: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.id == id)
    }

    /// Every provider, in configuration order.
    pub fn list(&self) -> Vec<ProviderInfo> {
        self.providers
            .iter()
            .map(|p| ProviderInfo {
                id: p.id.clone(),
                name: p.name.clone(),
            })
            .collect()
    }

    /// The HTTP client for provider requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The provider's discovery document: cached, fetched on first use and again after a
    /// failure ([`Registry::forget`]) or [`DISCOVERY_TTL`].
    pub async fn metadata(&self, p: &ProviderConfig) -> Result<Arc<CoreProviderMetadata>, Failure> {
        if let Ok(cache) = self.cache.lock() {
            if let Some((at, m)) = cache.get(&p.id) {
                if at.elapsed() < DISCOVERY_TTL {
                    return Ok(m.clone());
                }
            }
        }
        let m = Arc::new(discover(&self.http, p).await.map_err(|e| {
            tracing::warn!(provider = %p.id, "OpenID discovery failed: {e}");
            Failure::ProviderUnavailable
        })?);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(p.id.clone(), (Instant::now(), m.clone()));
        }
        Ok(m)
    }

    /// Drops a provider's cached discovery, e.g. after a token its keys did not verify.
    pub fn forget(&self, id: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(id);
        }
    }
}

/// Fetches `<issuer>/.well-known/openid-configuration` and the JWKS it names. The crate
/// checks that the document's `issuer` is exactly the configured one.
pub async fn discover(
    http: &reqwest::Client,
    p: &ProviderConfig,
) -> Result<CoreProviderMetadata, String> {
    let issuer = IssuerUrl::new(p.issuer.clone()).map_err(|e| format!("bad issuer: {e}"))?;
    CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| error_chain(&e))
}

/// An error and its causes on one line (none of them holds a secret: these are transport
/// and parse errors).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The redirect URI to register at a provider: `<public_url>/api/auth/oidc/<id>/callback`.
pub fn redirect_uri(config: &crate::config::Config, id: &str) -> String {
    let o = config.public_origin();
    let default = if o.is_https() { 443 } else { 80 };
    let port = if o.port == default {
        String::new()
    } else {
        format!(":{}", o.port)
    };
    format!(
        "{}://{}{port}/api/auth/oidc/{id}/callback",
        o.scheme, o.host
    )
}
