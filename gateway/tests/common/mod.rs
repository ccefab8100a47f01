//! Helpers shared by the gateway's integration tests: temp dirs, certificates, test handlers,
//! TLS clients. Test code only.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mqgate::listener::{AsyncStream, BoxFuture, ConnectionHandler, ConnectionMeta};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(15);

/// Awaits `future` for at most [`WAIT`], failing the test with `what` otherwise.
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// A directory under the system temp dir with a unique name, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "mqgate-test-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
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

/// The shipped default config file.
pub fn default_config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/mqgate.yaml")
}

/// A CA, a server certificate for `localhost`/127.0.0.1 and a client certificate with CN
/// `client-1`, all generated now, written as PEM files.
pub struct Pki {
    pub dir: TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub ca_der: CertificateDer<'static>,
    pub client_chain: Vec<CertificateDer<'static>>,
    pub client_key_der: Vec<u8>,
}

pub const CLIENT_CN: &str = "client-1";

impl Pki {
    pub fn generate() -> Self {
        let dir = TempDir::new("pki");
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "mqgate test CA");
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

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::OrganizationName, "mqgate tests");
        client_params
            .distinguished_name
            .push(DnType::CommonName, CLIENT_CN);
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params
            .signed_by(&client_key, &ca_cert, &ca_key)
            .unwrap();

        Self {
            ca: dir.write("ca.pem", &ca_cert.pem()),
            server_cert: dir.write("server.pem", &server_cert.pem()),
            server_key: dir.write("server.key", &server_key.serialize_pem()),
            ca_der: ca_cert.der().clone(),
            client_chain: vec![client_cert.der().clone()],
            client_key_der: client_key.serialize_der(),
            dir,
        }
    }

    /// The server's TLS configuration, optionally verifying client certificates.
    pub fn server_config(
        &self,
        client_ca: bool,
        require_client_certificate: bool,
    ) -> Arc<rustls::ServerConfig> {
        mqgate::tls::server_config(&mqgate::tls::TlsFiles {
            certificate: self.server_cert.clone(),
            private_key: self.server_key.clone(),
            client_ca: client_ca.then(|| self.ca.clone()),
            require_client_certificate,
        })
        .unwrap()
    }

    /// A TLS connector trusting the test CA, presenting the client certificate if asked.
    pub fn connector(&self, with_client_certificate: bool) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if with_client_certificate {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.client_key_der.clone()));
            builder
                .with_client_auth_cert(self.client_chain.clone(), key)
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// Connects over TLS to `addr` as `localhost`.
pub async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from("localhost").unwrap().to_owned(), tcp)
        .await
}

/// Writes `message` and reads the same number of bytes back.
pub async fn echo_round_trip<S>(stream: &mut S, message: &[u8]) -> std::io::Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(message).await?;
    stream.flush().await?;
    let mut back = vec![0; message.len()];
    stream.read_exact(&mut back).await?;
    Ok(back)
}

/// A test handler: reports each connection's meta, then echoes bytes until EOF or shutdown.
pub struct EchoHandler {
    metas: mpsc::UnboundedSender<ConnectionMeta>,
}

impl EchoHandler {
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<ConnectionMeta>) {
        let (metas, received) = mpsc::unbounded_channel();
        (Arc::new(Self { metas }), received)
    }
}

impl ConnectionHandler for EchoHandler {
    fn handle(
        &self,
        mut stream: Box<dyn AsyncStream>,
        meta: ConnectionMeta,
        shutdown: CancellationToken,
    ) -> BoxFuture<()> {
        let _ = self.metas.send(meta);
        Box::pin(async move {
            let mut buffer = [0u8; 1024];
            loop {
                let read = tokio::select! {
                    () = shutdown.cancelled() => break,
                    read = stream.read(&mut buffer) => read,
                };
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if stream.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                        let _ = stream.flush().await;
                    }
                }
            }
            let _ = stream.shutdown().await;
        })
    }
}

/// A test handler that ignores the shutdown token: it holds the connection until the peer
/// closes it (or it is cut off).
pub struct StubbornHandler {
    pub started: mpsc::UnboundedSender<ConnectionMeta>,
}

impl ConnectionHandler for StubbornHandler {
    fn handle(
        &self,
        mut stream: Box<dyn AsyncStream>,
        meta: ConnectionMeta,
        _shutdown: CancellationToken,
    ) -> BoxFuture<()> {
        let _ = self.started.send(meta);
        Box::pin(async move {
            let mut buffer = [0u8; 64];
            while let Ok(n) = stream.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
            }
        })
    }
}

/// Reads until EOF or error; true if the peer closed (or reset) the connection.
pub async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 64];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => continue,
        }
    }
}
