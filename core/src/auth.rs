//! Users, password hashes and logins: what every protocol adapter asks before it opens a session.
//!
//! The flow: the gateway turns each configured user into a [`User`] (parsing its name, checking
//! that its password hash is a usable argon2 PHC string, parsing its permission vhosts) and
//! collects them in [`Users`]. An adapter calls [`Users::authenticate`] with the credentials its
//! client sent and the peer address, and gets a [`Principal`] or an [`AuthError`].
//!
//! Invariants worth naming:
//! - A refused login looks the same to the client whatever the cause: [`AuthError`]'s `Display`
//!   is `login refused for user '<name>'` for an unknown user, a wrong password and the loopback
//!   rule alike. The cause is kept apart in [`LoginRefusal`] for the server's logs.
//! - An unknown user costs as much time as a wrong password: it is checked against a dummy hash,
//!   so response times do not tell which user names exist.
//! - The loopback rule is checked after the password, for the same reason.
//! - Verification never panics, whatever the stored hash holds.
//! - Hashing and verification are deliberately slow (argon2id): adapters call
//!   [`Users::authenticate`] from `tokio::task::spawn_blocking`, not on a runtime worker.
//!
//! Permissions are stored as RabbitMQ's configure/write/read regular expressions, as text;
//! enforcing them on each operation is a later issue. For now a principal may use a vhost if and
//! only if it has a permission entry for it ([`Principal::can_access_vhost`]).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::names::{NameError, UserName, VhostName};

/// A login was refused, or a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The credentials were refused. `Display` is what the client may be told; `reason` is for
    /// the server's logs only.
    #[error("login refused for user '{user}'")]
    Refused {
        /// The user name the client sent.
        user: String,
        /// Why, for the logs; never sent to the client.
        reason: LoginRefusal,
    },
    /// Hashing a password failed (the random source or argon2 itself).
    #[error("cannot hash the password: {0}")]
    Hashing(String),
}

impl AuthError {
    /// Why a login was refused, for the logs; `None` for errors other than a refusal.
    pub fn refusal(&self) -> Option<LoginRefusal> {
        match self {
            AuthError::Refused { reason, .. } => Some(*reason),
            AuthError::Hashing(_) => None,
        }
    }
}

/// The internal reason for a refused login. Log it; never send it to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginRefusal {
    /// No user has that name.
    UnknownUser,
    /// The password does not match the user's hash.
    WrongPassword,
    /// The user is `loopback_only` and the peer is not a loopback address.
    LoopbackOnly,
}

impl fmt::Display for LoginRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoginRefusal::UnknownUser => "no such user",
            LoginRefusal::WrongPassword => "wrong password",
            LoginRefusal::LoopbackOnly => {
                "the user is loopback_only and may log in from a loopback address only"
            }
        })
    }
}

/// A user as configured, before it is checked. Fields are text as the config file has them.
#[derive(Debug, Clone, Default)]
pub struct UserSpec {
    /// The user's name.
    pub name: String,
    /// An argon2 PHC string, as printed by `mqgate hash-password` ([`hash_password`]).
    pub password_hash: String,
    /// If true, logins are accepted from loopback addresses only (RabbitMQ's `loopback_users`).
    pub loopback_only: bool,
    /// Free-form tags (RabbitMQ's `administrator`, `monitoring`, ...).
    pub tags: Vec<String>,
    /// The user's rights, one entry per vhost.
    pub permissions: Vec<PermissionSpec>,
}

/// A user's rights on one vhost, as configured.
#[derive(Debug, Clone, Default)]
pub struct PermissionSpec {
    /// The vhost's name.
    pub vhost: String,
    /// Regular expression of resource names the user may declare and delete.
    pub configure: String,
    /// Regular expression of resource names the user may publish to.
    pub write: String,
    /// Regular expression of resource names the user may consume from.
    pub read: String,
}

/// A user's rights on one vhost. The patterns are kept as text; enforcement is a later issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// The vhost.
    pub vhost: VhostName,
    /// Regular expression of resource names the user may declare and delete.
    pub configure: String,
    /// Regular expression of resource names the user may publish to.
    pub write: String,
    /// Regular expression of resource names the user may consume from.
    pub read: String,
}

/// A [`UserSpec`] could not be turned into a [`User`]. [`UserError::field`] names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserError {
    /// The name is not a valid user name.
    #[error("invalid user name: {0}")]
    Name(NameError),
    /// The name is empty.
    #[error("the user name is empty")]
    EmptyName,
    /// The password hash is not a usable argon2 PHC string.
    #[error("not an argon2 PHC string ({0}); make one with `mqgate hash-password`")]
    PasswordHash(String),
    /// A permission names an invalid vhost.
    #[error("invalid vhost name: {source}")]
    PermissionVhost {
        /// Index in [`UserSpec::permissions`].
        index: usize,
        /// Why the name is invalid.
        source: NameError,
    },
    /// Two permissions name the same vhost.
    #[error("a second permission entry for vhost '{vhost}'")]
    DuplicatePermission {
        /// Index in [`UserSpec::permissions`] of the second entry.
        index: usize,
        /// The vhost.
        vhost: String,
    },
}

