//! The config file: the shipped default, bad files (each error names its key path), and
//! environment overrides.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::{default_config_path, Pki, TempDir};
use mqgate::config::{load_with_env, ConfigError};
use mqgate::protocols::Protocol;
use mqgate::settings::{default_amqp_settings, default_mqtt_settings, default_stomp_settings};
use mqgate::{Gateway, ListenerSpec, StartError, Transport};
use mqgate_amqp::AmqpSettings;
use mqgate_core::names::VhostName;
use mqgate_mqtt::settings::SessionOverflow;
use mqgate_stomp::StompSettings;

const GUEST_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZLzBH/JENDzgv3HsVusleA$EJYOCzR5knF0ytTRBH5BNqy+0vk1ENeNuYr1VtWQMck";

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

/// Loads `yaml` from a fresh temp dir; the error it gives.
fn load_error(label: &str, yaml: &str) -> ConfigError {
    let dir = TempDir::new(label);
    let path = dir.write("mqgate.yaml", yaml);
    match load_with_env(&path, no_env()) {
        Ok(settings) => panic!("expected an error, got {settings:?}"),
        Err(error) => error,
    }
}

fn assert_error(error: &ConfigError, key: &str, message_part: &str) {
    assert_eq!(error.key(), key, "{error}");
    assert!(
        error.message().contains(message_part),
        "{error} should contain {message_part:?}"
    );
    assert!(error
        .to_string()
        .starts_with(&format!("config error at {key}: ")));
}

#[test]
fn default_config_parses_and_validates() {
    let settings = load_with_env(&default_config_path(), no_env()).unwrap();
    // MQTT on 1883, STOMP on 61613 and AMQP on 5672, every interface (guest stays
    // loopback-only); TLS only once configured.
    assert_eq!(
        settings.listeners,
        vec![
            ListenerSpec {
                protocol: Protocol::Mqtt,
                transport: Transport::Plain,
                addr: "0.0.0.0:1883".parse().unwrap(),
            },
            ListenerSpec {
                protocol: Protocol::Stomp,
                transport: Transport::Plain,
                addr: "0.0.0.0:61613".parse().unwrap(),
            },
            ListenerSpec {
                protocol: Protocol::Amqp,
                transport: Transport::Plain,
                addr: "0.0.0.0:5672".parse().unwrap(),
            },
        ]
    );
    // The mqtt, stomp and amqp sections as shipped state the adapters' defaults.
    assert_eq!(settings.mqtt, default_mqtt_settings(&settings.limits));
    assert_eq!(settings.mqtt.max_packet_size, 16 * 1024 * 1024 + 64 * 1024);
    assert_eq!(settings.stomp, default_stomp_settings(&settings.limits));
    assert_eq!(settings.stomp, StompSettings::default());
    assert_eq!(settings.amqp, default_amqp_settings(&settings.limits));
    assert_eq!(settings.amqp, AmqpSettings::default());
    assert!(settings.tls.is_none());
    assert_eq!(settings.log_filter, "info");
    assert_eq!(settings.limits, mqgate::Limits::default());
    assert_eq!(settings.drain_timeout, Duration::from_secs(10));
    assert_eq!(
        settings.definitions.vhosts,
        vec![VhostName::default_vhost()]
    );
    assert_eq!(
        settings.anonymous.as_ref().map(|u| u.as_str()),
        Some("guest")
    );
    // guest/guest, full rights on "/", loopback only.
    let guest = settings
        .users
        .authenticate("guest", b"guest", IpAddr::V4(Ipv4Addr::LOCALHOST))
        .unwrap();
    assert!(guest.can_access_vhost(&VhostName::default_vhost()));
    assert!(settings
        .users
        .authenticate("guest", b"guest", IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)))
        .is_err());
}

#[test]
fn empty_file_takes_every_default() {
    let dir = TempDir::new("empty");
    let path = dir.write("mqgate.yaml", "");
    let settings = load_with_env(&path, no_env()).unwrap();
    assert_eq!(settings.limits, mqgate::Limits::default());
    assert!(settings.users.is_empty());
    assert_eq!(settings.anonymous, None);
}

#[test]
fn unknown_top_level_key_is_named() {
    let error = load_error("unknown-top", "listners: {}\n");
    assert_error(&error, "listners", "unknown field `listners`");
}

#[test]
fn unknown_nested_key_is_named() {
    let error = load_error("unknown-nested", "limits:\n  max_conections: 5\n");
    assert_error(
        &error,
        "limits.max_conections",
        "unknown field `max_conections`",
    );
    let error = load_error(
        "unknown-in-list",
        &format!("users:\n  - name: a\n    password_hash: \"{GUEST_HASH}\"\n    admin: true\n"),
    );
    assert_error(&error, "users[0].admin", "unknown field `admin`");
}

