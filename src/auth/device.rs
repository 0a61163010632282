//! `slugbase.device` cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"):
//! a browser that once signed in to an account carries a keyed token naming that account, and
//! its failed passwords count against that device alone. An attacker who fills the account's
//! untrusted-client bucket then locks out only clients the owner never used.
//!
//! The value is `<user id>.<128-bit nonce>.<HMAC-SHA256 of both>`; the nonce names the
//! device's own failure bucket.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;

use super::session::random_token;
use crate::keys::hmac256;

/// One year, the cookie's lifetime.
pub const TTL_SECS: i64 = 365 * 24 * 3600;

fn mac(key: &[u8; 32], user_id: i64, nonce: &str) -> String {
    URL_SAFE_NO_PAD.encode(hmac256(key, format!("device|{user_id}|{nonce}").as_bytes()))
}

/// A new device cookie value for `user_id`.
pub fn issue(key: &[u8; 32], user_id: i64) -> String {
    let nonce = random_token(16);
    let tag = mac(key, user_id, &nonce);
    format!("{user_id}.{nonce}.{tag}")
}

/// The device's nonce when `value` is a genuine device cookie of `user_id`.
pub fn check(key: &[u8; 32], value: &str, user_id: i64) -> Option<String> {
    if value.len() > 200 {
        return None;
    }
    let mut parts = value.splitn(3, '.');
    let (uid, nonce, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if uid.parse::<i64>().ok()? != user_id {
        return None;
    }
    let expected = mac(key, user_id, nonce);
    bool::from(expected.as_bytes().ct_eq(tag.as_bytes())).then(|| nonce.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_to_key_and_account() {
        let k = [7u8; 32];
        let v = issue(&k, 42);
        let nonce = check(&k, &v, 42).unwrap();
        assert_eq!(nonce.len(), 22);
        assert_eq!(check(&k, &v, 43), None, "another account");
        assert_eq!(check(&[8u8; 32], &v, 42), None, "another key");
        let forged = v.replacen("42.", "43.", 1);
        assert_eq!(check(&k, &forged, 43), None, "relabelled");
        let mut tampered = v.clone();
        tampered.push('x');
        assert_eq!(check(&k, &tampered, 42), None);
        assert_eq!(check(&k, "garbage", 42), None);
    }
}
