//! The state every request shares.

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::keys::Keys;
use crate::limits::AddressLimiter;

/// Shared application state, managed by Rocket; cheap to clone into blocking tasks.
#[derive(Clone)]
pub struct App(Arc<Inner>);

/// What [`App`] holds.
pub struct Inner {
    /// The database pool.
    pub db: Db,
    /// Derived keys.
    pub keys: Keys,
    /// Settings.
    pub config: Config,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// An argon2id hash of a random password, verified against when an account does not exist
    /// or has no password, so that such logins take as long as real ones.
    pub dummy_hash: String,
    /// The first-run setup token while no account exists.
    pub setup_token: Mutex<Option<String>>,
    /// The enrollment-begin limiter's per-address windows (the per-user ones are in the
    /// database).
    pub begin_limiter: AddressLimiter,
    /// OpenID providers and their discovery cache.
    pub oidc: crate::oidc::Registry,
}

impl App {
    /// Wraps the state.
    pub fn new(inner: Inner) -> App {
        App(Arc::new(inner))
    }
}

impl Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    /// Unix seconds now.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}