#[test]
fn wrong_type_is_named() {
    let error = load_error("wrong-type", "limits:\n  max_connections: lots\n");
    assert_error(
        &error,
        "limits.max_connections",
        "invalid type: string \"lots\"",
    );
    // Not rounded nor coerced.
    let error = load_error("float", "limits:\n  max_connections: 1.5\n");
    assert_error(&error, "limits.max_connections", "floating point");
    let error = load_error("bool", "shutdown:\n  drain_timeout_ms: true\n");
    assert_error(&error, "shutdown.drain_timeout_ms", "boolean");
    let error = load_error("negative", "limits:\n  max_message_size: -1\n");
    assert_error(&error, "limits.max_message_size", "-1");
}

#[test]
fn bad_values_are_named() {
    let error = load_error("zero", "limits:\n  max_connections: 0\n");
    assert_error(&error, "limits.max_connections", "at least 1");
    let error = load_error("log", "log:\n  level: \"mqgate=loud\"\n");
    assert_error(&error, "log.level", "not a log filter");
    let error = load_error(
        "buffer",
        "limits:\n  max_message_size: 1000\n  outbound_buffer_bytes: 999\n",
    );
    assert_error(&error, "limits.outbound_buffer_bytes", "max_message_size");
}

#[test]
fn missing_required_key_is_named() {
    let error = load_error("missing", "users:\n  - name: a\n");
    assert_error(&error, "users[0].password_hash", "required");
}

#[test]
fn bad_socket_address_is_named() {
    let error = load_error(
        "bad-addr",
        "listeners:\n  mqtt:\n    plain: \"localhost:1883\"\n",
    );
    assert_error(
        &error,
        "listeners.mqtt.plain",
        "'localhost:1883' is not a socket address",
    );
    let error = load_error(
        "bad-port",
        "listeners:\n  amqp:\n    plain: \"0.0.0.0:99999\"\n",
    );
    assert_error(&error, "listeners.amqp.plain", "is not a socket address");
    // A TLS address without the tls section.
    let error = load_error(
        "no-tls",
        "listeners:\n  stomp:\n    tls: \"0.0.0.0:61614\"\n",
    );
    assert_error(&error, "listeners.stomp.tls", "needs the tls section");
}

#[test]
fn every_protocol_can_be_listened_for() {
    // MQTT (issue 3), STOMP (issue 4) and AMQP (issue 5) have landed: no listener key is
    // refused for want of an adapter (the Pending refusal is tested in the crate's units).
    let dir = TempDir::new("all-landed");
    let path = dir.write(
        "mqgate.yaml",
        "listeners:\n  mqtt:\n    plain: \"0.0.0.0:1883\"\n  stomp:\n    plain: \"0.0.0.0:61613\"\n  amqp:\n    plain: \"0.0.0.0:5672\"\n",
    );
    let settings = load_with_env(&path, no_env()).unwrap();
    let protocols: Vec<Protocol> = settings
        .listeners
        .iter()
        .map(|listener| listener.protocol)
        .collect();
    assert_eq!(protocols, Protocol::ALL);
    for protocol in Protocol::ALL {
        assert_eq!(mqgate::protocols::not_landed_reason(protocol), None);
    }
}

#[test]
fn missing_tls_file_is_named() {
    let error = load_error(
        "missing-tls",
        "tls:\n  certificate: /nonexistent/mqgate/x.pem\n  private_key: /nonexistent/mqgate/x.key\n",
    );
    assert_error(
        &error,
        "tls.certificate",
        "cannot read /nonexistent/mqgate/x.pem: No such file or directory",
    );
}

#[test]
fn tls_files_load_relative_to_the_config_file() {
    let pki = Pki::generate();
    // The key file is missing: the error names private_key, with the resolved path.
    let yaml = "tls:\n  certificate: server.pem\n  private_key: nothere.key\n";
    let path = pki.dir.write("mqgate.yaml", yaml);
    let error = load_with_env(&path, no_env()).unwrap_err();
    assert_eq!(error.key(), "tls.private_key", "{error}");
    assert!(error.message().contains("nothere.key"), "{error}");
    // Both present: it loads; requiring client certificates needs a CA.
    let yaml = "tls:\n  certificate: server.pem\n  private_key: server.key\n  client_ca: ca.pem\n  require_client_certificate: true\n";
    let path = pki.dir.write("mqgate.yaml", yaml);
    assert!(load_with_env(&path, no_env()).unwrap().tls.is_some());
    let yaml = "tls:\n  certificate: server.pem\n  private_key: server.key\n  require_client_certificate: true\n";
    let path = pki.dir.write("mqgate.yaml", yaml);
    let error = load_with_env(&path, no_env()).unwrap_err();
    assert_eq!(error.key(), "tls.require_client_certificate", "{error}");
    // A key that is not a key.
    let yaml = "tls:\n  certificate: server.pem\n  private_key: ca.pem\n";
    let path = pki.dir.write("mqgate.yaml", yaml);
    let error = load_with_env(&path, no_env()).unwrap_err();
    assert_error(&error, "tls.private_key", "no private key");
}

