//! HTTP routes, one module per resource.

pub mod account;
pub mod auth;
pub mod authz;
pub mod docs;
pub mod health;
pub mod mfa;
pub mod oidc;
pub mod probe;
pub mod tokens;

use rocket::Route;

use crate::auth::request::ClientInfo;
use crate::mfa::service::Audit;

/// Every API route, to be mounted at `/api`.
pub fn routes() -> Vec<Route> {
    let mut r = health::routes();
    r.extend(auth::routes());
    r.extend(account::routes());
    r.extend(mfa::routes());
    r.extend(tokens::routes());
    r.extend(probe::routes());
    r.extend(docs::routes());
    r.extend(authz::routes());
    r.extend(oidc::routes());
    r
}

/// The audit facts of a request.
pub fn audit(c: &ClientInfo) -> Audit {
    Audit {
        ip: c.ip_text(),
        user_agent: c.user_agent.clone(),
    }
}
