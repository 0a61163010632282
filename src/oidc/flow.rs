//! The authorization code flow with PKCE: the start (redirect to the provider) and the
//! callback (state, code exchange, ID token, account, session or second step).

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreProviderMetadata,
    CoreUserInfoClaims,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, SubjectIdentifier,
    TokenResponse,
};

use super::account::{self, Resolution};
use super::config::ProviderConfig;
use super::state::{self, FlowState};
use super::token::{self, Expect, Identity};
use super::{redirect_uri, Failure};
use crate::auth::login::pending_token;
use crate::auth::request::ClientInfo;
use crate::auth::session::{self, NewSession};
use crate::db::{oidc as repo, sessions};
use crate::error::ApiResult;
use crate::keys::hmac256;
use crate::state::App;

/// Where the start sends the browser, and the cookie it sets.
pub struct Started {
    /// The provider's authorization URL.
    pub location: String,
    /// The sealed `slugbase.oidc` value.
    pub cookie: String,
}

fn client(
    app: &App,
    p: &ProviderConfig,
    meta: &CoreProviderMetadata,
) -> Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    Failure,
> {
    let redirect =
        RedirectUrl::new(redirect_uri(&app.config, &p.id)).map_err(|_| Failure::StateInvalid)?;
    let secret = p
        .client_secret
        .as_ref()
        .map(|s| ClientSecret::new(s.0.clone()));
    // client_secret_basic first (also when discovery names no method: it is the default),
    // client_secret_post when that is all the provider takes.
    let methods = meta.token_endpoint_auth_methods_supported();
    let post_only = methods.is_some_and(|m| {
        !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
            && m.contains(&CoreClientAuthMethod::ClientSecretPost)
    });
    let auth = if post_only {
        AuthType::RequestBody
    } else {
        AuthType::BasicAuth
    };
    Ok(
        CoreClient::from_provider_metadata(
            meta.clone(),
            ClientId::new(p.client_id.clone()),
            secret,
        )
        .set_redirect_uri(redirect)
        .set_auth_type(auth),
    )
}

/// Starts a sign-in at provider `p`: a fresh state, nonce and PKCE (S256) verifier sealed
/// into the cookie with `rd` (when it passes the return-URL rule), and the URL to send the
/// browser to.
pub async fn start(app: &App, p: &ProviderConfig, rd: Option<&str>) -> Result<Started, Failure> {
    let meta = app.oidc.metadata(p).await?;
    let client = client(app, p, &meta)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scopes(
            p.scopes
                .iter()
                .filter(|s| *s != "openid")
                .map(|s| Scope::new(s.clone())),
        )
        .set_pkce_challenge(challenge)
        .url();
    let st = FlowState {
        provider: p.id.clone(),
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        rd: rd.and_then(|r| crate::auth::return_to::safe_return(&app.config, r)),
        exp: app.now() + state::TTL,
    };
    let cookie = state::seal(&app.keys.oidc, &st).map_err(|_| Failure::StateInvalid)?;
    Ok(Started {
        location: url.to_string(),
        cookie,
    })
}

/// The callback's query.
#[derive(Debug, Default)]
pub struct Callback {
    /// The authorization code.
    pub code: Option<String>,
    /// The state sent at the start.
    pub state: Option<String>,
    /// The provider's error code (e.g. `access_denied`).
    pub error: Option<String>,
    /// The issuer of the answer (RFC 9207), when the provider sends it.
    pub iss: Option<String>,
}

/// How a successful callback ends.
pub enum Done {
    /// Signed in.
    Session(NewSession),
    /// MFA is on: the `mfa_pending` JWT for `POST /api/auth/mfa/verify`.
    Mfa(String),
}

/// The browser's side of a callback.
pub struct Request {
    /// The `slugbase.oidc` cookie.
    pub cookie: Option<String>,
    /// The caller.
    pub client: ClientInfo,
    /// Credentials the browser still holds, ended by the new sign-in.
    pub presented: (Option<Vec<u8>>, Option<String>),
}

/// Finishes a sign-in at provider `p`; Ok((outcome, rd)), or the failure for the page.
pub async fn callback(
    app: &App,
    p: &ProviderConfig,
    q: Callback,
    req: Request,
) -> ApiResult<Result<(Done, Option<String>), Failure>> {
    let out = match verified_identity(app, p, &q, &req).await? {
        Ok((id, st)) => sign_in(app, p, id, req.client.clone(), req.presented.clone())
            .await?
            .map(|d| (d, st.rd)),
        Err(f) => Err(f),
    };
    if let Err(f) = out {
        tracing::warn!(provider = %p.id, code = f.code(), ip = ?req.client.ip_text(), "OpenID sign-in failed");
    }
    Ok(out)
}