#[test]
fn unknown_user_in_anonymous_is_named() {
    let error = load_error(
        "anon",
        &format!(
            "users:\n  - name: guest\n    password_hash: \"{GUEST_HASH}\"\nauth:\n  anonymous:\n    user: nobody\n"
        ),
    );
    assert_error(&error, "auth.anonymous.user", "no user 'nobody'");
}

#[test]
fn bad_password_hash_is_named() {
    let error = load_error(
        "hash",
        &format!("users:\n  - name: ok\n    password_hash: \"{GUEST_HASH}\"\n  - name: bob\n    password_hash: \"bob123\"\n"),
    );
    assert_error(&error, "users[1].password_hash", "mqgate hash-password");
}

#[test]
fn permission_for_undeclared_vhost_is_named() {
    let error = load_error(
        "perm",
        &format!("users:\n  - name: a\n    password_hash: \"{GUEST_HASH}\"\n    permissions:\n      - {{vhost: /prod, configure: '', write: '', read: ''}}\n"),
    );
    assert_error(
        &error,
        "users[0].permissions[0].vhost",
        "vhost '/prod' is not declared in vhosts",
    );
}

#[test]
fn bad_definitions_are_named() {
    let error = load_error(
        "exchange-type",
        "exchanges:\n  - {name: a, type: direct}\n  - {name: b, type: fan-out}\n",
    );
    assert_error(
        &error,
        "exchanges[1].type",
        "unknown exchange type 'fan-out'",
    );
    let error = load_error("queue-vhost", "queues:\n  - {name: q, vhost: /nope}\n");
    assert_error(&error, "queues[0].vhost", "not declared in vhosts");
    let error = load_error(
        "argument",
        "queues:\n  - name: q\n    arguments:\n      x-max-length: [1, 2]\n",
    );
    assert_error(
        &error,
        "queues[0].arguments.x-max-length",
        "expected true or false, an integer, a float or a string",
    );
    let error = load_error(
        "destination-type",
        "bindings:\n  - {source: amq.topic, destination: q, destination_type: topic}\n",
    );
    assert_error(
        &error,
        "bindings[0].destination_type",
        "neither queue nor exchange",
    );
}

#[tokio::test]
async fn refused_pre_declaration_stops_the_start_naming_the_entry() {
    let dir = TempDir::new("refused");
    let path = dir.write(
        "mqgate.yaml",
        "queues:\n  - name: jobs\nbindings:\n  - {source: amq.direct, destination: jobs, routing_key: jobs}\n  - {source: amq.direct, destination: nope, routing_key: x}\n",
    );
    let settings = load_with_env(&path, no_env()).unwrap();
    let error = match Gateway::start(settings).await {
        Ok(_) => panic!("the binding to a missing queue must stop the start"),
        Err(error) => error,
    };
    assert!(matches!(error, StartError::Definition(_)), "{error:?}");
    let text = error.to_string();
    assert!(text.starts_with("config error at bindings[1]: "), "{text}");
    assert!(text.contains("'nope'"), "{text}");
}

#[test]
fn environment_overrides_keys() {
    let env = HashMap::from([
        ("MQGATE_LOG__LEVEL".to_owned(), "debug".to_owned()),
        ("MQGATE_LIMITS__MAX_CONNECTIONS".to_owned(), "10".to_owned()),
        (
            "MQGATE_SHUTDOWN__DRAIN_TIMEOUT_MS".to_owned(),
            "250".to_owned(),
        ),
        (
            "MQGATE_AUTH__ANONYMOUS__ENABLED".to_owned(),
            "false".to_owned(),
        ),
        // Not ours: ignored.
        (
            "OTHER_LIMITS__MAX_CONNECTIONS".to_owned(),
            "zero".to_owned(),
        ),
    ]);
    let settings = load_with_env(&default_config_path(), env).unwrap();
    assert_eq!(settings.log_filter, "debug");
    assert_eq!(settings.limits.max_connections, 10);
    assert_eq!(settings.drain_timeout, Duration::from_millis(250));
    assert_eq!(settings.anonymous, None);
}

#[test]
fn bad_environment_override_is_named() {
    let env = HashMap::from([(
        "MQGATE_LIMITS__MAX_CONNECTIONS".to_owned(),
        "ten".to_owned(),
    )]);
    let error = load_with_env(&default_config_path(), env).unwrap_err();
    assert_error(&error, "limits.max_connections", "\"ten\"");
    let env = HashMap::from([("MQGATE_LIMITS__MAX_CONECTIONS".to_owned(), "1".to_owned())]);
    let error = load_with_env(&default_config_path(), env).unwrap_err();
    assert_error(&error, "limits.max_conections", "unknown field");
    let env = HashMap::from([(
        "MQGATE_LISTENERS__AMQP__TLS".to_owned(),
        "0.0.0.0:5671".to_owned(),
    )]);
    let error = load_with_env(&default_config_path(), env).unwrap_err();
    assert_error(&error, "listeners.amqp.tls", "needs the tls section");
}