impl UserError {
    /// The field of the [`UserSpec`] at fault, as a config key path relative to the user:
    /// `name`, `password_hash`, `permissions[2].vhost`.
    pub fn field(&self) -> String {
        match self {
            UserError::Name(_) | UserError::EmptyName => "name".to_owned(),
            UserError::PasswordHash(_) => "password_hash".to_owned(),
            UserError::PermissionVhost { index, .. }
            | UserError::DuplicatePermission { index, .. } => {
                format!("permissions[{index}].vhost")
            }
        }
    }
}

/// Two users have the same name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a second user named '{name}'")]
pub struct DuplicateUser {
    /// The repeated name.
    pub name: String,
    /// Position of the second one in the list given to [`Users::new`].
    pub index: usize,
}

/// A checked user: a valid name, a parseable argon2 hash, permissions by vhost.
#[derive(Debug, Clone)]
pub struct User {
    name: UserName,
    password_hash: String,
    loopback_only: bool,
    tags: Arc<[String]>,
    permissions: Arc<[Permission]>,
}

impl User {
    /// Checks a user spec: the name, the hash (an argon2 PHC string with valid parameters) and
    /// the permissions' vhost names (at most one entry per vhost).
    pub fn new(spec: UserSpec) -> Result<User, UserError> {
        if spec.name.is_empty() {
            return Err(UserError::EmptyName);
        }
        let name = UserName::new(&spec.name).map_err(UserError::Name)?;
        check_hash(&spec.password_hash)?;
        let mut permissions: Vec<Permission> = Vec::with_capacity(spec.permissions.len());
        for (index, permission) in spec.permissions.into_iter().enumerate() {
            let vhost = VhostName::new(&permission.vhost)
                .map_err(|source| UserError::PermissionVhost { index, source })?;
            if permissions.iter().any(|p| p.vhost == vhost) {
                return Err(UserError::DuplicatePermission {
                    index,
                    vhost: permission.vhost,
                });
            }
            permissions.push(Permission {
                vhost,
                configure: permission.configure,
                write: permission.write,
                read: permission.read,
            });
        }
        Ok(User {
            name,
            password_hash: spec.password_hash,
            loopback_only: spec.loopback_only,
            tags: spec.tags.into(),
            permissions: permissions.into(),
        })
    }

    /// The user's name.
    pub fn name(&self) -> &UserName {
        &self.name
    }

    /// True if the user may log in from loopback addresses only.
    pub fn loopback_only(&self) -> bool {
        self.loopback_only
    }

    /// The user's tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The user's permissions, one per vhost.
    pub fn permissions(&self) -> &[Permission] {
        &self.permissions
    }
}

/// Rejects anything that [`verify_password`] could not use: not PHC, not argon2, bad parameters.
fn check_hash(hash: &str) -> Result<(), UserError> {
    let parsed = PasswordHash::new(hash).map_err(|e| UserError::PasswordHash(e.to_string()))?;
    match parsed.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => {}
        other => {
            return Err(UserError::PasswordHash(format!(
                "algorithm '{other}' is not argon2"
            )))
        }
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(UserError::PasswordHash(
            "the salt or the hash is missing".to_owned(),
        ));
    }
    argon2::Params::try_from(&parsed).map_err(|e| UserError::PasswordHash(e.to_string()))?;
    Ok(())
}

/// Hashes `password` with argon2id (default parameters: 19 MiB, 2 passes, 1 lane) and a fresh
/// random salt, as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hashing(e.to_string()))
}

