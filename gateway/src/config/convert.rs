//! Validation and conversion: raw structs into [`Settings`], each error at its key path.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mqgate_amqp::AmqpSettings;
use mqgate_core::auth::{PermissionSpec, User, UserSpec, Users};
use mqgate_core::declare::{BindingDeclaration, ExchangeDeclaration};
use mqgate_core::message::{FieldValue, Headers};
use mqgate_core::names::{ExchangeName, QueueName, UserName, VhostName};

use mqgate_mqtt::settings::SessionOverflow;
use mqgate_mqtt::MqttSettings;
use mqgate_stomp::StompSettings;

use super::raw::{
    RawAmqp, RawArgument, RawBinding, RawConfig, RawExchange, RawListeners, RawMqtt, RawQueue,
    RawStomp, RawTls, RawUser,
};
use super::ConfigError;
use crate::definitions::{
    parse_exchange_kind, BindingDefinition, Definitions, DestinationKind, ExchangeDefinition,
    QueueDefinition,
};
use crate::protocols::{adapter, Protocol, Registry};
use crate::settings::{
    default_amqp_settings, default_mqtt_settings, default_stomp_settings, Limits, ListenerSpec,
    Settings, Transport, DEFAULT_DRAIN_TIMEOUT, DEFAULT_LOG_FILTER, MQTT_MAX_PACKET_SIZE,
    STOMP_FRAME_OVERHEAD,
};
use crate::tls::{self, TlsFiles};

type Result<T> = std::result::Result<T, ConfigError>;

/// Builds the settings; relative TLS paths are taken from `base_dir` (the config file's folder).
pub(super) fn settings(raw: RawConfig, base_dir: &Path) -> Result<Settings> {
    let log_filter = log_filter(raw.log.and_then(|log| log.level))?;
    let limits = limits(raw.limits.unwrap_or_default())?;
    let drain_timeout = raw
        .shutdown
        .and_then(|shutdown| shutdown.drain_timeout_ms)
        .map_or(DEFAULT_DRAIN_TIMEOUT, Duration::from_millis);
    let tls = raw.tls.map(|tls| tls_config(tls, base_dir)).transpose()?;
    let listeners = listeners(raw.listeners.unwrap_or_default(), tls.is_some(), adapter)?;
    let vhosts = vhosts(raw.vhosts)?;
    let users = users(raw.users.unwrap_or_default(), &vhosts)?;
    let anonymous = anonymous(raw.auth.and_then(|auth| auth.anonymous), &users)?;
    let mqtt = mqtt(raw.mqtt.unwrap_or_default(), &limits, &vhosts)?;
    let stomp = stomp(raw.stomp.unwrap_or_default(), &limits, &vhosts)?;
    let amqp = amqp(raw.amqp.unwrap_or_default(), &limits)?;
    let definitions = Definitions {
        exchanges: enumerate("exchanges", raw.exchanges, |key, raw| {
            exchange(key, raw, &vhosts)
        })?,
        queues: enumerate("queues", raw.queues, |key, raw| queue(key, raw, &vhosts))?,
        bindings: enumerate("bindings", raw.bindings, |key, raw| {
            binding(key, raw, &vhosts)
        })?,
        vhosts,
    };
    Ok(Settings {
        log_filter,
        limits,
        drain_timeout,
        tls,
        listeners,
        users: Arc::new(users),
        anonymous,
        definitions,
        mqtt,
        stomp,
        amqp,
    })
}

fn log_filter(level: Option<String>) -> Result<String> {
    let level = level.unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned());
    tracing_subscriber::EnvFilter::try_new(&level).map_err(|e| {
        ConfigError::new(
            "log.level",
            format!("'{level}' is not a log filter ({e}); e.g. info, debug, mqgate=debug,info"),
        )
    })?;
    Ok(level)
}

/// A whole number: `default` when absent, else at least `min` and fitting `T` (`too_large`
/// says why not when it does not fit).
fn ranged<T: TryFrom<u64>>(
    key: &str,
    value: Option<u64>,
    default: T,
    min: u64,
    too_large: impl FnOnce(u64) -> String,
) -> Result<T> {
    let Some(value) = value else {
        return Ok(default);
    };
    if value < min {
        return Err(ConfigError::new(
            key,
            format!("must be at least {min}, not {value}"),
        ));
    }
    T::try_from(value).map_err(|_| ConfigError::new(key, too_large(value)))
}

