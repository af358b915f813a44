//! Mutual TLS for TCP (rustls through tonic, ring provider).
//!
//! Server ([`TlsFiles`]): a certificate chain and its key, plus a client CA; a client must
//! present a certificate signed by that CA, or the handshake fails. Client ([`ClientTls`]): the
//! CA that signed the server's certificate, and the client's own certificate and key.
//!
//! Files are PEM. Each is read and parsed here first so a mistake is reported with the file and
//! what is wrong with it (unreadable, no PEM block of the right kind, broken PEM); rustls then
//! checks the rest (e.g. a key that does not match its certificate).

use std::{
    io,
    path::{Path, PathBuf},
};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The server side: certificate chain, its private key and the CA that signs client
/// certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server certificate, then its intermediates.
    pub cert: PathBuf,
    /// PEM: the server's private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
    /// PEM: the CA certificate(s) client certificates must be signed by.
    pub client_ca: PathBuf,
}

/// The client side: `--tls-ca`, `--tls-cert`, `--tls-key`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM: the CA that signed the server's certificate.
    pub ca: PathBuf,
    /// PEM: this client's certificate (signed by the server's client CA).
    pub cert: Option<PathBuf>,
    /// PEM: this client's private key.
    pub key: Option<PathBuf>,
    /// The name to check the server's certificate against (default: the address's host).
    pub server_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{what} {path}: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{what}: {path} given without {missing}")]
    Incomplete {
        what: &'static str,
        path: PathBuf,
        missing: &'static str,
    },
    #[error("TLS configuration refused: {0}")]
    Rejected(String),
}

/// The PEM text of `path` with at least one certificate in it.
fn certificates(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(what, path)?;
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| pem_error(what, path, &e))?;
        n += 1;
    }
    if n == 0 {
        return Err(TlsError::Pem {
            what,
            path: path.to_path_buf(),
            reason: "no CERTIFICATE block (expected a PEM certificate: \
                     -----BEGIN CERTIFICATE-----)"
                .into(),
        });
    }
    Ok(pem)
}

/// The PEM text of `path` with a private key in it.
fn private_key(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let pem = read(what, path)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(_) => Ok(pem),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(TlsError::Pem {
            what,
            path: path.to_path_buf(),
            reason: "no private key block (expected PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or \
                     `EC PRIVATE KEY`)"
                .into(),
        }),
        Err(e) => Err(pem_error(what, path, &e)),
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(what: &'static str, path: &Path, e: &rustls_pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason: format!("invalid PEM: {e}"),
    }
}

/// An error and its causes on one line (rustls' reason is at the bottom of tonic's chain).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}

impl TlsFiles {
    /// Reads and checks the three files: the server's TLS configuration, client certificates
    /// required.
    pub fn load(&self) -> Result<ServerTlsConfig, TlsError> {
        let cert = certificates("server certificate", &self.cert)?;
        let key = private_key("server private key", &self.key)?;
        let ca = certificates("client CA", &self.client_ca)?;
        Ok(ServerTlsConfig::new()
            .identity(Identity::from_pem(cert, key))
            .client_ca_root(Certificate::from_pem(ca))
            .client_auth_optional(false))
    }
}

impl ClientTls {
    /// Reads and checks the files; `default_name` is the server name when none is set (the
    /// host of the address: an IP address is checked against the certificate's IP SANs).
    pub fn load(&self, default_name: &str) -> Result<ClientTlsConfig, TlsError> {
        let ca = certificates("CA certificate (--tls-ca)", &self.ca)?;
        let mut config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name(self.server_name.as_deref().unwrap_or(default_name));
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let cert = certificates("client certificate (--tls-cert)", cert)?;
                let key = private_key("client private key (--tls-key)", key)?;
                config = config.identity(Identity::from_pem(cert, key));
            }
            (Some(cert), None) => {
                return Err(TlsError::Incomplete {
                    what: "--tls-cert",
                    path: cert.clone(),
                    missing: "--tls-key",
                });
            }
            (None, Some(key)) => {
                return Err(TlsError::Incomplete {
                    what: "--tls-key",
                    path: key.clone(),
                    missing: "--tls-cert",
                });
            }
            (None, None) => {}
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn good_files_load_and_bad_ones_say_which_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pem_pair();
        let put = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let cert_p = put("cert.pem", &cert);
        let key_p = put("key.pem", &key);
        let files = |cert: &Path, key: &Path, ca: &Path| TlsFiles {
            cert: cert.into(),
            key: key.into(),
            client_ca: ca.into(),
        };
        files(&cert_p, &key_p, &cert_p).load().unwrap();

        let missing = dir.path().join("missing.pem");
        let e = files(&missing, &key_p, &cert_p).load().unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("server certificate {}: ", missing.display())),
            "{e}"
        );
        let e = files(&key_p, &key_p, &cert_p).load().unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE block"), "{e}");
        let e = files(&cert_p, &cert_p, &cert_p).load().unwrap_err();
        assert!(
            e.to_string().starts_with("server private key")
                && e.to_string().contains("no private key"),
            "{e}"
        );
        let broken = put("broken.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n");
        let e = files(&cert_p, &key_p, &broken).load().unwrap_err();
        assert!(
            e.to_string().starts_with("client CA") && e.to_string().contains("invalid PEM"),
            "{e}"
        );

        let client = ClientTls {
            ca: cert_p.clone(),
            cert: Some(cert_p.clone()),
            key: None,
            server_name: None,
        };
        let e = client.load("localhost").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("--tls-cert: {} given without --tls-key", cert_p.display())
        );
    }
}