/// True if `password` matches the PHC string `hash`. False for a wrong password and for a hash
/// that cannot be parsed or used (never a panic).
pub fn verify_password(password: &[u8], hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

/// An authenticated user: who, with which tags and permissions.
#[derive(Debug, Clone)]
pub struct Principal {
    user: UserName,
    tags: Arc<[String]>,
    permissions: Arc<[Permission]>,
}

impl Principal {
    /// The user's name.
    pub fn user(&self) -> &UserName {
        &self.user
    }

    /// The user's tags.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The user's permission on `vhost`, if any.
    pub fn permission(&self, vhost: &VhostName) -> Option<&Permission> {
        self.permissions.iter().find(|p| &p.vhost == vhost)
    }

    /// True if the user has a permission entry for `vhost` (RabbitMQ's rule for opening a vhost).
    pub fn can_access_vhost(&self, vhost: &VhostName) -> bool {
        self.permission(vhost).is_some()
    }

    /// `Ok` if the user may open `vhost` ([`Principal::can_access_vhost`]), else the refusal an
    /// adapter tells its client.
    pub fn check_vhost_access(&self, vhost: &VhostName) -> Result<(), VhostDenied> {
        if self.can_access_vhost(vhost) {
            Ok(())
        } else {
            Err(self.vhost_denied(vhost))
        }
    }

    /// The refusal for this user on `vhost`, whatever the cause (no permission, or a vhost the
    /// engine does not have: the client is told the same).
    pub fn vhost_denied(&self, vhost: &VhostName) -> VhostDenied {
        VhostDenied {
            user: self.user.clone(),
            vhost: vhost.clone(),
        }
    }
}

/// A principal may not open a vhost. `Display` is what the client may be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user '{user}' has no access to vhost '{vhost}'")]
pub struct VhostDenied {
    /// The user.
    pub user: UserName,
    /// The vhost it asked for.
    pub vhost: VhostName,
}

impl From<&User> for Principal {
    fn from(user: &User) -> Self {
        Principal {
            user: user.name.clone(),
            tags: user.tags.clone(),
            permissions: user.permissions.clone(),
        }
    }
}

/// The configured users, by name.
#[derive(Debug)]
pub struct Users {
    by_name: HashMap<UserName, User>,
    /// Checked for unknown users so that they cost as much as a wrong password.
    dummy_hash: Option<String>,
}

impl Users {
    /// Collects users, refusing two with the same name.
    pub fn new(users: impl IntoIterator<Item = User>) -> Result<Users, DuplicateUser> {
        let mut by_name = HashMap::new();
        for (index, user) in users.into_iter().enumerate() {
            let name = user.name.clone();
            if by_name.insert(name.clone(), user).is_some() {
                return Err(DuplicateUser {
                    name: name.as_str().to_owned(),
                    index,
                });
            }
        }
        // Any user's hash serves (same parameters as the real ones, most likely); with no
        // users at all there is nothing to hide.
        let dummy_hash = by_name.values().next().map(|u| u.password_hash.clone());
        Ok(Users {
            by_name,
            dummy_hash,
        })
    }

    /// No users: every login is refused.
    pub fn empty() -> Users {
        Users {
            by_name: HashMap::new(),
            dummy_hash: None,
        }
    }

    /// The user named `name`.
    pub fn get(&self, name: &str) -> Option<&User> {
        let name = UserName::new(name).ok()?;
        self.by_name.get(&name)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True if there are no users.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Checks a login: the user exists, the password matches, and a `loopback_only` user
    /// connects from a loopback address (IPv4-mapped IPv6 loopback counts). Slow by design
    /// (argon2): call it from a blocking thread.
    pub fn authenticate(
        &self,
        name: &str,
        password: &[u8],
        peer: IpAddr,
    ) -> Result<Principal, AuthError> {
        let refused = |reason| AuthError::Refused {
            user: name.to_owned(),
            reason,
        };
        let Some(user) = self.get(name) else {
            if let Some(dummy) = &self.dummy_hash {
                // Same cost as a wrong password; the result does not matter.
                let _ = verify_password(password, dummy);
            }
            return Err(refused(LoginRefusal::UnknownUser));
        };
        if !verify_password(password, &user.password_hash) {
            return Err(refused(LoginRefusal::WrongPassword));
        }
        if user.loopback_only && !peer.to_canonical().is_loopback() {
            return Err(refused(LoginRefusal::LoopbackOnly));
        }
        Ok(Principal::from(user))
    }

    /// The principal for `name` without a password: for anonymous logins the configuration
    /// allows (e.g. MQTT clients that send no user name act as a configured user). The
    /// loopback rule still applies.
    pub fn principal_without_password(
        &self,
        name: &str,
        peer: IpAddr,
    ) -> Result<Principal, AuthError> {
        let refused = |reason| AuthError::Refused {
            user: name.to_owned(),
            reason,
        };
        let user = self
            .get(name)
            .ok_or_else(|| refused(LoginRefusal::UnknownUser))?;
        if user.loopback_only && !peer.to_canonical().is_loopback() {
            return Err(refused(LoginRefusal::LoopbackOnly));
        }
        Ok(Principal::from(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

    fn spec(name: &str, password: &str, loopback_only: bool) -> UserSpec {
        UserSpec {
            name: name.to_owned(),
            password_hash: hash_password(password).unwrap(),
            loopback_only,
            tags: vec!["administrator".to_owned()],
            permissions: vec![PermissionSpec {
                vhost: "/".to_owned(),
                configure: ".*".to_owned(),
                write: ".*".to_owned(),
                read: ".*".to_owned(),
            }],
        }
    }

    fn users() -> Users {
        Users::new([
            User::new(spec("guest", "guest", true)).unwrap(),
            User::new(spec("alice", "s3cret", false)).unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn auth_hash_is_argon2id_phc_with_random_salt() {
        let a = hash_password("pw").unwrap();
        let b = hash_password("pw").unwrap();
        assert!(a.starts_with("$argon2id$v=19$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password(b"pw", &a));
        assert!(!verify_password(b"pW", &a));
    }

    #[test]
    fn auth_good_password_gives_principal_with_rights() {
        let users = users();
        let principal = users.authenticate("alice", b"s3cret", REMOTE).unwrap();
        assert_eq!(principal.user().as_str(), "alice");
        assert_eq!(principal.tags(), ["administrator".to_owned()]);
        assert!(principal.can_access_vhost(&VhostName::default_vhost()));
        assert!(!principal.can_access_vhost(&VhostName::new("other").unwrap()));
        assert_eq!(
            principal
                .permission(&VhostName::default_vhost())
                .unwrap()
                .write,
            ".*"
        );
    }

    #[test]
    fn auth_unknown_user_and_wrong_password_look_the_same_to_the_client() {
        let users = users();
        let unknown = users.authenticate("mallory", b"x", LOCAL).unwrap_err();
        let wrong = users.authenticate("alice", b"x", LOCAL).unwrap_err();
        assert_eq!(unknown.to_string(), "login refused for user 'mallory'");
        assert_eq!(wrong.to_string(), "login refused for user 'alice'");
        assert_eq!(unknown.refusal(), Some(LoginRefusal::UnknownUser));
        assert_eq!(wrong.refusal(), Some(LoginRefusal::WrongPassword));
    }

    #[test]
    fn auth_loopback_only_user_refused_from_remote_address() {
        let users = users();
        assert!(users.authenticate("guest", b"guest", LOCAL).is_ok());
        assert!(users
            .authenticate("guest", b"guest", IpAddr::V6(Ipv6Addr::LOCALHOST))
            .is_ok());
        let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        assert!(users.authenticate("guest", b"guest", mapped).is_ok());
        let err = users.authenticate("guest", b"guest", REMOTE).unwrap_err();
        assert_eq!(err.to_string(), "login refused for user 'guest'");
        assert_eq!(err.refusal(), Some(LoginRefusal::LoopbackOnly));
        assert!(LoginRefusal::LoopbackOnly
            .to_string()
            .contains("loopback_only"));
        // Without a password (anonymous logins) the rule holds too.
        assert!(users.principal_without_password("guest", LOCAL).is_ok());
        assert_eq!(
            users
                .principal_without_password("guest", REMOTE)
                .unwrap_err()
                .refusal(),
            Some(LoginRefusal::LoopbackOnly)
        );
    }

    #[test]
    fn auth_bad_hash_never_panics() {
        for bad in [
            "",
            "guest",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=1,t=0,p=0$c2FsdHNhbHQ$aGFzaA",
            "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=19$m=19456,t=2,p=1$!!!$???",
        ] {
            assert!(!verify_password(b"guest", bad), "{bad:?}");
            let err = User::new(UserSpec {
                name: "u".to_owned(),
                password_hash: bad.to_owned(),
                ..UserSpec::default()
            })
            .unwrap_err();
            assert!(matches!(err, UserError::PasswordHash(_)), "{bad:?}: {err}");
            assert_eq!(err.field(), "password_hash");
        }
    }

    #[test]
    fn auth_user_spec_errors_name_the_field() {
        let mut bad_vhost = spec("bob", "pw", false);
        bad_vhost.permissions.push(PermissionSpec {
            vhost: "v".repeat(300),
            ..PermissionSpec::default()
        });
        assert_eq!(
            User::new(bad_vhost).unwrap_err().field(),
            "permissions[1].vhost"
        );
        let mut twice = spec("bob", "pw", false);
        twice.permissions.push(twice.permissions[0].clone());
        assert_eq!(
            User::new(twice).unwrap_err().field(),
            "permissions[1].vhost"
        );
        let mut empty = spec("bob", "pw", false);
        empty.name.clear();
        assert_eq!(User::new(empty).unwrap_err(), UserError::EmptyName);
    }

    #[test]
    fn auth_duplicate_users_refused() {
        let err = Users::new([
            User::new(spec("a", "pw", false)).unwrap(),
            User::new(spec("a", "pw", false)).unwrap(),
        ])
        .unwrap_err();
        assert_eq!(err.index, 1);
        assert_eq!(err.to_string(), "a second user named 'a'");
    }

    #[test]
    fn auth_no_users_refuses_everyone() {
        let users = Users::empty();
        assert!(users.is_empty());
        assert_eq!(
            users
                .authenticate("guest", b"guest", LOCAL)
                .unwrap_err()
                .refusal(),
            Some(LoginRefusal::UnknownUser)
        );
    }
}
