//! The operator's OIDC commands: `user link-oidc`, `user unlink-oidc`, and the providers part
//! of `check`.

use crate::config::Config;
use crate::db::{oidc as repo, users};
use crate::mfa::service::cli_audit;
use crate::oidc::{self, config::ProviderConfig};
use crate::state::App;

fn provider<'a>(config: &'a Config, id: &str) -> Result<&'a ProviderConfig, String> {
    config
        .oidc_providers
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| format!("no provider {id:?} in oidc_providers"))
}

fn event(
    app: &App,
    conn: &rusqlite::Connection,
    uid: i64,
    name: &str,
    p: &str,
) -> Result<(), String> {
    let a = cli_audit();
    repo::record_event(
        conn,
        uid,
        name,
        Some(p),
        app.now(),
        a.ip.as_deref(),
        a.user_agent.as_deref(),
    )
    .map_err(|e| e.message)
}

/// Links the account `email` to `subject` at provider `id` (its configured issuer): the way
/// to let a password account sign in through a provider too.
pub(super) fn link(app: &App, email: &str, id: &str, subject: &str) -> Result<(), String> {
    let p = provider(&app.config, id)?;
    if subject.is_empty() || subject.len() > 255 {
        return Err("the subject must be 1 to 255 characters".into());
    }
    let conn = app.db.get().map_err(|e| e.to_string())?;
    let u = find(&conn, email)?;
    if let Some(other) = repo::user_for(&conn, id, &p.issuer, subject).map_err(|e| e.message)? {
        return Err(format!(
            "this identity is already linked to account {other}"
        ));
    }
    if !repo::link(&conn, u.id, id, &p.issuer, subject, app.now()).map_err(|e| e.message)? {
        return Err(format!(
            "{} is already linked to {id}; unlink it first",
            u.email
        ));
    }
    event(app, &conn, u.id, "oidc_linked", id)?;
    eprintln!("linked {} to {id}", u.email);
    Ok(())
}

/// Removes the account's link to provider `id`.
pub(super) fn unlink(app: &App, email: &str, id: &str) -> Result<(), String> {
    let conn = app.db.get().map_err(|e| e.to_string())?;
    let u = find(&conn, email)?;
    if !repo::unlink(&conn, u.id, id).map_err(|e| e.message)? {
        return Err(format!("{} is not linked to {id}", u.email));
    }
    event(app, &conn, u.id, "oidc_unlinked", id)?;
    eprintln!("unlinked {} from {id}", u.email);
    Ok(())
}

fn find(conn: &rusqlite::Connection, email: &str) -> Result<users::User, String> {
    let email = users::normalize_email(email).map_err(|e| e.message)?;
    users::record_by_email(conn, &email)
        .map_err(|e| e.message)?
        .map(|r| r.user)
        .ok_or_else(|| format!("no account with email {email}"))
}

/// Tries discovery for every provider and prints what it found and the redirect URI to
/// register. A provider that does not answer is reported, not an error: the server starts
/// without it and discovers it on first use.
pub(super) fn check(config: &Config) -> Result<(), String> {
    if config.oidc_providers.is_empty() {
        return Ok(());
    }
    let http = oidc::http_client()?;
    let rt = rocket::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    for p in &config.oidc_providers {
        let uri = oidc::redirect_uri(config, &p.id);
        match rt.block_on(oidc::discover(&http, p)) {
            Ok(m) => {
                let algs: Vec<String> = m
                    .id_token_signing_alg_values_supported()
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect();
                println!(
                    "oidc provider {}: discovery ok (issuer {}, {} signing keys, ID-token algorithms {}); redirect URI {uri}",
                    p.id,
                    m.issuer().as_str(),
                    m.jwks().keys().len(),
                    algs.join(", ")
                );
            }
            Err(e) => println!(
                "oidc provider {}: discovery FAILED ({e}); sign-in with it fails until it answers; redirect URI {uri}",
                p.id
            ),
        }
    }
    Ok(())
}
