//! HS256 JWTs: `access` tokens (bound to a live session by `sid`) and short-lived
//! `mfa_pending` tokens (bound to a login challenge by `jti`).

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims slugbase signs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Session handle (access tokens): random, never a row id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Challenge id (mfa_pending tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// `access` or `mfa_pending`.
    pub typ: String,
}

/// The `typ` of access tokens.
pub const ACCESS: &str = "access";
/// The `typ` of second-step tokens.
pub const MFA_PENDING: &str = "mfa_pending";

/// Signs claims with HS256.
pub fn sign(key: &[u8; 32], claims: &Claims) -> Result<String, String> {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key),
    )
    .map_err(|e| format!("cannot sign JWT: {e}"))
}

/// Verifies an HS256 token of the wanted `typ` that has not expired at `now`. Only HS256 is
/// accepted, so `alg: none` and algorithm swaps fail.
pub fn verify(key: &[u8; 32], token: &str, typ: &str, now: i64) -> Option<Claims> {
    let mut v = Validation::new(Algorithm::HS256);
    // Expiry is checked below against the injected clock, not the library's system clock.
    v.validate_exp = false;
    v.required_spec_claims.clear();
    let claims = decode::<Claims>(token, &DecodingKey::from_secret(key), &v)
        .ok()?
        .claims;
    (claims.typ == typ && claims.exp > now).then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(typ: &str, exp: i64) -> Claims {
        Claims {
            sub: "1".into(),
            sid: Some("h".into()),
            jti: None,
            iat: 100,
            exp,
            typ: typ.into(),
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let k = [3u8; 32];
        let t = sign(&k, &claims(ACCESS, 200)).unwrap();
        assert_eq!(verify(&k, &t, ACCESS, 150), Some(claims(ACCESS, 200)));
        assert_eq!(verify(&k, &t, ACCESS, 200), None, "expired");
        assert_eq!(verify(&k, &t, MFA_PENDING, 150), None, "wrong typ");
        assert_eq!(verify(&[4u8; 32], &t, ACCESS, 150), None, "other key");
        assert_eq!(verify(&k, "garbage", ACCESS, 150), None);
    }
}