/// A size or count: at least `min`, and fitting this machine's `usize`.
fn amount(key: &str, value: Option<u64>, default: usize, min: u64) -> Result<usize> {
    ranged(key, value, default, min, |value| {
        format!("{value} is too large for this machine")
    })
}

/// A size already converted: at most `max` (`what` names the bound in the error).
fn at_most(key: &str, value: usize, max: usize, what: impl fmt::Display) -> Result<usize> {
    if value > max {
        return Err(ConfigError::new(
            key,
            format!("must be at most {what}, not {value}"),
        ));
    }
    Ok(value)
}

/// A duration in milliseconds, at least 1.
fn millis(key: &str, value: Option<u64>, default: Duration) -> Result<Duration> {
    match value {
        None => Ok(default),
        Some(0) => Err(ConfigError::new(key, "must be at least 1 (milliseconds)")),
        Some(ms) => Ok(Duration::from_millis(ms)),
    }
}

fn limits(raw: super::raw::RawLimits) -> Result<Limits> {
    let defaults = Limits::default();
    let max_connections = amount(
        "limits.max_connections",
        raw.max_connections,
        defaults.max_connections,
        1,
    )?;
    if max_connections > tokio::sync::Semaphore::MAX_PERMITS {
        return Err(ConfigError::new(
            "limits.max_connections",
            format!("must be at most {}", tokio::sync::Semaphore::MAX_PERMITS),
        ));
    }
    let max_message_size = amount(
        "limits.max_message_size",
        raw.max_message_size,
        defaults.max_message_size,
        1,
    )?;
    let outbound_buffer_bytes = amount(
        "limits.outbound_buffer_bytes",
        raw.outbound_buffer_bytes,
        defaults.outbound_buffer_bytes,
        1,
    )?;
    if outbound_buffer_bytes < max_message_size {
        return Err(ConfigError::new(
            "limits.outbound_buffer_bytes",
            format!(
                "must be at least limits.max_message_size ({max_message_size}), so one message fits; not {outbound_buffer_bytes}"
            ),
        ));
    }
    Ok(Limits {
        max_connections,
        handshake_timeout: millis(
            "limits.handshake_timeout_ms",
            raw.handshake_timeout_ms,
            defaults.handshake_timeout,
        )?,
        max_message_size,
        memory_high_watermark: amount(
            "limits.memory_high_watermark_bytes",
            raw.memory_high_watermark_bytes,
            defaults.memory_high_watermark,
            1,
        )?,
        session_window_bytes: amount(
            "limits.session_window_bytes",
            raw.session_window_bytes,
            defaults.session_window_bytes,
            1,
        )?,
        outbound_buffer_bytes,
        write_stall_timeout: millis(
            "limits.write_stall_timeout_ms",
            raw.write_stall_timeout_ms,
            defaults.write_stall_timeout,
        )?,
    })
}

/// A count that fits a `u16`, at least `min`.
fn small_count(key: &str, value: Option<u64>, default: u16, min: u16) -> Result<u16> {
    ranged(key, value, default, u64::from(min), |value| {
        format!("must be at most {}, not {value}", u16::MAX)
    })
}

/// The smallest `mqtt.max_packet_size`: a CONNECT with a long client id and credentials fits.
const MIN_MQTT_PACKET_SIZE: u64 = 1024;

/// MQTT 3.1.1 (section 3.1.3.1): a server must accept client identifiers of 1 to 23 bytes.
const MIN_MQTT_CLIENT_ID_LENGTH: u64 = 23;