#[test]
fn missing_or_unparsable_file_is_reported() {
    let dir = TempDir::new("nofile");
    let error = load_with_env(&dir.path().join("absent.yaml"), no_env()).unwrap_err();
    assert_eq!(error.key(), "");
    assert!(
        error.to_string().starts_with("config error: cannot load"),
        "{error}"
    );
    let path = dir.write("broken.yaml", "limits: [unclosed\n");
    let error = load_with_env(&path, no_env()).unwrap_err();
    assert!(
        error.to_string().starts_with("config error: cannot load"),
        "{error}"
    );
}

#[test]
fn mqtt_section_maps_onto_the_adapter_settings() {
    let dir = TempDir::new("mqtt");
    let path = dir.write(
        "mqgate.yaml",
        "limits:\n  max_message_size: 1000\nvhosts:\n  - name: /\n  - name: iot\nmqtt:\n  vhost: iot\n  receive_maximum: 10\n  default_inflight: 5\n  max_keepalive_secs: 120\n  topic_alias_maximum: 0\n  max_client_id_length: 64\n  max_subscriptions: 7\n  session_queue_length: 100\n  session_overflow: reject-publish\n  max_persistent_sessions: 3\n  max_session_expiry_secs: 3600\n  max_retained_per_subscribe: 9\n  takeover_timeout_ms: 250\n  certificate_login: false\n",
    );
    let mqtt = load_with_env(&path, no_env()).unwrap().mqtt;
    assert_eq!(mqtt.vhost, "iot");
    // Derived from limits.max_message_size when not set.
    assert_eq!(mqtt.max_packet_size, 1000 + 64 * 1024);
    assert_eq!(mqtt.receive_maximum, 10);
    assert_eq!(mqtt.default_inflight, 5);
    assert_eq!(mqtt.max_keepalive, 120);
    assert_eq!(mqtt.topic_alias_maximum, 0);
    assert_eq!(mqtt.max_client_id_len, 64);
    assert_eq!(mqtt.max_subscriptions, 7);
    assert_eq!(mqtt.session_queue_length, 100);
    assert_eq!(mqtt.session_overflow, SessionOverflow::RejectPublish);
    assert_eq!(mqtt.max_persistent_sessions, 3);
    assert_eq!(mqtt.max_session_expiry, Duration::from_secs(3600));
    assert_eq!(mqtt.max_retained_per_subscribe, 9);
    assert_eq!(mqtt.takeover_timeout, Duration::from_millis(250));
    assert!(!mqtt.certificate_login);
}

#[test]
fn mqtt_environment_overrides() {
    let env = HashMap::from([
        (
            "MQGATE_MQTT__SESSION_QUEUE_LENGTH".to_owned(),
            "42".to_owned(),
        ),
        (
            "MQGATE_MQTT__SESSION_OVERFLOW".to_owned(),
            "reject-publish".to_owned(),
        ),
        (
            "MQGATE_MQTT__MAX_PACKET_SIZE".to_owned(),
            "65536".to_owned(),
        ),
        (
            "MQGATE_MQTT__CERTIFICATE_LOGIN".to_owned(),
            "false".to_owned(),
        ),
        (
            "MQGATE_LISTENERS__MQTT__PLAIN".to_owned(),
            "127.0.0.1:0".to_owned(),
        ),
    ]);
    let settings = load_with_env(&default_config_path(), env).unwrap();
    assert_eq!(settings.mqtt.session_queue_length, 42);
    assert_eq!(
        settings.mqtt.session_overflow,
        SessionOverflow::RejectPublish
    );
    assert_eq!(settings.mqtt.max_packet_size, 65536);
    assert!(!settings.mqtt.certificate_login);
    assert_eq!(settings.listeners[0].addr, "127.0.0.1:0".parse().unwrap());

    let env = HashMap::from([("MQGATE_MQTT__RECEIVE_MAXIMUM".to_owned(), "many".to_owned())]);
    let error = load_with_env(&default_config_path(), env).unwrap_err();
    assert_error(&error, "mqtt.receive_maximum", "\"many\"");
    let env = HashMap::from([("MQGATE_MQTT__MAX_QOS".to_owned(), "1".to_owned())]);
    let error = load_with_env(&default_config_path(), env).unwrap_err();
    assert_error(&error, "mqtt.max_qos", "unknown field `max_qos`");
}

