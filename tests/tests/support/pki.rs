//! Certificates generated at test time with rcgen: a CA, a server certificate for `localhost`
//! and 127.0.0.1, client certificates signed on demand, and the rustls configurations of both
//! ends (the gateway's, and rumqttc's transport).
//!
//! Mount it as `#[path = "support/pki.rs"] mod pki;`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mqgate::tls::TlsFiles;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rumqttc::tokio_rustls::rustls;
use rumqttc::{MqttOptions, TlsConfiguration};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate and its key pair.
struct Issued {
    cert: Certificate,
    key: KeyPair,
}

/// Certificate parameters for DNS names `names` and subject `subject`, limited to `purpose`.
fn params(
    names: &[&str],
    subject: &[(DnType, &str)],
    purpose: Option<ExtendedKeyUsagePurpose>,
) -> CertificateParams {
    let names = names
        .iter()
        .map(|&name| name.to_owned())
        .collect::<Vec<_>>();
    let mut params = CertificateParams::new(names).unwrap();
    for (kind, value) in subject {
        params.distinguished_name.push(kind.clone(), *value);
    }
    params.extended_key_usages = purpose.into_iter().collect();
    params
}

impl Issued {
    /// A self-signed CA.
    fn ca(common_name: &str) -> Self {
        let mut params = params(&[], &[(DnType::CommonName, common_name)], None);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A certificate for `params` with a new key, signed by this CA.
    fn sign(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued { cert, key }
    }
}

/// A test CA, a server certificate for `localhost` / 127.0.0.1 (the CA and the server's files
/// written as PEM to a directory removed on drop), and client certificates signed on demand.
pub struct Pki {
    ca: Issued,
    dir: PathBuf,
    files: TlsFiles,
}

/// A client certificate and its key.
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl Pki {
    /// Generates the CA and the server certificate; `label` names the directory.
    pub fn generate(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mqgate-mqtt-tls-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };

        let ca = Issued::ca("mqgate MQTT test CA");
        let mut server_params = params(
            &["localhost"],
            &[(DnType::CommonName, "localhost")],
            Some(ExtendedKeyUsagePurpose::ServerAuth),
        );
        server_params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let server = ca.sign(server_params);
        let files = TlsFiles {
            certificate: write("server.pem", server.cert.pem()),
            private_key: write("server.key", server.key.serialize_pem()),
            client_ca: Some(write("ca.pem", ca.cert.pem())),
            require_client_certificate: false,
        };
        Self { ca, dir, files }
    }

    /// A client certificate whose subject common name is `common_name`.
    pub fn client(&self, common_name: &str) -> ClientIdentity {
        let issued = self.ca.sign(params(
            &[],
            &[
                (DnType::OrganizationName, "mqgate tests"),
                (DnType::CommonName, common_name),
            ],
            Some(ExtendedKeyUsagePurpose::ClientAuth),
        ));
        ClientIdentity {
            chain: vec![issued.cert.der().clone()],
            key_der: issued.key.serialize_der(),
        }
    }

    /// The gateway's TLS configuration; `client_certificates`: verify them (and require one).
    pub fn server_config(&self, client_certificates: bool) -> Arc<rustls::ServerConfig> {
        mqgate::tls::server_config(&TlsFiles {
            client_ca: self.files.client_ca.clone().filter(|_| client_certificates),
            require_client_certificate: client_certificates,
            ..self.files.clone()
        })
        .unwrap()
    }

    /// rumqttc's TLS transport: rustls with the ring provider, trusting the test CA,
    /// presenting `identity` if given.
    pub fn transport(&self, identity: Option<&ClientIdentity>) -> rumqttc::Transport {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.cert.der().clone()).unwrap();
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

    /// rumqttc v4 options for client `id` at `localhost` (the server certificate's name) and
    /// `addr`'s port, with a 5 s keepalive, over TLS presenting `identity` if given.
    pub fn options(
        &self,
        id: &str,
        addr: SocketAddr,
        identity: Option<&ClientIdentity>,
    ) -> MqttOptions {
        let mut options = MqttOptions::new(id, "localhost", addr.port());
        options.set_keep_alive(Duration::from_secs(5));
        options.set_transport(self.transport(identity));
        options
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