/// The `mqtt:` section onto the adapter's settings; absent keys take the adapter's defaults
/// (the largest packet: `limits.max_message_size` plus room for topic and properties).
fn mqtt(raw: RawMqtt, limits: &Limits, vhosts: &[VhostName]) -> Result<MqttSettings> {
    let defaults = default_mqtt_settings(limits);
    let vhost = setting_vhost("mqtt.vhost", raw.vhost, &defaults.vhost, vhosts)?;
    let key = "mqtt.max_packet_size";
    let max_packet_size = at_most(
        key,
        amount(
            key,
            raw.max_packet_size,
            defaults.max_packet_size,
            MIN_MQTT_PACKET_SIZE,
        )?,
        MQTT_MAX_PACKET_SIZE,
        format_args!("{MQTT_MAX_PACKET_SIZE} (MQTT's largest packet)"),
    )?;
    let session_overflow = match raw.session_overflow.as_deref() {
        None => defaults.session_overflow,
        Some("block-publisher") => SessionOverflow::BlockPublisher,
        Some("drop-head") => SessionOverflow::DropHead,
        Some("reject-publish") => SessionOverflow::RejectPublish,
        Some(other) => {
            return Err(ConfigError::new(
                "mqtt.session_overflow",
                format!("'{other}' is none of block-publisher, drop-head, reject-publish"),
            ))
        }
    };
    let session_queue_length = bounded_u32(
        "mqtt.session_queue_length",
        raw.session_queue_length,
        defaults.session_queue_length,
        1,
    )?;
    let max_session_expiry = match raw.max_session_expiry_secs {
        None => defaults.max_session_expiry,
        Some(secs) if secs > u64::from(u32::MAX) => {
            return Err(ConfigError::new(
                "mqtt.max_session_expiry_secs",
                format!(
                    "must be at most {} (MQTT's largest session expiry), not {secs}",
                    u32::MAX
                ),
            ))
        }
        Some(secs) => Duration::from_secs(secs),
    };
    Ok(MqttSettings {
        vhost,
        max_packet_size,
        receive_maximum: small_count(
            "mqtt.receive_maximum",
            raw.receive_maximum,
            defaults.receive_maximum,
            1,
        )?,
        default_inflight: small_count(
            "mqtt.default_inflight",
            raw.default_inflight,
            defaults.default_inflight,
            1,
        )?,
        max_keepalive: small_count(
            "mqtt.max_keepalive_secs",
            raw.max_keepalive_secs,
            defaults.max_keepalive,
            0,
        )?,
        topic_alias_maximum: small_count(
            "mqtt.topic_alias_maximum",
            raw.topic_alias_maximum,
            defaults.topic_alias_maximum,
            0,
        )?,
        max_client_id_len: amount(
            "mqtt.max_client_id_length",
            raw.max_client_id_length,
            defaults.max_client_id_len,
            MIN_MQTT_CLIENT_ID_LENGTH,
        )?,
        max_subscriptions: amount(
            "mqtt.max_subscriptions",
            raw.max_subscriptions,
            defaults.max_subscriptions,
            1,
        )?,
        session_queue_length,
        session_overflow,
        max_persistent_sessions: amount(
            "mqtt.max_persistent_sessions",
            raw.max_persistent_sessions,
            defaults.max_persistent_sessions,
            1,
        )?,
        max_session_expiry,
        max_retained_per_subscribe: amount(
            "mqtt.max_retained_per_subscribe",
            raw.max_retained_per_subscribe,
            defaults.max_retained_per_subscribe,
            1,
        )?,
        takeover_timeout: millis(
            "mqtt.takeover_timeout_ms",
            raw.takeover_timeout_ms,
            defaults.takeover_timeout,
        )?,
        certificate_login: raw.certificate_login.unwrap_or(defaults.certificate_login),
    })
}

/// The smallest `stomp.max_frame_size`: what a client may send before CONNECT (64 KiB).
const MIN_STOMP_FRAME_SIZE: u64 = 64 * 1024;

/// The fewest `stomp.max_headers`: a CONNECT with every header a client library sends.
const MIN_STOMP_HEADERS: u64 = 10;

/// The shortest `stomp.max_header_length`: a destination, a login or a passcode line.
const MIN_STOMP_HEADER_LENGTH: u64 = 256;

/// The lowest `stomp.min_heartbeat_ms`: a floor under it would let clients ask for beats
/// every millisecond.
const MIN_STOMP_HEARTBEAT_MS: u64 = 100;