#[test]
fn bad_mqtt_values_are_named() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "mqtt:\n  max_packet_size: 100\n",
            "mqtt.max_packet_size",
            "at least 1024",
        ),
        (
            "mqtt:\n  max_packet_size: 300000000\n",
            "mqtt.max_packet_size",
            "at most 268435460",
        ),
        (
            "mqtt:\n  receive_maximum: 0\n",
            "mqtt.receive_maximum",
            "at least 1",
        ),
        (
            "mqtt:\n  receive_maximum: 65536\n",
            "mqtt.receive_maximum",
            "at most 65535",
        ),
        (
            "mqtt:\n  default_inflight: 0\n",
            "mqtt.default_inflight",
            "at least 1",
        ),
        (
            "mqtt:\n  max_keepalive_secs: 70000\n",
            "mqtt.max_keepalive_secs",
            "at most 65535",
        ),
        (
            "mqtt:\n  topic_alias_maximum: -1\n",
            "mqtt.topic_alias_maximum",
            "-1",
        ),
        (
            "mqtt:\n  max_client_id_length: 22\n",
            "mqtt.max_client_id_length",
            "at least 23",
        ),
        (
            "mqtt:\n  max_subscriptions: 0\n",
            "mqtt.max_subscriptions",
            "at least 1",
        ),
        (
            "mqtt:\n  session_queue_length: 0\n",
            "mqtt.session_queue_length",
            "at least 1",
        ),
        (
            "mqtt:\n  session_queue_length: 5000000000\n",
            "mqtt.session_queue_length",
            "at most 4294967295",
        ),
        (
            "mqtt:\n  session_overflow: drop-tail\n",
            "mqtt.session_overflow",
            "'drop-tail' is none of block-publisher, drop-head, reject-publish",
        ),
        (
            "mqtt:\n  max_persistent_sessions: 0\n",
            "mqtt.max_persistent_sessions",
            "at least 1",
        ),
        (
            "mqtt:\n  max_session_expiry_secs: 4294967296\n",
            "mqtt.max_session_expiry_secs",
            "at most 4294967295",
        ),
        (
            "mqtt:\n  max_retained_per_subscribe: 0\n",
            "mqtt.max_retained_per_subscribe",
            "at least 1",
        ),
        (
            "mqtt:\n  takeover_timeout_ms: 0\n",
            "mqtt.takeover_timeout_ms",
            "at least 1",
        ),
        (
            "mqtt:\n  certificate_login: yes\n",
            "mqtt.certificate_login",
            "true or false",
        ),
        (
            "mqtt:\n  receive_maximum: 1.5\n",
            "mqtt.receive_maximum",
            "floating point",
        ),
        (
            "mqtt:\n  vhost: /iot\n",
            "mqtt.vhost",
            "not declared in vhosts",
        ),
        ("mqtt:\n  vhost: \"\"\n", "mqtt.vhost", "cannot be empty"),
        (
            "mqtt:\n  max_inflight: 5\n",
            "mqtt.max_inflight",
            "unknown field `max_inflight`",
        ),
    ];
    for (index, (yaml, key, message)) in cases.iter().enumerate() {
        let error = load_error(&format!("mqtt-{index}"), yaml);
        assert_error(&error, key, message);
    }
}

#[test]
fn stomp_section_maps_onto_the_adapter_settings() {
    let dir = TempDir::new("stomp");
    let path = dir.write(
        "mqgate.yaml",
        "vhosts:\n  - name: /\n  - name: scripts\nstomp:\n  default_vhost: scripts\n  max_frame_size: 1048576\n  max_headers: 20\n  max_header_length: 1024\n  min_heartbeat_ms: 250\n  heartbeat_grace_factor: 3\n  max_subscriptions: 8\n  max_unconfirmed_sends: 4\n  max_prefetch: 50\n  max_transactions: 0\n  max_transaction_frames: 10\n  max_transaction_bytes: 65536\n  certificate_login: false\n",
    );
    let stomp = load_with_env(&path, no_env()).unwrap().stomp;
    assert_eq!(
        stomp,
        StompSettings {
            default_vhost: "scripts".to_owned(),
            max_frame_size: 1024 * 1024,
            max_headers: 20,
            max_header_len: 1024,
            min_heartbeat: Duration::from_millis(250),
            heartbeat_grace_factor: 3,
            max_subscriptions: 8,
            max_unconfirmed_sends: 4,
            max_prefetch: 50,
            max_transactions: 0,
            max_transaction_frames: 10,
            max_transaction_bytes: 65536,
            certificate_login: false,
        }
    );
}

#[test]
fn stomp_frame_size_default_follows_a_smaller_max_message_size() {
    let dir = TempDir::new("stomp-frame");
    let path = dir.write("mqgate.yaml", "limits:\n  max_message_size: 1000\n");
    let settings = load_with_env(&path, no_env()).unwrap();
    assert_eq!(settings.stomp.max_frame_size, 1000 + 64 * 1024);
    assert_eq!(
        settings.stomp,
        StompSettings {
            max_frame_size: 1000 + 64 * 1024,
            ..StompSettings::default()
        }
    );
    // Larger messages than 4 MiB do not raise the STOMP default.
    let path = dir.write(
        "big.yaml",
        "limits:\n  max_message_size: 67108864\n  outbound_buffer_bytes: 67108864\n",
    );
    let settings = load_with_env(&path, no_env()).unwrap();
    assert_eq!(settings.stomp.max_frame_size, 4 * 1024 * 1024);
}

