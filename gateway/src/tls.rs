//! TLS: the server configuration from PEM files, and what a handshake tells about the client.
//!
//! Always the `ring` crypto provider, passed explicitly: the process-wide default provider is
//! never installed nor relied on, so an embedding application keeps its own.
//!
//! With a `client_ca` bundle, client certificates are verified against it (WebPKI rules); they
//! are then either required (a client without one fails the handshake) or optional (a client
//! without one connects; one with an invalid one fails). The verified client certificate's
//! common name is exposed in [`TlsInfo`] for adapters (e.g. a later `EXTERNAL` login).

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use crate::x509;

/// Where the TLS files are, and whether client certificates are required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server's certificate chain, leaf first.
    pub certificate: PathBuf,
    /// PEM: the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
    /// PEM: CA certificates that client certificates are verified against; `None` asks for no
    /// client certificate.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: refuse clients without a certificate.
    pub require_client_certificate: bool,
}

/// Which of the TLS settings is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsField {
    /// [`TlsFiles::certificate`].
    Certificate,
    /// [`TlsFiles::private_key`].
    PrivateKey,
    /// [`TlsFiles::client_ca`].
    ClientCa,
}

impl TlsField {
    /// The key under `tls:` in the config file.
    pub fn key(self) -> &'static str {
        match self {
            TlsField::Certificate => "certificate",
            TlsField::PrivateKey => "private_key",
            TlsField::ClientCa => "client_ca",
        }
    }
}

/// The TLS configuration could not be built. [`TlsError::field`] names the setting at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The setting.
        field: TlsField,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file holds no PEM item of the expected kind.
    #[error("{} holds no {expected} in PEM", path.display())]
    Empty {
        /// The setting.
        field: TlsField,
        /// The file.
        path: PathBuf,
        /// What was looked for.
        expected: &'static str,
    },
    /// rustls refused the material (e.g. the key does not match the certificate, or a CA
    /// certificate is invalid).
    #[error("{} is not usable: {message}", path.display())]
    Refused {
        /// The setting.
        field: TlsField,
        /// The file.
        path: PathBuf,
        /// rustls's message.
        message: String,
    },
}

impl TlsError {
    /// The setting at fault.
    pub fn field(&self) -> TlsField {
        match self {
            TlsError::Read { field, .. }
            | TlsError::Empty { field, .. }
            | TlsError::Refused { field, .. } => *field,
        }
    }
}

fn open(field: TlsField, path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            field,
            path: path.to_owned(),
            source,
        })
}

fn read_certificates(
    field: TlsField,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut reader = open(field, path)?;
    let certificates = rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            field,
            path: path.to_owned(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Empty {
            field,
            path: path.to_owned(),
            expected: "certificate",
        });
    }
    Ok(certificates)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let field = TlsField::PrivateKey;
    let mut reader = open(field, path)?;
    rustls_pemfile::private_key(&mut reader)
        .map_err(|source| TlsError::Read {
            field,
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::Empty {
            field,
            path: path.to_owned(),
            expected: "private key",
        })
}

/// Reads the PEM files and builds the server configuration (TLS 1.2 and 1.3, ring provider).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certificates(TlsField::Certificate, &files.certificate)?;
    let key = read_private_key(&files.private_key)?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Refused {
            field: TlsField::Certificate,
            path: files.certificate.clone(),
            message: e.to_string(),
        })?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let refused = |message: String| TlsError::Refused {
                field: TlsField::ClientCa,
                path: ca_path.clone(),
                message,
            };
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(TlsField::ClientCa, ca_path)? {
                roots.add(certificate).map_err(|e| refused(e.to_string()))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let verifier = if files.require_client_certificate {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| refused(e.to_string()))?)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Refused {
            field: TlsField::PrivateKey,
            path: files.private_key.clone(),
            message: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

/// What the TLS handshake established about the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// The common name (CN) of the verified client certificate's subject, if the client sent
    /// one and it has a CN (the last CN when there are several, the most specific).
    pub client_common_name: Option<String>,
    /// The verified client certificate (DER), if the client sent one.
    pub client_certificate: Option<CertificateDer<'static>>,
}

impl TlsInfo {
    /// Reads what a completed server handshake established.
    pub fn from_connection(connection: &ServerConnection) -> Self {
        let client_certificate = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|certificate| certificate.clone().into_owned());
        let client_common_name = client_certificate
            .as_ref()
            .and_then(|certificate| x509::subject_common_name(certificate.as_ref()));
        Self {
            client_common_name,
            client_certificate,
        }
    }
}