/// The lowest `stomp.heartbeat_grace_factor`: a client beating exactly on time must survive
/// one late beat.
const MIN_STOMP_GRACE_FACTOR: u64 = 2;

/// The `stomp:` section onto the adapter's settings; absent keys take the adapter's defaults
/// (the largest frame: 4 MiB, or `limits.max_message_size` plus 64 KiB when smaller).
fn stomp(raw: RawStomp, limits: &Limits, vhosts: &[VhostName]) -> Result<StompSettings> {
    let defaults = default_stomp_settings(limits);
    let default_vhost = setting_vhost(
        "stomp.default_vhost",
        raw.default_vhost,
        &defaults.default_vhost,
        vhosts,
    )?;
    let key = "stomp.max_frame_size";
    let largest_frame = limits.max_message_size.saturating_add(STOMP_FRAME_OVERHEAD);
    let max_frame_size = at_most(
        key,
        amount(
            key,
            raw.max_frame_size,
            defaults.max_frame_size,
            MIN_STOMP_FRAME_SIZE,
        )?,
        largest_frame,
        format_args!("limits.max_message_size + {STOMP_FRAME_OVERHEAD} ({largest_frame})"),
    )?;
    let key = "stomp.max_header_length";
    let max_header_len = at_most(
        key,
        amount(
            key,
            raw.max_header_length,
            defaults.max_header_len,
            MIN_STOMP_HEADER_LENGTH,
        )?,
        max_frame_size,
        format_args!("stomp.max_frame_size ({max_frame_size})"),
    )?;
    let min_heartbeat = match raw.min_heartbeat_ms {
        None => defaults.min_heartbeat,
        Some(ms) if ms < MIN_STOMP_HEARTBEAT_MS => {
            return Err(ConfigError::new(
                "stomp.min_heartbeat_ms",
                format!("must be at least {MIN_STOMP_HEARTBEAT_MS} (milliseconds), not {ms}"),
            ))
        }
        Some(ms) => Duration::from_millis(ms),
    };
    let heartbeat_grace_factor = bounded_u32(
        "stomp.heartbeat_grace_factor",
        raw.heartbeat_grace_factor,
        defaults.heartbeat_grace_factor,
        MIN_STOMP_GRACE_FACTOR,
    )?;
    let max_prefetch = bounded_u32(
        "stomp.max_prefetch",
        raw.max_prefetch,
        defaults.max_prefetch,
        1,
    )?;
    Ok(StompSettings {
        default_vhost,
        max_frame_size,
        max_headers: amount(
            "stomp.max_headers",
            raw.max_headers,
            defaults.max_headers,
            MIN_STOMP_HEADERS,
        )?,
        max_header_len,
        min_heartbeat,
        heartbeat_grace_factor,
        max_subscriptions: amount(
            "stomp.max_subscriptions",
            raw.max_subscriptions,
            defaults.max_subscriptions,
            1,
        )?,
        max_unconfirmed_sends: amount(
            "stomp.max_unconfirmed_sends",
            raw.max_unconfirmed_sends,
            defaults.max_unconfirmed_sends,
            1,
        )?,
        max_prefetch,
        // 0: BEGIN is refused (no transactions).
        max_transactions: amount(
            "stomp.max_transactions",
            raw.max_transactions,
            defaults.max_transactions,
            0,
        )?,
        max_transaction_frames: amount(
            "stomp.max_transaction_frames",
            raw.max_transaction_frames,
            defaults.max_transaction_frames,
            1,
        )?,
        max_transaction_bytes: amount(
            "stomp.max_transaction_bytes",
            raw.max_transaction_bytes,
            defaults.max_transaction_bytes,
            1,
        )?,
        certificate_login: raw.certificate_login.unwrap_or(defaults.certificate_login),
    })
}

/// A whole number from `min` to `max` (`max` fitting `T`): `default` when absent.
fn between<T: TryFrom<u64>>(
    key: &str,
    value: Option<u64>,
    default: T,
    min: u64,
    max: u64,
) -> Result<T> {
    let too_large = |value: u64| format!("must be at most {max}, not {value}");
    if let Some(value) = value.filter(|&value| value > max) {
        return Err(ConfigError::new(key, too_large(value)));
    }
    ranged(key, value, default, min, too_large)
}

