//! The one secret key and the keys derived from it with HKDF-SHA256.
//!
//! Operators back up a single 32-byte key; every purpose gets its own derived key so that a
//! leak of one (say, a JWT signing key in a log) says nothing about the others.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::config::Config;

/// Keys derived from the master secret, one per purpose.
#[derive(Clone)]
pub struct Keys {
    /// HS256 signing key for access and mfa_pending JWTs.
    pub jwt: [u8; 32],
    /// AES-256-GCM key sealing TOTP secrets at rest.
    pub seal: [u8; 32],
    /// HMAC key for `sb_` API token hashes.
    pub token: [u8; 32],
    /// HMAC key for session id hashes.
    pub session: [u8; 32],
    /// HMAC key for backup code hashes.
    pub backup: [u8; 32],
    /// HMAC key of `slugbase.device` cookies.
    pub device: [u8; 32],
    /// AES-256-GCM key sealing `slugbase.oidc` cookies, and HMAC key of spent OIDC states.
    pub oidc: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// Derives every purpose key from the 32-byte master secret.
    pub fn derive(master: &[u8; 32]) -> Keys {
        let hk = Hkdf::<Sha256>::new(Some(b"slugbase-v1"), master);
        let get = |label: &str| {
            let mut out = [0u8; 32];
            // 32 bytes is far below HKDF-SHA256's 8160-byte output limit, so this cannot fail.
            let _ = hk.expand(label.as_bytes(), &mut out);
            out
        };
        Keys {
            jwt: get("jwt-signing"),
            seal: get("totp-secret-sealing"),
            token: get("api-token-hash"),
            session: get("session-id-hash"),
            backup: get("backup-code-hash"),
            device: get("device-cookie"),
            oidc: get("oidc-state-cookie"),
        }
    }

    /// A 64-byte key for Rocket's `secret_key`, so that Rocket never generates or demands one.
    pub fn rocket_secret(master: &[u8; 32]) -> Vec<u8> {
        let hk = Hkdf::<Sha256>::new(Some(b"slugbase-v1"), master);
        let mut out = vec![0u8; 64];
        let _ = hk.expand(b"rocket-secret-key", &mut out);
        out
    }
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac256(key: &[u8; 32], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so new_from_slice cannot fail here.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Decodes a base64 key and insists on exactly 32 bytes.
pub fn decode_key(text: &str, source: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| format!("{source} is not valid base64"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "{source} must be base64 of exactly 32 bytes, got {} bytes",
            bytes.len()
        )
    })
}

/// Loads the master secret: `secret_key` from the configuration, else the key file, which is
/// created (mode 0600) on first start.
pub fn load_master(config: &Config) -> Result<[u8; 32], String> {
    if let Some(k) = &config.secret_key {
        return decode_key(k, "SLUGBASE_SECRET_KEY (secret_key)");
    }
    let path = config.key_path();
    if path.exists() {
        let text = fs::read_to_string(&path)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
        return decode_key(&text, &format!("key file {}", path.display()));
    }
    create_key_file(&path)
}

fn create_key_file(path: &Path) -> Result<[u8; 32], String> {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create key file {}: {e}", path.display()))?;
    f.write_all(format!("{}\n", STANDARD.encode(key)).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write key file {}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), "created a new secret key file; back it up");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_and_are_stable() {
        let a = Keys::derive(&[7u8; 32]);
        let b = Keys::derive(&[7u8; 32]);
        assert_eq!(a.jwt, b.jwt);
        let all = [
            a.jwt, a.seal, a.token, a.session, a.backup, a.device, a.oidc,
        ];
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j]);
            }
        }
        assert_ne!(Keys::derive(&[8u8; 32]).jwt, a.jwt);
    }

    #[test]
    fn decode_key_checks_length() {
        assert!(decode_key(&STANDARD.encode([1u8; 32]), "k").is_ok());
        let e = decode_key(&STANDARD.encode([1u8; 16]), "k").unwrap_err();
        assert!(e.contains("16 bytes"), "{e}");
        assert!(decode_key("!!!", "k").is_err());
    }
}
