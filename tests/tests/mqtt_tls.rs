//! MQTT over TLS (the 8883 listener) with certificates generated at test time: rumqttc over
//! rustls publishing and subscribing, and certificate login (the verified client certificate's
//! common name as the user name, RabbitMQ's `ssl_cert_login`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mqgate::protocols::Protocol;
use mqgate::tls::TlsFiles;
use mqgate::{Gateway, ListenerSpec, RunningGateway, Settings, Transport};
use mqgate_core::auth::{hash_password, PermissionSpec, User, UserSpec, Users};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rumqttc::tokio_rustls::rustls;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
    TlsConfiguration,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const STEP: Duration = Duration::from_secs(10);

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "mqgate-mqtt-tls-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test CA, a server certificate for `localhost` / 127.0.0.1, and client certificates
/// signed on demand.
struct Pki {
    _dir: TempDir,
    ca_key: KeyPair,
    ca_cert: Certificate,
    server_cert: PathBuf,
    server_key: PathBuf,
    ca_pem: PathBuf,
}

/// A client certificate and its key.
struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl Pki {
    fn generate(label: &str) -> Self {
        let dir = TempDir::new(label);
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "mqgate MQTT test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let mut server_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        server_params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params
            .signed_by(&server_key, &ca_cert, &ca_key)
            .unwrap();
        Self {
            ca_pem: dir.write("ca.pem", &ca_cert.pem()),
            server_cert: dir.write("server.pem", &server_cert.pem()),
            server_key: dir.write("server.key", &server_key.serialize_pem()),
            _dir: dir,
            ca_key,
            ca_cert,
        }
    }

    /// A client certificate whose subject common name is `common_name`.
    fn client(&self, common_name: &str) -> ClientIdentity {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "mqgate tests");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        ClientIdentity {
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
        }
    }

    /// The gateway's TLS configuration; `client_certificates`: verify them (and require one).
    fn server_config(&self, client_certificates: bool) -> Arc<rustls::ServerConfig> {
        mqgate::tls::server_config(&TlsFiles {
            certificate: self.server_cert.clone(),
            private_key: self.server_key.clone(),
            client_ca: client_certificates.then(|| self.ca_pem.clone()),
            require_client_certificate: client_certificates,
        })
        .unwrap()
    }

    /// rumqttc's TLS transport: rustls with the ring provider, trusting the test CA,
    /// presenting `identity` if given.
    fn transport(&self, identity: Option<&ClientIdentity>) -> rumqttc::Transport {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            Some(identity) => builder
                .with_client_auth_cert(
                    identity.chain.clone(),
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone())),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        rumqttc::Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config)))
    }
}

fn users() -> Users {
    let spec = |name: &str, password: &str| UserSpec {
        name: name.to_owned(),
        password_hash: hash_password(password).unwrap(),
        loopback_only: true,
        tags: Vec::new(),
        permissions: vec![PermissionSpec {
            vhost: "/".to_owned(),
            configure: ".*".to_owned(),
            write: ".*".to_owned(),
            read: ".*".to_owned(),
        }],
    };
    Users::new([
        User::new(spec("guest", "guest")).unwrap(),
        User::new(spec("alice", "s3cret")).unwrap(),
    ])
    .unwrap()
}

/// A gateway with one MQTT TLS listener on a free loopback port, anonymous logins off.
async fn tls_gateway(
    tls: Arc<rustls::ServerConfig>,
    certificate_login: bool,
) -> (RunningGateway, SocketAddr) {
    let mut settings = Settings {
        tls: Some(tls),
        listeners: vec![ListenerSpec {
            protocol: Protocol::Mqtt,
            transport: Transport::Tls,
            addr: "127.0.0.1:0".parse().unwrap(),
        }],
        users: Arc::new(users()),
        anonymous: None,
        ..Settings::default()
    };
    settings.mqtt.certificate_login = certificate_login;
    let running = Gateway::start(settings).await.unwrap();
    let addr = running.local_addr(Protocol::Mqtt, Transport::Tls).unwrap();
    (running, addr)
}