/// A count that fits a `u32`, at least `min`.
fn bounded_u32(key: &str, value: Option<u64>, default: u32, min: u64) -> Result<u32> {
    ranged(key, value, default, min, |value| {
        format!("must be at most {}, not {value}", u32::MAX)
    })
}

/// The smallest `amqp.frame_max`: AMQP's `frame-min-size` (4096), the smallest frame_max a
/// client may agree to in tune-ok; with less, no client could connect.
const MIN_AMQP_FRAME_MAX: u32 = 4096;

/// The largest `amqp.frame_max`: 16 MiB. Bodies are split into frames of at most frame_max, so
/// larger frames gain nothing, while each connection's read buffer may grow to one frame.
const MAX_AMQP_FRAME_MAX: u32 = 16 * 1024 * 1024;

/// The `amqp:` section onto the adapter's settings; absent keys take the adapter's defaults,
/// with `max_message_size` from `limits.max_message_size` and each channel's delivery window
/// from `limits.session_window_bytes` unless `amqp.channel_window_bytes` says otherwise.
fn amqp(raw: RawAmqp, limits: &Limits) -> Result<AmqpSettings> {
    let defaults = default_amqp_settings(limits);
    Ok(AmqpSettings {
        frame_max: between(
            "amqp.frame_max",
            raw.frame_max,
            defaults.frame_max,
            u64::from(MIN_AMQP_FRAME_MAX),
            u64::from(MAX_AMQP_FRAME_MAX),
        )?,
        // Channel 0 is the connection's own: at least one channel for the client.
        channel_max: small_count("amqp.channel_max", raw.channel_max, defaults.channel_max, 1)?,
        // 0: no heartbeats proposed.
        heartbeat: small_count("amqp.heartbeat_s", raw.heartbeat_s, defaults.heartbeat, 0)?,
        max_message_size: defaults.max_message_size,
        max_consumers_per_channel: amount(
            "amqp.max_consumers_per_channel",
            raw.max_consumers_per_channel,
            defaults.max_consumers_per_channel,
            1,
        )?,
        max_unconfirmed: amount(
            "amqp.max_unconfirmed",
            raw.max_unconfirmed,
            defaults.max_unconfirmed,
            1,
        )?,
        max_transaction_operations: amount(
            "amqp.max_transaction_operations",
            raw.max_transaction_operations,
            defaults.max_transaction_operations,
            1,
        )?,
        max_transaction_bytes: amount(
            "amqp.max_transaction_bytes",
            raw.max_transaction_bytes,
            defaults.max_transaction_bytes,
            1,
        )?,
        channel_window_bytes: amount(
            "amqp.channel_window_bytes",
            raw.channel_window_bytes,
            defaults.channel_window_bytes,
            1,
        )?,
        close_timeout: millis(
            "amqp.close_timeout_ms",
            raw.close_timeout_ms,
            defaults.close_timeout,
        )?,
    })
}

fn tls_config(raw: RawTls, base_dir: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let resolve = |path: String| -> PathBuf {
        let path = PathBuf::from(path);
        if path.is_absolute() {
            path
        } else {
            base_dir.join(path)
        }
    };
    let require_client_certificate = raw.require_client_certificate.unwrap_or(false);
    if require_client_certificate && raw.client_ca.is_none() {
        return Err(ConfigError::new(
            "tls.require_client_certificate",
            "needs tls.client_ca, the CA bundle client certificates are verified against",
        ));
    }
    let files = TlsFiles {
        certificate: resolve(raw.certificate),
        private_key: resolve(raw.private_key),
        client_ca: raw.client_ca.map(resolve),
        require_client_certificate,
    };
    tls::server_config(&files)
        .map_err(|e| ConfigError::new(format!("tls.{}", e.field().key()), e.to_string()))
}

