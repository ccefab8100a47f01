//! Who a connecting client is: the login every adapter's handshake runs, protocol-neutral.
//!
//! The flow: a client that sent a non-empty user name is checked with its password (argon2, on
//! Tokio's blocking pool, never on a runtime worker); one that sent none logs in as its verified
//! TLS client certificate's common name when the adapter allows certificate logins, else as the
//! configured anonymous user, else is refused. Each adapter maps a [`LoginError`] onto its own
//! refusal (CONNACK code, ERROR frame); the refused login itself is logged here, with its cause.
//!
//! Invariants:
//! - An empty user name counts as none (MQTT's empty `username`, STOMP's empty `login`).
//! - Logins without a password still obey the loopback rule ([`Users::principal_without_password`]).
//! - What the client may be told is [`LoginError`]'s `Display`; the cause of a refused login is
//!   kept for the logs in [`AuthError::refusal`].
//! - Passwords are checked on [`password_pool`]'s few threads, never on the async workers nor
//!   on Tokio's blocking pool: argon2 is memory-hard, and the number of checks in flight bounds
//!   the memory logins can take.

use std::net::IpAddr;
use std::sync::Arc;

use mqgate_core::auth::{AuthError, Principal, Users};
use mqgate_core::names::UserName;

use crate::password_pool;

/// The user name and password a client sent.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user name (empty: no login).
    pub user: String,
    /// The password.
    pub password: String,
}

/// What a login goes on besides the client's credentials.
#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy<'a> {
    /// The configured users.
    pub users: &'a Arc<Users>,
    /// The user clients sending no credentials act as, if anonymous logins are allowed.
    pub anonymous: Option<&'a UserName>,
    /// Whether a client sending no credentials logs in as its certificate's common name.
    pub certificate_login: bool,
    /// The client's address (for the loopback rule).
    pub peer: IpAddr,
    /// The verified client certificate's common name, if any.
    pub tls_common_name: Option<&'a str>,
}

/// A refused login.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The user name and password were refused.
    #[error(transparent)]
    Password(AuthError),
    /// The certificate's or the anonymous user was refused (unknown, or the loopback rule).
    #[error(transparent)]
    WithoutPassword(AuthError),
    /// No credentials, and neither a certificate login nor an anonymous user applies.
    #[error("anonymous logins are not allowed")]
    AnonymousDisabled,
    /// The password could not be checked (the check threads are not running).
    #[error(transparent)]
    Unavailable(password_pool::PoolUnavailable),
}

impl LoginError {
    /// The refused login behind this error, if any (log its [`AuthError::refusal`]).
    pub fn auth_error(&self) -> Option<&AuthError> {
        match self {
            LoginError::Password(error) | LoginError::WithoutPassword(error) => Some(error),
            LoginError::AnonymousDisabled | LoginError::Unavailable(_) => None,
        }
    }
}

/// Logs a client in with `credentials` (if any) under `policy`; a refused login is logged with
/// its cause.
pub async fn authenticate(
    credentials: Option<Credentials>,
    policy: LoginPolicy<'_>,
) -> Result<Principal, LoginError> {
    let outcome = login(credentials, policy).await;
    if let Err(error) = &outcome {
        if let Some(error) = error.auth_error() {
            tracing::info!(%error, cause = ?error.refusal(), "login refused");
        }
    }
    outcome
}

async fn login(
    credentials: Option<Credentials>,
    policy: LoginPolicy<'_>,
) -> Result<Principal, LoginError> {
    let LoginPolicy {
        users,
        anonymous,
        certificate_login,
        peer,
        tls_common_name,
    } = policy;
    let certificate_name = tls_common_name.filter(|_| certificate_login);
    match credentials {
        Some(Credentials { user, password }) if !user.is_empty() => {
            let users = Arc::clone(users);
            let outcome =
                password_pool::run(move || users.authenticate(&user, password.as_bytes(), peer))
                    .await
                    .map_err(LoginError::Unavailable)?;
            outcome.map_err(LoginError::Password)
        }
        _ => {
            let name = match (certificate_name, anonymous) {
                (Some(name), _) => name,
                (None, Some(user)) => user.as_str(),
                (None, None) => return Err(LoginError::AnonymousDisabled),
            };
            users
                .principal_without_password(name, peer)
                .map_err(LoginError::WithoutPassword)
        }
    }
}