/// Options for `localhost` (the server certificate's name) at `addr`'s port.
fn options(id: &str, addr: SocketAddr, transport: rumqttc::Transport) -> MqttOptions {
    let mut options = MqttOptions::new(id, "localhost", addr.port());
    options.set_keep_alive(Duration::from_secs(5));
    options.set_transport(transport);
    options
}

/// Polls until `pick` accepts an incoming packet, failing after `STEP`.
async fn wait_for<T>(events: &mut EventLoop, mut pick: impl FnMut(&Packet) -> Option<T>) -> T {
    tokio::time::timeout(STEP, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(packet)) => {
                    if let Some(found) = pick(&packet) {
                        return found;
                    }
                }
                Ok(Event::Outgoing(_)) => {}
                Err(error) => panic!("connection failed: {error:?}"),
            }
        }
    })
    .await
    .expect("timed out")
}

/// The first poll's error: the connection was refused.
async fn refusal(events: &mut EventLoop) -> ConnectionError {
    tokio::time::timeout(STEP, async {
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
    .expect("timed out")
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
    subscriber
        .subscribe(filter, QoS::AtLeastOnce)
        .await
        .unwrap();
    let granted = wait_for(sub_events, |p| match p {
        Packet::SubAck(ack) => Some(ack.return_codes.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        granted,
        vec![rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
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

    let mut sub_options = options("tls-sub", addr, pki.transport(None));
    sub_options.set_credentials("alice", "s3cret");
    let (subscriber, mut sub_events) = AsyncClient::new(sub_options, 16);
    let mut pub_options = options("tls-pub", addr, pki.transport(None));
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
    let (_anonymous, mut events) =
        AsyncClient::new(options("tls-anon", addr, pki.transport(None)), 4);
    let error = refusal(&mut events).await;
    assert!(
        matches!(
            error,
            ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)
        ),
        "{error:?}"
    );
    running.shutdown();
    tokio::time::timeout(STEP, running.wait()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_common_name_logs_in_without_password() {
    let pki = Pki::generate("cert-login");
    let (_running, addr) = tls_gateway(pki.server_config(true), true).await;
    let guest = pki.client("guest");

    // No user name, no password: the certificate's CN `guest` is the user.
    let (subscriber, mut sub_events) =
        AsyncClient::new(options("cn-sub", addr, pki.transport(Some(&guest))), 16);
    let (publisher, mut pub_events) =
        AsyncClient::new(options("cn-pub", addr, pki.transport(Some(&guest))), 16);
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
    let mut wrong = options("cn-wrong", addr, pki.transport(Some(&guest)));
    wrong.set_credentials("alice", "not-her-password");
    let (_wrong, mut events) = AsyncClient::new(wrong, 4);
    let error = refusal(&mut events).await;
    assert!(
        matches!(
            error,
            ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword)
        ),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_of_an_unknown_user_is_refused() {
    let pki = Pki::generate("cert-unknown");
    let (_running, addr) = tls_gateway(pki.server_config(true), true).await;
    let stranger = pki.client("mallory");
    let (_client, mut events) =
        AsyncClient::new(options("cn-x", addr, pki.transport(Some(&stranger))), 4);
    let error = refusal(&mut events).await;
    assert!(
        matches!(
            error,
            ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)
        ),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_login_off_ignores_the_common_name() {
    let pki = Pki::generate("cert-off");
    let (_running, addr) = tls_gateway(pki.server_config(true), false).await;
    let guest = pki.client("guest");
    let (_client, mut events) =
        AsyncClient::new(options("cn-off", addr, pki.transport(Some(&guest))), 4);
    let error = refusal(&mut events).await;
    assert!(
        matches!(
            error,
            ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized)
        ),
        "{error:?}"
    );
    // With credentials it logs in as usual.
    let mut with_password = options("cn-off-2", addr, pki.transport(Some(&guest)));
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
    let mut no_cert = options("no-cert", addr, pki.transport(None));
    no_cert.set_credentials("alice", "s3cret");
    let (_client, mut events) = AsyncClient::new(no_cert, 4);
    let error = refusal(&mut events).await;
    assert!(
        !matches!(error, ConnectionError::ConnectionRefused(_)),
        "refused by TLS, before MQTT: {error:?}"
    );
}