/// The listeners; a protocol whose adapter `registry` says is pending is refused.
fn listeners(raw: RawListeners, have_tls: bool, registry: Registry) -> Result<Vec<ListenerSpec>> {
    let mut specs = Vec::new();
    let by_protocol = [
        (Protocol::Mqtt, raw.mqtt),
        (Protocol::Stomp, raw.stomp),
        (Protocol::Amqp, raw.amqp),
    ];
    for (protocol, listener) in by_protocol {
        let Some(listener) = listener else { continue };
        let key = format!("listeners.{}", protocol.key());
        for (transport, address) in [
            (Transport::Plain, listener.plain),
            (Transport::Tls, listener.tls),
        ] {
            let Some(address) = address else { continue };
            let key = match transport {
                Transport::Plain => format!("{key}.plain"),
                Transport::Tls => format!("{key}.tls"),
            };
            let addr = address.parse::<SocketAddr>().map_err(|e| {
                ConfigError::new(
                    &key,
                    format!("'{address}' is not a socket address ({e}); write IP:PORT, e.g. 0.0.0.0:1883 or [::]:1883"),
                )
            })?;
            if transport == Transport::Tls && !have_tls {
                return Err(ConfigError::new(
                    key,
                    "a TLS listener needs the tls section (certificate, private_key)",
                ));
            }
            specs.push(ListenerSpec {
                protocol,
                transport,
                addr,
            });
        }
        // After the addresses, so that a file being prepared for an adapter is checked as far
        // as it can be.
        if let Some(reason) = registry(protocol).not_landed_reason(protocol) {
            return Err(ConfigError::new(key, reason));
        }
    }
    Ok(specs)
}

fn vhost_name(key: &str, text: &str) -> Result<VhostName> {
    if text.is_empty() {
        return Err(ConfigError::new(key, "a vhost name cannot be empty"));
    }
    VhostName::new(text).map_err(|e| ConfigError::new(key, e.to_string()))
}

fn vhosts(raw: Option<Vec<super::raw::RawVhost>>) -> Result<Vec<VhostName>> {
    let Some(raw) = raw else {
        return Ok(vec![VhostName::default_vhost()]);
    };
    let mut vhosts: Vec<VhostName> = Vec::with_capacity(raw.len());
    for (index, vhost) in raw.into_iter().enumerate() {
        let key = format!("vhosts[{index}].name");
        let name = vhost_name(&key, &vhost.name)?;
        if vhosts.contains(&name) {
            return Err(ConfigError::new(
                key,
                format!("vhost '{name}' is listed twice"),
            ));
        }
        vhosts.push(name);
    }
    Ok(vhosts)
}

/// The vhost `text` names at `key`, which must be in `vhosts`.
fn known_vhost(key: &str, text: &str, vhosts: &[VhostName]) -> Result<VhostName> {
    let name = vhost_name(key, text)?;
    if !vhosts.contains(&name) {
        return Err(ConfigError::new(
            key,
            format!("vhost '{name}' is not declared in vhosts"),
        ));
    }
    Ok(name)
}

/// The vhost an entry names (default `/`), which must be in `vhosts`.
fn declared_vhost(key: &str, name: Option<&str>, vhosts: &[VhostName]) -> Result<VhostName> {
    known_vhost(&format!("{key}.vhost"), name.unwrap_or("/"), vhosts)
}

/// An adapter section's vhost setting: `default` when absent, else a vhost in `vhosts`, kept as
/// written.
fn setting_vhost(
    key: &str,
    raw: Option<String>,
    default: &str,
    vhosts: &[VhostName],
) -> Result<String> {
    match raw {
        None => Ok(default.to_owned()),
        Some(name) => {
            known_vhost(key, &name, vhosts)?;
            Ok(name)
        }
    }
}

