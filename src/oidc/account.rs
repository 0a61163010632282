//! Which account a verified identity signs in to (blocking: runs in a write transaction).

use rusqlite::Connection;

use super::config::ProviderConfig;
use super::token::Identity;
use crate::db::oidc as repo;
use crate::db::users::{self, User};
use crate::error::ApiError;

/// The outcome of looking an identity up.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// Already linked.
    Found(User),
    /// An OIDC-only account with this verified email, linked now.
    Linked(User),
    /// A new OIDC-only account (sign-up), linked.
    Created(User),
    /// An account with this email exists but may not be linked automatically (it has a
    /// password, or another identity already); the operator links it with the CLI.
    NotLinked(i64),
    /// No account, and sign-up is off or the email is not verified.
    NotFound,
}

/// Resolves an identity, in this order: the linked identity (provider id, issuer, sub); an
/// OIDC-only account without any identity whose email equals the verified email (linked);
/// a password account with the email is never linked; sign-up with a verified email when the
/// provider allows it; otherwise not found.
pub fn resolve(
    tx: &Connection,
    p: &ProviderConfig,
    id: &Identity,
    now: i64,
) -> Result<Resolution, ApiError> {
    if let Some(uid) = repo::user_for(tx, &p.id, &id.issuer, &id.subject)? {
        return match users::record_by_id(tx, uid)? {
            Some(r) => Ok(Resolution::Found(r.user)),
            None => Ok(Resolution::NotFound),
        };
    }
    let email = id
        .email
        .as_deref()
        .and_then(|e| users::normalize_email(e).ok());
    let Some(email) = email else {
        return Ok(Resolution::NotFound);
    };
    if let Some(rec) = users::record_by_email(tx, &email)? {
        let linkable = rec.password_hash.is_none() && !repo::has_identity(tx, rec.user.id)?;
        if !linkable {
            return Ok(Resolution::NotLinked(rec.user.id));
        }
        if !id.email_verified {
            return Ok(Resolution::NotFound);
        }
        if !repo::link(tx, rec.user.id, &p.id, &id.issuer, &id.subject, now)? {
            return Ok(Resolution::NotLinked(rec.user.id));
        }
        return Ok(Resolution::Linked(rec.user));
    }
    if !(p.signup && id.email_verified) {
        return Ok(Resolution::NotFound);
    }
    let fallback = email.split('@').next().unwrap_or("user").to_string();
    let name = id
        .name
        .as_deref()
        .and_then(|n| users::normalize_name(n).ok())
        .unwrap_or_else(|| users::normalize_name(&fallback).unwrap_or(fallback));
    let user = users::create(tx, &email, &name, false, None, now)?;
    repo::link(tx, user.id, &p.id, &id.issuer, &id.subject, now)?;
    Ok(Resolution::Created(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut c).unwrap();
        c
    }

    fn provider(signup: bool) -> ProviderConfig {
        ProviderConfig {
            id: "idp".into(),
            name: "IdP".into(),
            issuer: "https://id.example".into(),
            client_id: "c".into(),
            client_secret: None,
            client_secret_file: None,
            scopes: vec!["openid".into()],
            signup,
        }
    }

    fn ident(sub: &str, email: &str, verified: bool) -> Identity {
        Identity {
            issuer: "https://id.example".into(),
            subject: sub.into(),
            email: Some(email.into()),
            email_verified: verified,
            name: Some("Ann".into()),
        }
    }

    #[test]
    fn the_rules_in_order() {
        let c = db();
        let oidc = users::create(&c, "o@example.com", "O", false, None, 1).unwrap();
        let pw = users::create(&c, "p@example.com", "P", false, Some("$argon2id$x"), 1).unwrap();
        let (p, on) = (provider(false), provider(true));
        // Unverified: not linked.
        let r = resolve(&c, &p, &ident("s1", "o@example.com", false), 2).unwrap();
        assert_eq!(r, Resolution::NotFound);
        // Verified: linked, then found by sub even with another email.
        let r = resolve(&c, &p, &ident("s1", "O@Example.com", true), 2).unwrap();
        assert!(matches!(r, Resolution::Linked(u) if u.id == oidc.id));
        let r = resolve(&c, &p, &ident("s1", "changed@example.com", false), 2).unwrap();
        assert!(matches!(r, Resolution::Found(u) if u.id == oidc.id));
        // Another sub with the same email cannot take the linked account over.
        let r = resolve(&c, &p, &ident("s9", "o@example.com", true), 2).unwrap();
        assert_eq!(r, Resolution::NotLinked(oidc.id));
        // A password account is never linked, sign-up or not.
        let r = resolve(&c, &on, &ident("s2", "p@example.com", true), 2).unwrap();
        assert_eq!(r, Resolution::NotLinked(pw.id));
        // Sign-up off, then on (verified only).
        let r = resolve(&c, &p, &ident("s3", "new@example.com", true), 2).unwrap();
        assert_eq!(r, Resolution::NotFound);
        let r = resolve(&c, &on, &ident("s3", "new@example.com", false), 2).unwrap();
        assert_eq!(r, Resolution::NotFound);
        let r = resolve(&c, &on, &ident("s3", "new@example.com", true), 2).unwrap();
        let Resolution::Created(u) = r else {
            panic!("{r:?}")
        };
        assert!(!u.has_password);
        assert_eq!(u.name, "Ann");
        let r = resolve(&c, &on, &ident("s3", "new@example.com", true), 3).unwrap();
        assert!(matches!(r, Resolution::Found(f) if f.id == u.id));
    }
}
