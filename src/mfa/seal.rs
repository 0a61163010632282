//! Sealing TOTP secrets at rest: AES-256-GCM, a random 96-bit nonce, the user id as
//! associated data, and a version byte so the format can change later.
//!
//! Layout: `0x01 || nonce (12) || ciphertext+tag`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

fn aad(user_id: i64) -> Vec<u8> {
    let mut a = b"slugbase:totp-secret:".to_vec();
    a.extend_from_slice(&user_id.to_be_bytes());
    a
}

/// Seals `secret` for `user_id`.
pub fn seal(key: &[u8; 32], user_id: i64, secret: &[u8]) -> Result<Vec<u8>, String> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: &aad(user_id),
            },
        )
        .map_err(|_| "sealing failed".to_string())?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens a sealed secret. Fails on any other version, key, user or a modified blob; there
/// is deliberately no fallback to reading the stored value as plaintext.
pub fn unseal(key: &[u8; 32], user_id: i64, sealed: &[u8]) -> Result<Vec<u8>, String> {
    match sealed.split_first() {
        Some((&VERSION, rest)) if rest.len() > NONCE_LEN => {
            let (nonce, ct) = rest.split_at(NONCE_LEN);
            Aes256Gcm::new(key.into())
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ct,
                        aad: &aad(user_id),
                    },
                )
                .map_err(|_| format!("cannot unseal the TOTP secret of user {user_id}"))
        }
        _ => Err(format!("unknown sealed-secret format for user {user_id}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = [9u8; 32];
        let s = seal(&key, 5, b"secret-bytes-20-long").unwrap();
        assert_eq!(s[0], 1);
        assert_eq!(unseal(&key, 5, &s).unwrap(), b"secret-bytes-20-long");
        // Copied to another user's row: refused.
        assert!(unseal(&key, 6, &s).is_err());
        // Another key: refused.
        assert!(unseal(&[8u8; 32], 5, &s).is_err());
        // Tampered: refused.
        let mut t = s.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert!(unseal(&key, 5, &t).is_err());
        // Plaintext in the column: refused, never used as is.
        assert!(unseal(&key, 5, b"JBSWY3DPEHPK3PXP").is_err());
        // Fresh nonce each time.
        assert_ne!(seal(&key, 5, b"x").unwrap(), seal(&key, 5, b"x").unwrap());
    }
}