fn users(raw: Vec<RawUser>, vhosts: &[VhostName]) -> Result<Users> {
    let mut users = Vec::with_capacity(raw.len());
    for (index, user) in raw.into_iter().enumerate() {
        let key = format!("users[{index}]");
        for (p, permission) in user.permissions.iter().enumerate() {
            declared_vhost(
                &format!("{key}.permissions[{p}]"),
                Some(&permission.vhost),
                vhosts,
            )?;
        }
        let spec = UserSpec {
            name: user.name,
            password_hash: user.password_hash,
            loopback_only: user.loopback_only,
            tags: user.tags,
            permissions: user
                .permissions
                .into_iter()
                .map(|p| PermissionSpec {
                    vhost: p.vhost,
                    configure: p.configure,
                    write: p.write,
                    read: p.read,
                })
                .collect(),
        };
        let user = User::new(spec)
            .map_err(|e| ConfigError::new(format!("{key}.{}", e.field()), e.to_string()))?;
        users.push(user);
    }
    Users::new(users)
        .map_err(|e| ConfigError::new(format!("users[{}].name", e.index), e.to_string()))
}

fn anonymous(raw: Option<super::raw::RawAnonymous>, users: &Users) -> Result<Option<UserName>> {
    let Some(raw) = raw else { return Ok(None) };
    if !raw.enabled.unwrap_or(true) {
        return Ok(None);
    }
    let name = raw.user.unwrap_or_else(|| "guest".to_owned());
    match users.get(&name) {
        Some(user) => Ok(Some(user.name().clone())),
        None => Err(ConfigError::new(
            "auth.anonymous.user",
            format!("no user '{name}' in users; anonymous clients act as this user"),
        )),
    }
}

/// Converts each entry of the optional list `list`, keyed `list[i]`.
fn enumerate<R, T>(
    list: &str,
    raw: Option<Vec<R>>,
    mut convert: impl FnMut(&str, R) -> Result<T>,
) -> Result<Vec<T>> {
    raw.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(index, raw)| convert(&format!("{list}[{index}]"), raw))
        .collect()
}

fn arguments(key: &str, raw: BTreeMap<String, RawArgument>) -> Result<Headers> {
    let mut headers = Headers::new();
    for (name, value) in raw {
        if name.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.arguments"),
                "an argument name cannot be empty",
            ));
        }
        let value = match value {
            RawArgument::Bool(b) => FieldValue::Bool(b),
            RawArgument::Int(i) => FieldValue::I64(i),
            RawArgument::Float(f) => FieldValue::F64(f),
            RawArgument::Str(s) => FieldValue::Str(s),
        };
        headers.insert(name, value);
    }
    Ok(headers)
}

fn exchange(key: &str, raw: RawExchange, vhosts: &[VhostName]) -> Result<ExchangeDefinition> {
    let vhost = declared_vhost(key, raw.vhost.as_deref(), vhosts)?;
    let name = ExchangeName::new(&raw.name)
        .map_err(|e| ConfigError::new(format!("{key}.name"), e.to_string()))?;
    let kind = parse_exchange_kind(&raw.kind)
        .map_err(|message| ConfigError::new(format!("{key}.type"), message))?;
    Ok(ExchangeDefinition {
        vhost,
        declaration: ExchangeDeclaration {
            name,
            kind,
            durable: raw.durable.unwrap_or(true),
            auto_delete: raw.auto_delete,
            internal: raw.internal,
            passive: false,
            arguments: arguments(key, raw.arguments)?,
        },
    })
}

fn queue(key: &str, raw: RawQueue, vhosts: &[VhostName]) -> Result<QueueDefinition> {
    let vhost = declared_vhost(key, raw.vhost.as_deref(), vhosts)?;
    if raw.name.is_empty() {
        return Err(ConfigError::new(
            format!("{key}.name"),
            "a pre-declared queue needs a name",
        ));
    }
    let name = QueueName::new(&raw.name)
        .map_err(|e| ConfigError::new(format!("{key}.name"), e.to_string()))?;
    Ok(QueueDefinition {
        vhost,
        name,
        durable: raw.durable.unwrap_or(true),
        auto_delete: raw.auto_delete,
        arguments: arguments(key, raw.arguments)?,
    })
}

