//! TOTP multi-factor authentication: the pure parts (TOTP, sealing, backup codes) and the
//! service that ties them to the database.

pub mod backup;
pub mod begin_limit;
pub mod seal;
pub mod service;
pub mod totp;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Characters left as they are in otpauth URL parts (RFC 3986 unreserved).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The Base32 (no padding) form of a secret, as authenticator apps take it.
pub fn secret_base32(secret: &[u8]) -> String {
    base32::encode(base32::Alphabet::Rfc4648 { padding: false }, secret)
}

/// `otpauth://totp/<Issuer>:<email>?secret=…&issuer=<Issuer>&algorithm=SHA1&digits=6&period=30`.
pub fn otpauth_url(issuer: &str, email: &str, secret: &[u8]) -> String {
    let i = utf8_percent_encode(issuer, COMPONENT).to_string();
    let e = utf8_percent_encode(email, COMPONENT);
    format!(
        "otpauth://totp/{i}:{e}?secret={}&issuer={i}&algorithm=SHA1&digits=6&period=30",
        secret_base32(secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otpauth_url_is_encoded() {
        let url = otpauth_url("Slug Base", "ann+x@example.com", &[0u8; 20]);
        assert_eq!(
            url,
            "otpauth://totp/Slug%20Base:ann%2Bx%40example.com?secret=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\
             &issuer=Slug%20Base&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(secret_base32(&[0xffu8; 20]).len(), 32);
    }
}