#[test]
fn stomp_environment_overrides() {
    let env = HashMap::from([
        ("MQGATE_STOMP__MAX_PREFETCH".to_owned(), "100".to_owned()),
        (
            "MQGATE_STOMP__MIN_HEARTBEAT_MS".to_owned(),
            "5000".to_owned(),
        ),
        (
            "MQGATE_STOMP__MAX_FRAME_SIZE".to_owned(),
            "65536".to_owned(),
        ),
        (
            "MQGATE_STOMP__CERTIFICATE_LOGIN".to_owned(),
            "false".to_owned(),
        ),
        ("MQGATE_STOMP__MAX_TRANSACTIONS".to_owned(), "0".to_owned()),
        (
            "MQGATE_LISTENERS__STOMP__PLAIN".to_owned(),
            "127.0.0.1:0".to_owned(),
        ),
    ]);
    let settings = load_with_env(&default_config_path(), env).unwrap();
    assert_eq!(settings.stomp.max_prefetch, 100);
    assert_eq!(settings.stomp.min_heartbeat, Duration::from_secs(5));
    assert_eq!(settings.stomp.max_frame_size, 65536);
    assert!(!settings.stomp.certificate_login);
    assert_eq!(settings.stomp.max_transactions, 0);
    let stomp = settings
        .listeners
        .iter()
        .find(|listener| listener.protocol == Protocol::Stomp)
        .unwrap();
    assert_eq!(stomp.addr, "127.0.0.1:0".parse().unwrap());
    // The rest of the section is untouched.
    assert_eq!(
        settings.stomp.max_subscriptions,
        StompSettings::default().max_subscriptions
    );

    let env = HashMap::from([("MQGATE_STOMP__MAX_HEADERS".to_owned(), "lots".to_owned())]);
    let error = load_with_env(&default_config_path(), env).unwrap_err();
    assert_error(&error, "stomp.max_headers", "\"lots\"");
    let env = HashMap::from([("MQGATE_STOMP__HEARTBEAT_MS".to_owned(), "1".to_owned())]);
    let error = load_with_env(&default_config_path(), env).unwrap_err();
    assert_error(&error, "stomp.heartbeat_ms", "unknown field `heartbeat_ms`");
    let env = HashMap::from([(
        "MQGATE_LISTENERS__STOMP__TLS".to_owned(),
        "127.0.0.1:0".to_owned(),
    )]);
    let error = load_with_env(&default_config_path(), env).unwrap_err();
    assert_error(&error, "listeners.stomp.tls", "needs the tls section");
}

#[test]
fn stomp_tls_listener_loads_with_certificates() {
    let pki = Pki::generate();
    let yaml = "tls:\n  certificate: server.pem\n  private_key: server.key\nlisteners:\n  stomp:\n    plain: \"0.0.0.0:61613\"\n    tls: \"0.0.0.0:61614\"\n";
    let path = pki.dir.write("mqgate.yaml", yaml);
    let settings = load_with_env(&path, no_env()).unwrap();
    assert!(settings.tls.is_some());
    assert_eq!(
        settings.listeners,
        vec![
            ListenerSpec {
                protocol: Protocol::Stomp,
                transport: Transport::Plain,
                addr: "0.0.0.0:61613".parse().unwrap(),
            },
            ListenerSpec {
                protocol: Protocol::Stomp,
                transport: Transport::Tls,
                addr: "0.0.0.0:61614".parse().unwrap(),
            },
        ]
    );
}

#[test]
fn bad_stomp_values_are_named() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "stomp:\n  default_vhost: /scripts\n",
            "stomp.default_vhost",
            "not declared in vhosts",
        ),
        (
            "stomp:\n  default_vhost: \"\"\n",
            "stomp.default_vhost",
            "cannot be empty",
        ),
        (
            "stomp:\n  max_frame_size: 1024\n",
            "stomp.max_frame_size",
            "at least 65536",
        ),
        (
            "stomp:\n  max_frame_size: 16842753\n",
            "stomp.max_frame_size",
            "at most limits.max_message_size + 65536 (16842752)",
        ),
        (
            "limits:\n  max_message_size: 1000\nstomp:\n  max_frame_size: 4194304\n",
            "stomp.max_frame_size",
            "(66536)",
        ),
        (
            "stomp:\n  max_headers: 9\n",
            "stomp.max_headers",
            "at least 10",
        ),
        (
            "stomp:\n  max_header_length: 255\n",
            "stomp.max_header_length",
            "at least 256",
        ),
        (
            "stomp:\n  max_frame_size: 65536\n  max_header_length: 65537\n",
            "stomp.max_header_length",
            "at most stomp.max_frame_size (65536)",
        ),
        (
            "stomp:\n  min_heartbeat_ms: 99\n",
            "stomp.min_heartbeat_ms",
            "at least 100",
        ),
        (
            "stomp:\n  heartbeat_grace_factor: 1\n",
            "stomp.heartbeat_grace_factor",
            "at least 2",
        ),
        (
            "stomp:\n  heartbeat_grace_factor: 4294967296\n",
            "stomp.heartbeat_grace_factor",
            "at most 4294967295",
        ),
        (
            "stomp:\n  max_subscriptions: 0\n",
            "stomp.max_subscriptions",
            "at least 1",
        ),
        (
            "stomp:\n  max_unconfirmed_sends: 0\n",
            "stomp.max_unconfirmed_sends",
            "at least 1",
        ),
        (
            "stomp:\n  max_prefetch: 0\n",
            "stomp.max_prefetch",
            "at least 1",
        ),
        (
            "stomp:\n  max_prefetch: 4294967296\n",
            "stomp.max_prefetch",
            "at most 4294967295",
        ),
        (
            "stomp:\n  max_transactions: -1\n",
            "stomp.max_transactions",
            "-1",
        ),
        (
            "stomp:\n  max_transaction_frames: 0\n",
            "stomp.max_transaction_frames",
            "at least 1",
        ),
        (
            "stomp:\n  max_transaction_bytes: 0\n",
            "stomp.max_transaction_bytes",
            "at least 1",
        ),
        (
            "stomp:\n  max_prefetch: 1.5\n",
            "stomp.max_prefetch",
            "floating point",
        ),
        (
            "stomp:\n  certificate_login: yes\n",
            "stomp.certificate_login",
            "true or false",
        ),
        (
            "stomp:\n  max_frame_length: 5\n",
            "stomp.max_frame_length",
            "unknown field `max_frame_length`",
        ),
    ];
    for (index, (yaml, key, message)) in cases.iter().enumerate() {
        let error = load_error(&format!("stomp-{index}"), yaml);
        assert_error(&error, key, message);
    }
}

