//! ID-token validation (pure): signature against the provider's JWKS with an algorithm the
//! provider advertises and that is neither `none` nor an HMAC (which would be keyed with the
//! client secret, a key the provider is not the only holder of), then `iss`, `aud`, `azp`,
//! `exp`, `iat` and `nonce`. The checks are the `openidconnect` crate's.

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{ClaimsVerificationError, ClientId, IssuerUrl, JwsSigningAlgorithm, Nonce};

/// How far an ID token's `iat` may lie in the future (clock skew), seconds.
const IAT_SKEW: i64 = 300;
/// How old an ID token's `iat` may be, seconds: it was just issued for this sign-in.
const IAT_MAX_AGE: i64 = 600;

/// A verified identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `email`, when the token carried one.
    pub email: Option<String>,
    /// `email_verified` (false when absent).
    pub email_verified: bool,
    /// `name` or `preferred_username`, for a new account.
    pub name: Option<String>,
}

/// What an ID token must match.
pub struct Expect<'a> {
    /// This client's id (the audience).
    pub client_id: &'a str,
    /// The configured (and discovered) issuer.
    pub issuer: &'a IssuerUrl,
    /// The provider's keys.
    pub jwks: &'a CoreJsonWebKeySet,
    /// `id_token_signing_alg_values_supported` from discovery.
    pub advertised: &'a [CoreJwsSigningAlgorithm],
    /// The nonce sent with this sign-in.
    pub nonce: &'a str,
    /// Unix seconds now.
    pub now: i64,
}

/// The algorithms accepted: advertised, asymmetric, never `none`.
pub fn allowed_algs(advertised: &[CoreJwsSigningAlgorithm]) -> Vec<CoreJwsSigningAlgorithm> {
    advertised
        .iter()
        .filter(|a| !a.uses_shared_secret() && **a != CoreJwsSigningAlgorithm::None)
        .cloned()
        .collect()
}

fn time(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// Validates `token`; the error is a short reason for the log (never a claim's value).
pub fn verify(token: &CoreIdToken, e: &Expect<'_>) -> Result<Identity, &'static str> {
    let now = e.now;
    // A public-client verifier holds no client secret, so an HMAC-signed token has no key
    // to verify against and is refused even if the provider advertises HS256.
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(e.client_id.to_string()),
        e.issuer.clone(),
        e.jwks.clone(),
    )
    .set_allowed_algs(allowed_algs(e.advertised))
    .set_time_fn(move || time(now))
    .set_issue_time_verifier_fn(move |iat| {
        let iat = iat.timestamp();
        if iat > now + IAT_SKEW || iat < now - IAT_MAX_AGE {
            Err("iat out of range".into())
        } else {
            Ok(())
        }
    });
    let claims = token
        .claims(&verifier, &Nonce::new(e.nonce.to_string()))
        .map_err(|err| reason(&err))?;
    Ok(Identity {
        issuer: claims.issuer().to_string(),
        subject: claims.subject().to_string(),
        email: claims.email().map(|m| m.to_string()),
        email_verified: claims.email_verified().unwrap_or(false),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string())
            .or_else(|| claims.preferred_username().map(|u| u.to_string())),
    })
}

/// A fixed reason per kind of failure: the crate's messages may quote claim values.
fn reason(e: &ClaimsVerificationError) -> &'static str {
    match e {
        ClaimsVerificationError::Expired(_) => "expired",
        ClaimsVerificationError::InvalidAudience(_) => "audience",
        ClaimsVerificationError::InvalidIssuer(_) => "issuer",
        ClaimsVerificationError::InvalidNonce(_) => "nonce",
        ClaimsVerificationError::SignatureVerification(_) => "signature or algorithm",
        ClaimsVerificationError::InvalidSubject(_) => "subject",
        _ => "claims",
    }
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
