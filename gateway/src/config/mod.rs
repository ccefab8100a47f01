//! The config file: YAML plus `MQGATE_...` environment overrides, into [`Settings`].
//!
//! The flow: the `config` crate reads the YAML file and lays the environment over it
//! (`MQGATE_` prefix, `__` between key levels: `MQGATE_LIMITS__MAX_CONNECTIONS=10` sets
//! `limits.max_connections`); the merged tree is taken as a plain value tree and deserialized
//! into `deny_unknown_fields` structs, strictly (an integer key refuses `1.5`, `true` and
//! `"ten"`), tracking the key path; then `convert` checks values and builds runtime types
//! (socket addresses, the rustls configuration, durations, users, definitions).
//!
//! Every failure is one [`ConfigError`] naming the key path (`limits.max_connections`,
//! `users[1].password_hash`, `tls.certificate`), never a panic.

mod convert;
mod raw;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::settings::Settings;

/// The prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "MQGATE";
/// Between the prefix and the first key level.
pub const ENV_PREFIX_SEPARATOR: &str = "_";
/// Between key levels in an environment variable's name.
pub const ENV_SEPARATOR: &str = "__";
/// The config file used when none is given, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/mqgate.yaml";

/// The configuration cannot be used. `Display`: `config error at <key path>: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    key: String,
    message: String,
}

impl ConfigError {
    /// An error about the key at `key` (dotted path, `[i]` for list items; empty for the file).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The key path at fault, e.g. `limits.max_connections`; empty for the file as a whole.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "config error: {}", self.message)
        } else {
            write!(f, "config error at {}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Loads `path` with the process's `MQGATE_...` environment variables laid over it.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let prefix = format!("{ENV_PREFIX}{ENV_PREFIX_SEPARATOR}");
    let env = std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(key, _)| key.to_ascii_uppercase().starts_with(&prefix))
        .collect();
    load_with_env(path, env)
}

/// Loads `path` with the given environment variables laid over it (only those starting with
/// `MQGATE_` count). Does not read the process environment: tests use it in parallel.
pub fn load_with_env(path: &Path, env: HashMap<String, String>) -> Result<Settings, ConfigError> {
    let merged = config::Config::builder()
        .add_source(
            config::File::from(path)
                .format(config::FileFormat::Yaml)
                .required(true),
        )
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_PREFIX_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .try_parsing(true)
                .ignore_empty(true)
                .source(Some(env.into_iter().collect())),
        )
        .build()
        .map_err(|e| ConfigError::new("", format!("cannot load {}: {e}", path.display())))?;
    // Exact kinds (integer, float, bool, string, map, list) as the YAML and the environment
    // give them; the structs are then read strictly from this tree.
    let tree: serde_json::Value = merged
        .try_deserialize()
        .map_err(|e| ConfigError::new("", format!("cannot load {}: {e}", path.display())))?;
    let raw: raw::RawConfig = match tree {
        // An empty file: every key takes its default.
        serde_json::Value::Null => raw::RawConfig::default(),
        tree => serde_path_to_error::deserialize(tree).map_err(deserialize_error)?,
    };
    let base_dir = path.parent().unwrap_or_else(|| Path::new(""));
    convert::settings(raw, base_dir)
}

/// Turns a deserialization error into a key path and a message.
fn deserialize_error(error: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    let path = error.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let message = error.inner().to_string();
    // serde reports a missing key at its parent: name the key itself.
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        let key = if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        };
        return ConfigError::new(key, "this key is required");
    }
    ConfigError::new(path, plain_words(&message))
}

/// serde names Rust types in its messages; say what the file should hold instead.
fn plain_words(message: &str) -> String {
    message
        .replace("expected u64", "expected a whole number (0 or more)")
        .replace("expected a boolean", "expected true or false")
}
