//! MQTT over TLS (the 8883 listener) with certificates generated at test time: rumqttc over
//! rustls publishing and subscribing, and certificate login (the verified client certificate's
//! common name as the user name, RabbitMQ's `ssl_cert_login`).

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/mqtt.rs"]
mod mqtt;
#[path = "support/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gateway::{use_tls, users, within, ALICE, GUEST};
use mqgate::RunningGateway;
use mqtt::v4::{subscribe_granted, wait_for_within};
use pki::Pki;
use rumqttc::tokio_rustls::rustls;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
};

const STEP: Duration = Duration::from_secs(10);

/// A gateway with one MQTT TLS listener on a free loopback port, users `guest` and `alice`,
/// anonymous logins off.
async fn tls_gateway(
    tls: Arc<rustls::ServerConfig>,
    certificate_login: bool,
) -> (RunningGateway, SocketAddr) {
    gateway::start(|settings| {
        use_tls(settings, tls);
        settings.users = Arc::new(users(&[GUEST, ALICE], &[]));
        settings.anonymous = None;
        settings.mqtt.certificate_login = certificate_login;
    })
    .await
}

/// Polls until `pick` accepts an incoming packet, failing after [`STEP`].
async fn wait_for<T>(events: &mut EventLoop, pick: impl FnMut(&Packet) -> Option<T>) -> T {
    wait_for_within(STEP, events, pick).await
}

/// Connects with `options` and returns the error its first polls end in: it was refused.
async fn refusal(options: MqttOptions) -> ConnectionError {
    let (_client, mut events) = AsyncClient::new(options, 4);
    within(STEP, "the refusal", async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    panic!("expected a refusal, got {ack:?}")
                }
                Ok(_) => {}
                Err(error) => return error,
            }
        }
    })
    .await
}

/// Connects with `options` and asserts that MQTT refused it with CONNACK `code`.
async fn assert_refused(options: MqttOptions, code: ConnectReturnCode) {
    let error = refusal(options).await;
    assert!(
        matches!(error, ConnectionError::ConnectionRefused(refused) if refused == code),
        "{error:?}"
    );
}

/// Subscribes `sub` to `filter`, publishes `body` to `topic` from `publisher` at QoS 1, and
/// returns what the subscriber received.
async fn round_trip(
    subscriber: &AsyncClient,
    sub_events: &mut EventLoop,
    publisher: &AsyncClient,
    pub_events: &mut EventLoop,
    (filter, topic): (&str, &str),
    body: &'static str,
) -> rumqttc::Publish {
    subscribe_granted(STEP, subscriber, sub_events, filter, QoS::AtLeastOnce).await;
    publisher
        .publish(topic, QoS::AtLeastOnce, false, body)
        .await
        .unwrap();
    wait_for(pub_events, |p| matches!(p, Packet::PubAck(_)).then_some(())).await;
    wait_for(sub_events, |p| match p {
        Packet::Publish(publish) => Some(publish.clone()),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_tls_publishes_and_subscribes() {
    let pki = Pki::generate("plain-tls");
    let (running, addr) = tls_gateway(pki.server_config(false), true).await;

    let mut sub_options = pki.options("tls-sub", addr, None);
    sub_options.set_credentials("alice", "s3cret");
    let (subscriber, mut sub_events) = AsyncClient::new(sub_options, 16);
    let mut pub_options = pki.options("tls-pub", addr, None);
    pub_options.set_credentials("guest", "guest");
    let (publisher, mut pub_events) = AsyncClient::new(pub_options, 16);
    wait_for(&mut pub_events, |p| {
        matches!(p, Packet::ConnAck(_)).then_some(())
    })
    .await;

    let received = round_trip(
        &subscriber,
        &mut sub_events,
        &publisher,
        &mut pub_events,
        ("secure/room.1/temp", "secure/room.1/temp"),
        "21.5",
    )
    .await;
    assert_eq!(received.topic, "secure/room.1/temp");
    assert_eq!(&received.payload[..], b"21.5");
    assert_eq!(received.qos, QoS::AtLeastOnce);

    // Without credentials and without a certificate: anonymous logins are off.
    let anonymous = pki.options("tls-anon", addr, None);
    assert_refused(anonymous, ConnectReturnCode::NotAuthorized).await;
    running.shutdown();
    within(STEP, "the shutdown", running.wait()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_common_name_logs_in_without_password() {
    let pki = Pki::generate("cert-login");
    let (_running, addr) = tls_gateway(pki.server_config(true), true).await;
    let guest = pki.client("guest");

    // No user name, no password: the certificate's CN `guest` is the user.
    let (subscriber, mut sub_events) =
        AsyncClient::new(pki.options("cn-sub", addr, Some(&guest)), 16);
    let (publisher, mut pub_events) =
        AsyncClient::new(pki.options("cn-pub", addr, Some(&guest)), 16);
    let connack = wait_for(&mut pub_events, |p| match p {
        Packet::ConnAck(ack) => Some(ack.code),
        _ => None,
    })
    .await;
    assert_eq!(connack, ConnectReturnCode::Success);
    let received = round_trip(
        &subscriber,
        &mut sub_events,
        &publisher,
        &mut pub_events,
        ("devices/+/state", "devices/lamp-7/state"),
        "on",
    )
    .await;
    assert_eq!(received.topic, "devices/lamp-7/state");
    assert_eq!(&received.payload[..], b"on");

    // A client that sends credentials is judged by them, certificate or not.
    let mut wrong = pki.options("cn-wrong", addr, Some(&guest));
    wrong.set_credentials("alice", "not-her-password");
    assert_refused(wrong, ConnectReturnCode::BadUserNamePassword).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_of_an_unknown_user_is_refused() {
    let pki = Pki::generate("cert-unknown");
    let (_running, addr) = tls_gateway(pki.server_config(true), true).await;
    let stranger = pki.client("mallory");
    assert_refused(
        pki.options("cn-x", addr, Some(&stranger)),
        ConnectReturnCode::NotAuthorized,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_login_off_ignores_the_common_name() {
    let pki = Pki::generate("cert-off");
    let (_running, addr) = tls_gateway(pki.server_config(true), false).await;
    let guest = pki.client("guest");
    assert_refused(
        pki.options("cn-off", addr, Some(&guest)),
        ConnectReturnCode::NotAuthorized,
    )
    .await;
    // With credentials it logs in as usual.
    let mut with_password = pki.options("cn-off-2", addr, Some(&guest));
    with_password.set_credentials("alice", "s3cret");
    let (_client, mut events) = AsyncClient::new(with_password, 4);
    let code = wait_for(&mut events, |p| match p {
        Packet::ConnAck(ack) => Some(ack.code),
        _ => None,
    })
    .await;
    assert_eq!(code, ConnectReturnCode::Success);
}

/// A client without a certificate cannot reach MQTT on a listener that requires one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_certificate_refuses_clients_without_one() {
    let pki = Pki::generate("cert-required");
    let (_running, addr) = tls_gateway(pki.server_config(true), true).await;
    let mut no_cert = pki.options("no-cert", addr, None);
    no_cert.set_credentials("alice", "s3cret");
    let error = refusal(no_cert).await;
    assert!(
        !matches!(error, ConnectionError::ConnectionRefused(_)),
        "refused by TLS, before MQTT: {error:?}"
    );
}