#[test]
fn amqp_section_maps_onto_the_adapter_settings() {
    let dir = TempDir::new("amqp");
    let path = dir.write(
        "mqgate.yaml",
        "limits:\n  max_message_size: 1000000\n  session_window_bytes: 2097152\namqp:\n  frame_max: 65536\n  channel_max: 16\n  heartbeat_s: 0\n  max_consumers_per_channel: 8\n  max_unconfirmed: 100\n  max_transaction_operations: 50\n  max_transaction_bytes: 65536\n  channel_window_bytes: 524288\n  close_timeout_ms: 250\n",
    );
    let amqp = load_with_env(&path, no_env()).unwrap().amqp;
    assert_eq!(
        amqp,
        AmqpSettings {
            frame_max: 65536,
            channel_max: 16,
            heartbeat: 0,
            // Not a key of its own: limits.max_message_size.
            max_message_size: 1_000_000,
            max_consumers_per_channel: 8,
            max_unconfirmed: 100,
            max_transaction_operations: 50,
            max_transaction_bytes: 65536,
            // Set: not limits.session_window_bytes.
            channel_window_bytes: 524_288,
            close_timeout: Duration::from_millis(250),
        }
    );
}

#[test]
fn amqp_defaults_follow_the_limits() {
    let dir = TempDir::new("amqp-limits");
    let path = dir.write(
        "mqgate.yaml",
        "limits:\n  max_message_size: 1000\n  session_window_bytes: 4096\n",
    );
    let settings = load_with_env(&path, no_env()).unwrap();
    assert_eq!(settings.amqp, default_amqp_settings(&settings.limits));
    assert_eq!(
        settings.amqp,
        AmqpSettings {
            max_message_size: 1000,
            channel_window_bytes: 4096,
            ..AmqpSettings::default()
        }
    );
    // The bounds are inclusive.
    let path = dir.write(
        "bounds.yaml",
        "amqp:\n  frame_max: 4096\n  channel_max: 65535\n  heartbeat_s: 65535\n  max_consumers_per_channel: 1\n  max_unconfirmed: 1\n  max_transaction_operations: 1\n  max_transaction_bytes: 1\n  channel_window_bytes: 1\n  close_timeout_ms: 1\n",
    );
    let amqp = load_with_env(&path, no_env()).unwrap().amqp;
    assert_eq!(
        (amqp.frame_max, amqp.channel_max, amqp.heartbeat),
        (4096, 65535, 65535)
    );
    assert_eq!(amqp.max_consumers_per_channel, 1);
    assert_eq!(amqp.close_timeout, Duration::from_millis(1));
    let path = dir.write("largest.yaml", "amqp:\n  frame_max: 16777216\n");
    let amqp = load_with_env(&path, no_env()).unwrap().amqp;
    assert_eq!(amqp.frame_max, 16 * 1024 * 1024);
}