fn binding(key: &str, raw: RawBinding, vhosts: &[VhostName]) -> Result<BindingDefinition> {
    let vhost = declared_vhost(key, raw.vhost.as_deref(), vhosts)?;
    let destination_kind = match raw.destination_type.as_deref() {
        None | Some("queue") => DestinationKind::Queue,
        Some("exchange") => DestinationKind::Exchange,
        Some(other) => {
            return Err(ConfigError::new(
                format!("{key}.destination_type"),
                format!("'{other}' is neither queue nor exchange"),
            ))
        }
    };
    let source = ExchangeName::new(&raw.source)
        .map_err(|e| ConfigError::new(format!("{key}.source"), e.to_string()))?;
    Ok(BindingDefinition {
        vhost,
        destination_kind,
        declaration: BindingDeclaration {
            source,
            destination: raw.destination,
            routing_key: raw.routing_key,
            arguments: arguments(key, raw.arguments)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::AdapterStatus;
    use crate::settings::Limits;

    /// The registry with AMQP not landed yet (as before issue 5).
    fn amqp_pending(protocol: Protocol) -> AdapterStatus {
        match protocol {
            Protocol::Amqp => AdapterStatus::Pending { issue: Some(5) },
            other => adapter(other),
        }
    }

    fn amqp_listener(plain: &str) -> RawListeners {
        RawListeners {
            amqp: Some(super::super::raw::RawListener {
                plain: Some(plain.to_owned()),
                tls: None,
            }),
            ..RawListeners::default()
        }
    }

    #[test]
    fn listener_for_a_pending_adapter_is_refused_after_its_addresses() {
        let error = listeners(amqp_listener("0.0.0.0:5672"), false, amqp_pending).unwrap_err();
        assert_eq!(error.key(), "listeners.amqp");
        assert_eq!(
            error.message(),
            "the AMQP adapter has not landed yet (issue 5); remove this key"
        );
        // A bad address is named first, so a file prepared for the adapter is checked.
        let error = listeners(amqp_listener("0.0.0.0:99999"), false, amqp_pending).unwrap_err();
        assert_eq!(error.key(), "listeners.amqp.plain");
        // Other protocols are unaffected.
        let mqtt = RawListeners {
            mqtt: Some(super::super::raw::RawListener {
                plain: Some("127.0.0.1:1883".to_owned()),
                tls: None,
            }),
            ..RawListeners::default()
        };
        assert_eq!(listeners(mqtt, false, amqp_pending).unwrap().len(), 1);
    }

    #[test]
    fn amqp_listener_is_accepted_with_the_real_registry() {
        let specs = listeners(amqp_listener("0.0.0.0:5672"), false, adapter).unwrap();
        assert_eq!(
            specs,
            vec![ListenerSpec {
                protocol: Protocol::Amqp,
                transport: Transport::Plain,
                addr: "0.0.0.0:5672".parse().unwrap(),
            }]
        );
    }

    #[test]
    fn empty_amqp_section_takes_the_defaults_from_the_limits() {
        let limits = Limits {
            max_message_size: 1000,
            session_window_bytes: 4096,
            ..Limits::default()
        };
        let amqp = amqp(RawAmqp::default(), &limits).unwrap();
        assert_eq!(amqp, default_amqp_settings(&limits));
        assert_eq!(
            amqp,
            AmqpSettings {
                max_message_size: 1000,
                channel_window_bytes: 4096,
                ..AmqpSettings::default()
            }
        );
    }

    #[test]
    fn amqp_frame_max_bounds_are_inclusive() {
        let limits = Limits::default();
        for frame_max in [4096, 16 * 1024 * 1024] {
            let raw = RawAmqp {
                frame_max: Some(frame_max),
                ..RawAmqp::default()
            };
            assert_eq!(amqp(raw, &limits).unwrap().frame_max as u64, frame_max);
        }
        for (frame_max, message) in [
            (4095, "must be at least 4096, not 4095"),
            (
                16 * 1024 * 1024 + 1,
                "must be at most 16777216, not 16777217",
            ),
            (
                u64::from(u32::MAX) + 1,
                "must be at most 16777216, not 4294967296",
            ),
        ] {
            let raw = RawAmqp {
                frame_max: Some(frame_max),
                ..RawAmqp::default()
            };
            let error = amqp(raw, &limits).unwrap_err();
            assert_eq!(error.key(), "amqp.frame_max");
            assert_eq!(error.message(), message);
        }
    }
}
