//! The `slugbase.oidc` cookie: what the callback needs from the start (state, nonce, PKCE
//! verifier, return URL), sealed with AES-256-GCM under its own derived key so the browser can
//! neither read nor change it, bound to the provider id and valid 10 minutes. Single use is
//! enforced by the database ([`crate::db::oidc::spend_state`]).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// The cookie name.
pub const COOKIE: &str = "slugbase.oidc";
/// How long a started sign-in may take at the provider, seconds.
pub const TTL: i64 = 600;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// What the start hands to the callback.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FlowState {
    /// Provider id.
    pub provider: String,
    /// The OAuth `state`.
    pub state: String,
    /// The OpenID `nonce`.
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
    /// Where to go afterwards (already checked by the return-URL rule).
    pub rd: Option<String>,
    /// Unix seconds after which the cookie is refused.
    pub exp: i64,
}

fn aad(provider: &str) -> Vec<u8> {
    format!("slugbase:oidc-state:{provider}").into_bytes()
}

/// Seals the state into a cookie value.
pub fn seal(key: &[u8; 32], st: &FlowState) -> Result<String, String> {
    let msg = serde_json::to_vec(st).map_err(|e| e.to_string())?;
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = Aes256Gcm::new(key.into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &msg,
                aad: &aad(&st.provider),
            },
        )
        .map_err(|_| "sealing failed".to_string())?;
    let mut out = vec![VERSION];
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// Opens the cookie for `provider` and checks it against the `state` the provider sent back
/// (constant time) and the clock. None for anything wrong: missing, tampered, another
/// provider's, expired or mismatched.
pub fn open(
    key: &[u8; 32],
    provider: &str,
    cookie: Option<&str>,
    state: Option<&str>,
    now: i64,
) -> Option<FlowState> {
    let raw = URL_SAFE_NO_PAD.decode(cookie?).ok()?;
    let (&v, rest) = raw.split_first()?;
    if v != VERSION || rest.len() <= NONCE_LEN {
        return None;
    }
    let (nonce, ct) = rest.split_at(NONCE_LEN);
    let msg = Aes256Gcm::new(key.into())
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: &aad(provider),
            },
        )
        .ok()?;
    let st: FlowState = serde_json::from_slice(&msg).ok()?;
    let same = bool::from(st.state.as_bytes().ct_eq(state?.as_bytes()));
    (same && st.provider == provider && now < st.exp).then_some(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st() -> FlowState {
        FlowState {
            provider: "idp".into(),
            state: "s1".into(),
            nonce: "n1".into(),
            verifier: "v1".into(),
            rd: None,
            exp: 1000,
        }
    }

    #[test]
    fn round_trip_and_every_refusal() {
        let k = [3u8; 32];
        let c = seal(&k, &st()).unwrap();
        assert_eq!(open(&k, "idp", Some(&c), Some("s1"), 999), Some(st()));
        // The random base64 may contain any short text; the sealed bytes never hold the JSON.
        let sealed = URL_SAFE_NO_PAD.decode(&c).unwrap();
        assert!(
            !sealed.windows(8).any(|w| w == b"verifier"),
            "sealed, not readable"
        );
        assert_eq!(open(&k, "idp", Some(&c), Some("s2"), 999), None, "mismatch");
        assert_eq!(open(&k, "idp", Some(&c), None, 999), None, "no state");
        assert_eq!(open(&k, "idp", None, Some("s1"), 999), None, "no cookie");
        assert_eq!(open(&k, "idp", Some(&c), Some("s1"), 1000), None, "expired");
        assert_eq!(
            open(&k, "other", Some(&c), Some("s1"), 999),
            None,
            "provider"
        );
        assert_eq!(
            open(&[4u8; 32], "idp", Some(&c), Some("s1"), 999),
            None,
            "key"
        );
        let mut raw = URL_SAFE_NO_PAD.decode(&c).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let t = URL_SAFE_NO_PAD.encode(raw);
        assert_eq!(open(&k, "idp", Some(&t), Some("s1"), 999), None, "tampered");
    }
}