#[test]
fn amqp_environment_overrides() {
    let env = HashMap::from([
        ("MQGATE_AMQP__FRAME_MAX".to_owned(), "8192".to_owned()),
        ("MQGATE_AMQP__HEARTBEAT_S".to_owned(), "0".to_owned()),
        ("MQGATE_AMQP__CHANNEL_MAX".to_owned(), "64".to_owned()),
        (
            "MQGATE_AMQP__CHANNEL_WINDOW_BYTES".to_owned(),
            "65536".to_owned(),
        ),
        (
            "MQGATE_LISTENERS__AMQP__PLAIN".to_owned(),
            "127.0.0.1:0".to_owned(),
        ),
    ]);
    let settings = load_with_env(&default_config_path(), env).unwrap();
    assert_eq!(settings.amqp.frame_max, 8192);
    assert_eq!(settings.amqp.heartbeat, 0);
    assert_eq!(settings.amqp.channel_max, 64);
    assert_eq!(settings.amqp.channel_window_bytes, 65536);
    let amqp = settings
        .listeners
        .iter()
        .find(|listener| listener.protocol == Protocol::Amqp)
        .unwrap();
    assert_eq!(amqp.addr, "127.0.0.1:0".parse().unwrap());
    // The rest of the section is untouched.
    assert_eq!(
        settings.amqp.max_unconfirmed,
        AmqpSettings::default().max_unconfirmed
    );

    let env = HashMap::from([("MQGATE_AMQP__FRAME_MAX".to_owned(), "big".to_owned())]);
    let error = load_with_env(&default_config_path(), env).unwrap_err();
    assert_error(&error, "amqp.frame_max", "\"big\"");
    let env = HashMap::from([("MQGATE_AMQP__FRAME_MAX".to_owned(), "1024".to_owned())]);
    let error = load_with_env(&default_config_path(), env).unwrap_err();
    assert_error(&error, "amqp.frame_max", "at least 4096");
    let env = HashMap::from([("MQGATE_AMQP__HEARTBEAT".to_owned(), "30".to_owned())]);
    let error = load_with_env(&default_config_path(), env).unwrap_err();
    assert_error(&error, "amqp.heartbeat", "unknown field `heartbeat`");
}

#[test]
fn amqp_tls_listener_loads_with_certificates() {
    let pki = Pki::generate();
    let yaml = "tls:\n  certificate: server.pem\n  private_key: server.key\nlisteners:\n  amqp:\n    plain: \"0.0.0.0:5672\"\n    tls: \"0.0.0.0:5671\"\n";
    let path = pki.dir.write("mqgate.yaml", yaml);
    let settings = load_with_env(&path, no_env()).unwrap();
    assert!(settings.tls.is_some());
    assert_eq!(
        settings.listeners,
        vec![
            ListenerSpec {
                protocol: Protocol::Amqp,
                transport: Transport::Plain,
                addr: "0.0.0.0:5672".parse().unwrap(),
            },
            ListenerSpec {
                protocol: Protocol::Amqp,
                transport: Transport::Tls,
                addr: "0.0.0.0:5671".parse().unwrap(),
            },
        ]
    );
}

#[test]
fn bad_amqp_values_are_named() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "amqp:\n  frame_max: 4095\n",
            "amqp.frame_max",
            "must be at least 4096, not 4095",
        ),
        (
            "amqp:\n  frame_max: 16777217\n",
            "amqp.frame_max",
            "must be at most 16777216, not 16777217",
        ),
        (
            "amqp:\n  frame_max: 4294967296\n",
            "amqp.frame_max",
            "must be at most 16777216",
        ),
        (
            "amqp:\n  channel_max: 0\n",
            "amqp.channel_max",
            "must be at least 1, not 0",
        ),
        (
            "amqp:\n  channel_max: 65536\n",
            "amqp.channel_max",
            "must be at most 65535, not 65536",
        ),
        ("amqp:\n  heartbeat_s: -1\n", "amqp.heartbeat_s", "-1"),
        (
            "amqp:\n  heartbeat_s: 65536\n",
            "amqp.heartbeat_s",
            "must be at most 65535, not 65536",
        ),
        (
            "amqp:\n  max_consumers_per_channel: 0\n",
            "amqp.max_consumers_per_channel",
            "at least 1",
        ),
        (
            "amqp:\n  max_unconfirmed: 0\n",
            "amqp.max_unconfirmed",
            "at least 1",
        ),
        (
            "amqp:\n  max_transaction_operations: 0\n",
            "amqp.max_transaction_operations",
            "at least 1",
        ),
        (
            "amqp:\n  max_transaction_bytes: 0\n",
            "amqp.max_transaction_bytes",
            "at least 1",
        ),
        (
            "amqp:\n  channel_window_bytes: 0\n",
            "amqp.channel_window_bytes",
            "at least 1",
        ),
        (
            "amqp:\n  close_timeout_ms: 0\n",
            "amqp.close_timeout_ms",
            "at least 1",
        ),
        (
            "amqp:\n  frame_max: 1.5\n",
            "amqp.frame_max",
            "floating point",
        ),
        (
            "amqp:\n  heartbeat_s: true\n",
            "amqp.heartbeat_s",
            "boolean",
        ),
        (
            "amqp:\n  max_message_size: 1024\n",
            "amqp.max_message_size",
            "unknown field `max_message_size`",
        ),
        (
            "amqp:\n  heartbeat: 60\n",
            "amqp.heartbeat",
            "unknown field `heartbeat`",
        ),
    ];
    for (index, (yaml, key, message)) in cases.iter().enumerate() {
        let error = load_error(&format!("amqp-{index}"), yaml);
        assert_error(&error, key, message);
    }
}
