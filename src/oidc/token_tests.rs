//! ID-token failures a real provider will not produce, with tokens signed here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{
    CoreIdToken, CoreIdTokenClaims, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
    CoreRsaPrivateSigningKey,
};
use openidconnect::{
    Audience, EmptyAdditionalClaims, EndUserEmail, IssuerUrl, JsonWebKeyId, Nonce,
    PrivateSigningKey, StandardClaims, SubjectIdentifier,
};

use super::*;

const PEM: &str = include_str!("test_rsa.pem");
const NOW: i64 = 1_800_000_000;
const SECRET: &str = "the-client-secret-of-slugbase-xyz";

fn key() -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(PEM, Some(JsonWebKeyId::new("k1".into()))).unwrap()
}

fn issuer() -> IssuerUrl {
    IssuerUrl::new("https://id.example".into()).unwrap()
}

fn claims(aud: &str, nonce: &str, iat: i64, exp: i64) -> CoreIdTokenClaims {
    CoreIdTokenClaims::new(
        issuer(),
        vec![Audience::new(aud.into())],
        time(exp),
        time(iat),
        StandardClaims::new(SubjectIdentifier::new("sub-1".into()))
            .set_email(Some(EndUserEmail::new("ann@example.com".into())))
            .set_email_verified(Some(true)),
        EmptyAdditionalClaims {},
    )
    .set_nonce(Some(Nonce::new(nonce.into())))
}

fn rs256(c: CoreIdTokenClaims) -> CoreIdToken {
    CoreIdToken::new(
        c,
        &key(),
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .unwrap()
}

fn check(
    token: &CoreIdToken,
    advertised: &[CoreJwsSigningAlgorithm],
) -> Result<Identity, &'static str> {
    let jwks = CoreJsonWebKeySet::new(vec![key().as_verification_key()]);
    verify(
        token,
        &Expect {
            client_id: "slugbase",
            issuer: &issuer(),
            jwks: &jwks,
            advertised,
            nonce: "n-1",
            now: NOW,
        },
    )
}

const RS: &[CoreJwsSigningAlgorithm] = &[CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256];

/// A compact JWT with the given header and claims and a raw signature.
fn compact(header: &str, c: &CoreIdTokenClaims, sig: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(header);
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap());
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[test]
fn a_good_token_passes() {
    let id = check(&rs256(claims("slugbase", "n-1", NOW - 5, NOW + 300)), RS).unwrap();
    assert_eq!(id.subject, "sub-1");
    assert_eq!(id.issuer, "https://id.example");
    assert_eq!(id.email.as_deref(), Some("ann@example.com"));
    assert!(id.email_verified);
}

#[test]
fn wrong_nonce_audience_and_expired_are_refused() {
    let t = rs256(claims("slugbase", "n-other", NOW, NOW + 300));
    assert_eq!(check(&t, RS), Err("nonce"));
    let t = rs256(claims("another-client", "n-1", NOW, NOW + 300));
    assert_eq!(check(&t, RS), Err("audience"));
    let t = rs256(claims("slugbase", "n-1", NOW - 400, NOW - 1));
    assert_eq!(check(&t, RS), Err("expired"));
    let t = rs256(claims("slugbase", "n-1", NOW - 3600, NOW + 300));
    assert!(check(&t, RS).is_err(), "issued too long ago");
    // Another audience besides ours is not trusted either.
    let mut c = claims("slugbase", "n-1", NOW, NOW + 300);
    c = c.set_audiences(vec![
        Audience::new("slugbase".into()),
        Audience::new("x".into()),
    ]);
    assert!(check(&rs256(c), RS).is_err());
}

#[test]
fn an_algorithm_the_provider_does_not_advertise_is_refused() {
    let t = rs256(claims("slugbase", "n-1", NOW, NOW + 300));
    assert!(check(&t, &[CoreJwsSigningAlgorithm::EcdsaP256Sha256]).is_err());
}

#[test]
fn alg_none_is_refused() {
    let c = claims("slugbase", "n-1", NOW, NOW + 300);
    let raw = compact(r#"{"alg":"none"}"#, &c, b"");
    // Refused when parsed or when verified; never accepted.
    if let Ok(t) = serde_json::from_value::<CoreIdToken>(serde_json::Value::String(raw)) {
        let all = [CoreJwsSigningAlgorithm::None, RS[0].clone()];
        assert!(check(&t, &all).is_err());
    }
}

#[test]
fn hs256_keyed_with_the_client_secret_is_refused_even_when_advertised() {
    use hmac::{Hmac, Mac};
    let c = claims("slugbase", "n-1", NOW, NOW + 300);
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    let unsigned = compact(header, &c, b"");
    let input = unsigned.trim_end_matches('.');
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let raw = compact(header, &c, &mac.finalize().into_bytes());
    let t: CoreIdToken = serde_json::from_value(serde_json::Value::String(raw)).unwrap();
    let advertised = [RS[0].clone(), CoreJwsSigningAlgorithm::HmacSha256];
    assert_eq!(check(&t, &advertised), Err("signature or algorithm"));
    assert_eq!(allowed_algs(&advertised), vec![RS[0].clone()]);
}