/// Steps 1-3: the state (once), the code exchange and the ID token (plus userinfo when the
/// token carries no email).
async fn verified_identity(
    app: &App,
    p: &ProviderConfig,
    q: &Callback,
    req: &Request,
) -> ApiResult<Result<(Identity, FlowState), Failure>> {
    let now = app.now();
    let Some(st) = state::open(
        &app.keys.oidc,
        &p.id,
        req.cookie.as_deref(),
        q.state.as_deref(),
        now,
    ) else {
        return Ok(Err(Failure::StateInvalid));
    };
    let hash = hmac256(&app.keys.oidc, st.state.as_bytes());
    let exp = st.exp;
    if !app
        .db
        .write(move |tx| repo::spend_state(tx, &hash, exp))
        .await?
    {
        return Ok(Err(Failure::StateInvalid));
    }
    // RFC 9207: an answer naming another issuer is a mix-up, whatever else it says.
    if q.iss.as_deref().is_some_and(|iss| iss != p.issuer) {
        return Ok(Err(Failure::ProviderError));
    }
    if let Some(e) = &q.error {
        let e: String = e
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        tracing::info!(provider = %p.id, error = %e, "the provider answered with an error");
        return Ok(Err(Failure::ProviderError));
    }
    let Some(code) = q.code.clone() else {
        return Ok(Err(Failure::ProviderError));
    };
    Ok(exchange(app, p, code, &st).await.map(|id| (id, st)))
}

async fn exchange(
    app: &App,
    p: &ProviderConfig,
    code: String,
    st: &FlowState,
) -> Result<Identity, Failure> {
    let meta = app.oidc.metadata(p).await?;
    let client = client(app, p, &meta)?;
    let http = app.oidc.http();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|_| Failure::ProviderUnavailable)?
        .set_pkce_verifier(PkceCodeVerifier::new(st.verifier.clone()))
        .request_async(http)
        .await
        .map_err(|e| match e {
            RequestTokenError::ServerResponse(r) => {
                tracing::info!(provider = %p.id, error = %r.error(), "the token endpoint refused the code");
                Failure::ProviderError
            }
            RequestTokenError::Parse(..) => Failure::TokenInvalid,
            _ => {
                app.oidc.forget(&p.id);
                Failure::ProviderUnavailable
            }
        })?;
    let id_token = tokens.id_token().ok_or(Failure::TokenInvalid)?;
    let expect = Expect {
        client_id: &p.client_id,
        issuer: meta.issuer(),
        jwks: meta.jwks(),
        advertised: meta.id_token_signing_alg_values_supported(),
        nonce: &st.nonce,
        now: app.now(),
    };
    let mut id = token::verify(id_token, &expect).map_err(|why| {
        tracing::warn!(provider = %p.id, reason = why, "ID token refused");
        // The keys may have rotated: discover again next time.
        app.oidc.forget(&p.id);
        Failure::TokenInvalid
    })?;
    if id.email.is_none() {
        let req = client
            .user_info(
                tokens.access_token().clone(),
                Some(SubjectIdentifier::new(id.subject.clone())),
            )
            .map_err(|_| Failure::TokenInvalid)?;
        let info: CoreUserInfoClaims = req.request_async(http).await.map_err(|_| {
            // The error may quote the provider's answer; the kind of failure is enough here.
            tracing::warn!(provider = %p.id, "the userinfo request failed");
            Failure::ProviderUnavailable
        })?;
        id.email = info.email().map(|e| e.to_string());
        id.email_verified = info.email_verified().unwrap_or(false);
        if id.name.is_none() {
            id.name = info
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string())
                .or_else(|| info.preferred_username().map(|u| u.to_string()));
        }
    }
    Ok(id)
}

/// Steps 4-5: the account, the audit events, and a session or the second step.
async fn sign_in(
    app: &App,
    p: &ProviderConfig,
    id: Identity,
    client: ClientInfo,
    presented: (Option<Vec<u8>>, Option<String>),
) -> ApiResult<Result<Done, Failure>> {
    let (a, p) = (app.clone(), p.clone());
    app.db
        .write(move |tx| {
            let now = a.now();
            let (ip, ua) = (client.ip_text(), client.user_agent.clone());
            let event = |uid: i64, name: &str, detail: Option<&str>| {
                repo::record_event(tx, uid, name, detail, now, ip.as_deref(), ua.as_deref())
            };
            let user = match account::resolve(tx, &p, &id, now)? {
                Resolution::Found(u) => u,
                Resolution::Linked(u) | Resolution::Created(u) => {
                    event(u.id, "oidc_linked", Some(&p.id))?;
                    u
                }
                Resolution::NotLinked(uid) => {
                    let f = Failure::AccountNotLinked;
                    event(uid, "oidc_failure", Some(f.code()))?;
                    return Ok(Err(f));
                }
                Resolution::NotFound => return Ok(Err(Failure::AccountNotFound)),
            };
            event(user.id, "oidc_login", Some(&p.id))?;
            sessions::revoke_presented(tx, presented.0.as_deref(), presented.1.as_deref())?;
            if user.mfa_enabled {
                return Ok(Ok(Done::Mfa(pending_token(&a, tx, user.id, now)?)));
            }
            let s = session::create(&a, tx, user.id, now, false, &client)?;
            Ok(Ok(Done::Session(s)))
        })
        .await
}
