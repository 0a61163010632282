//! TOTP multi-factor authentication: the pure parts (TOTP, sealing, backup codes) and the
//! service that ties them to the database.

pub mod backup;
pub mod begin_limit;
pub mod code_error;
pub mod seal;
pub mod service;
pub mod signin;
mod step_up;
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

/// `otpauth://totp/<Issuer>:<email>?secret=…&issuer=<Issuer>`. SHA-1, 6 digits and 30
/// seconds are what every app assumes when the URL leaves them out, and leaving them out makes
/// the QR code less dense.
pub fn otpauth_url(issuer: &str, email: &str, secret: &[u8]) -> String {
    let i = utf8_percent_encode(issuer, COMPONENT).to_string();
    let e = utf8_percent_encode(email, COMPONENT);
    format!(
        "otpauth://totp/{i}:{e}?secret={}&issuer={i}",
        secret_base32(secret)
    )
}

/// The side, in CSS pixels, the QR code aims at (quiet zone included).
const QR_TARGET_PX: u32 = 232;

/// Whole pixels per module for a code `modules` wide plus its 4-module quiet zones, so that
/// every module is drawn the same size.
pub fn qr_module_px(modules: u32) -> u32 {
    (QR_TARGET_PX / (modules + 8)).max(2)
}

/// An SVG QR code of `url` whose modules are whole pixels (the page shows it at its own size).
pub fn qr_svg(url: &str) -> Result<String, qrcode::types::QrError> {
    let code = qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M)?;
    let px = qr_module_px(code.width() as u32);
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .module_dimensions(px, px)
        .quiet_zone(true)
        .build())
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
             &issuer=Slug%20Base"
        );
        assert_eq!(secret_base32(&[0xffu8; 20]).len(), 32);
    }

    #[test]
    fn qr_modules_are_whole_pixels() {
        let url = otpauth_url("SlugBase", "ann@example.com", &[7u8; 20]);
        let svg = qr_svg(&url).unwrap();
        let code = qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M)
            .unwrap();
        let px = qr_module_px(code.width() as u32);
        let side = (code.width() as u32 + 8) * px;
        assert!(
            svg.contains(&format!("width=\"{side}\" height=\"{side}\"")),
            "{svg}"
        );
        assert!(svg.contains("crispEdges"));
        assert!((180..=232).contains(&side), "{side}");
    }
}
