//! The gRPC listener's settings checked together, before anything starts: the address, the TLS
//! files and `--grpc-insecure` must agree, and the TLS files must be usable. A mistake here is
//! one [`ConfigError`] (exit code 2) instead of an agent that loaded its probes, wrote its state
//! and then failed to listen, or listened without the protection that was asked for.

use std::path::PathBuf;

use super::config_error::{ConfigError, flag_of};
use crate::api::{ListenAddr, TlsError, TlsFiles};

/// The three TLS files, each with whether a flag (rather than the config file) gave it.
#[derive(Debug, Default)]
pub struct TlsParts {
    pub cert: Option<(PathBuf, bool)>,
    pub key: Option<(PathBuf, bool)>,
    pub client_ca: Option<(PathBuf, bool)>,
}

const CERT: &str = "grpcTlsCert";
const KEY: &str = "grpcTlsKey";
const CLIENT_CA: &str = "grpcTlsClientCa";

/// The TLS files to serve with, or `None` (a Unix socket, or plaintext TCP with `insecure`).
/// `addr_from_flag`: `--grpc-listen` (rather than the file) gave the address.
pub fn transport(
    addr: &ListenAddr,
    addr_from_flag: bool,
    parts: TlsParts,
    insecure: bool,
    file_origin: &str,
) -> Result<Option<TlsFiles>, ConfigError> {
    let named = [
        (CERT, &parts.cert),
        (KEY, &parts.key),
        (CLIENT_CA, &parts.client_ca),
    ];
    let given: Vec<(&'static str, bool)> = named
        .iter()
        .filter_map(|(key, part)| part.as_ref().map(|(_, flag)| (*key, *flag)))
        .collect();
    let any_flag = given.iter().any(|(_, flag)| *flag);
    // The flag as typed when any TLS value came from the command line, else the file's key.
    let name = |key: &'static str| if any_flag { flag_of(key) } else { key };
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        origin: if any_flag || given.is_empty() {
            "command line".to_string()
        } else {
            file_origin.to_string()
        },
        key: name(key),
        message,
    };
    let insecure_error = |message: String| ConfigError::Invalid {
        origin: "command line".into(),
        key: "--grpc-insecure",
        message,
    };

    match addr {
        ListenAddr::Unix(_) if insecure => Err(insecure_error(format!(
            "applies to a TCP --grpc-listen; {addr} is a Unix socket (protected by its mode 0600)"
        ))),
        ListenAddr::Unix(_) => match given.first() {
            Some((key, _)) => Err(invalid(
                key,
                format!(
                    "TLS applies to a TCP --grpc-listen; {addr} is a Unix socket (protected by \
                     its mode 0600, not TLS)"
                ),
            )),
            None => Ok(None),
        },
        ListenAddr::Tcp(_) => match (&parts.cert, &parts.key, &parts.client_ca) {
            (None, None, None) if insecure => Ok(None),
            (None, None, None) => Err(ConfigError::Invalid {
                origin: if addr_from_flag {
                    "command line".into()
                } else {
                    file_origin.to_string()
                },
                key: if addr_from_flag {
                    flag_of("grpcListen")
                } else {
                    "grpcListen"
                },
                message: format!(
                    "{addr}: TCP requires mutual TLS (--grpc-tls-cert, --grpc-tls-key and \
                     --grpc-tls-client-ca); use a unix: address, or --grpc-insecure for tests \
                     on a trusted host"
                ),
            }),
            _ if insecure => Err(insecure_error(
                "conflicts with the TLS files: serve either with mutual TLS or, for tests, \
                 plaintext"
                    .into(),
            )),
            (Some((cert, _)), Some((key, _)), Some((client_ca, _))) => {
                let files = TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: client_ca.clone(),
                };
                check_files(&files).map_err(|(key, message)| invalid(key, message))?;
                Ok(Some(files))
            }
            _ => {
                let missing: Vec<&str> = named
                    .iter()
                    .filter(|(_, part)| part.is_none())
                    .map(|(key, _)| name(key))
                    .collect();
                let (first, _) = given[0];
                Err(invalid(
                    first,
                    format!(
                        "mutual TLS needs the server certificate, its key and the client CA; \
                         missing {}",
                        missing.join(" and ")
                    ),
                ))
            }
        },
    }
}

/// Reads and parses the files and lets rustls check them together (a key that does not belong
/// to the certificate); the error names the file's key.
fn check_files(files: &TlsFiles) -> Result<(), (&'static str, String)> {
    let config = files.load().map_err(|e| {
        let key = match &e {
            TlsError::Read { what, .. } | TlsError::Pem { what, .. } => match *what {
                "server certificate" => CERT,
                "server private key" => KEY,
                _ => CLIENT_CA,
            },
            _ => CERT,
        };
        (key, e.to_string())
    })?;
    tonic::transport::Server::builder()
        .tls_config(config)
        .map(drop)
        .map_err(|e| {
            (
                CERT,
                format!(
                    "{} with key {}: {}",
                    files.cert.display(),
                    files.key.display(),
                    crate::api::tls::chain(&e)
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp() -> ListenAddr {
        "127.0.0.1:50051".parse().unwrap()
    }

    fn unix() -> ListenAddr {
        "unix:/run/s.sock".parse().unwrap()
    }

    fn flag(p: &str) -> Option<(PathBuf, bool)> {
        Some((PathBuf::from(p), true))
    }

    fn err(addr: &ListenAddr, parts: TlsParts, insecure: bool) -> String {
        transport(addr, true, parts, insecure, "config file c.yaml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unix_needs_nothing_and_takes_no_tls_or_insecure() {
        assert!(
            transport(&unix(), true, TlsParts::default(), false, "f")
                .unwrap()
                .is_none()
        );
        let e = err(&unix(), TlsParts::default(), true);
        assert!(
            e.starts_with("command line: `--grpc-insecure`: applies to a TCP"),
            "{e}"
        );
        let e = err(
            &unix(),
            TlsParts {
                key: flag("/k.pem"),
                ..Default::default()
            },
            false,
        );
        assert!(
            e.starts_with("command line: `--grpc-tls-key`: TLS applies"),
            "{e}"
        );
    }

    #[test]
    fn tcp_needs_all_three_files_or_insecure() {
        assert!(
            transport(&tcp(), true, TlsParts::default(), true, "f")
                .unwrap()
                .is_none()
        );
        let e = err(&tcp(), TlsParts::default(), false);
        assert!(
            e.starts_with("command line: `--grpc-listen`: tcp://127.0.0.1:50051: TCP requires"),
            "{e}"
        );
        let e = err(
            &tcp(),
            TlsParts {
                cert: flag("/c.pem"),
                ..Default::default()
            },
            false,
        );
        assert!(
            e.contains("`--grpc-tls-cert`")
                && e.ends_with("missing --grpc-tls-key and --grpc-tls-client-ca"),
            "{e}"
        );
        let from_file = TlsParts {
            cert: Some(("/c.pem".into(), false)),
            ..Default::default()
        };
        let e = err(&tcp(), from_file, false);
        assert!(
            e.starts_with("config file c.yaml: `grpcTlsCert`")
                && e.ends_with("missing grpcTlsKey and grpcTlsClientCa"),
            "{e}"
        );
        let all = || TlsParts {
            cert: flag("/c.pem"),
            key: flag("/k.pem"),
            client_ca: flag("/ca.pem"),
        };
        let e = err(&tcp(), all(), true);
        assert!(e.contains("`--grpc-insecure`: conflicts"), "{e}");
        let e = err(&tcp(), all(), false);
        assert!(
            e.starts_with("command line: `--grpc-tls-cert`: server certificate /c.pem: "),
            "{e}"
        );
    }

    #[test]
    fn unusable_files_name_their_flag() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let put = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let cert_p = put("cert.pem", &cert.pem());
        let key_p = put("key.pem", &key.serialize_pem());
        let other_key = put(
            "other.pem",
            &rcgen::KeyPair::generate().unwrap().serialize_pem(),
        );
        let parts = |cert: &PathBuf, key: &PathBuf, ca: &PathBuf| TlsParts {
            cert: Some((cert.clone(), true)),
            key: Some((key.clone(), true)),
            client_ca: Some((ca.clone(), true)),
        };
        let ok = transport(&tcp(), true, parts(&cert_p, &key_p, &cert_p), false, "f").unwrap();
        assert!(ok.is_some());
        let e = err(&tcp(), parts(&cert_p, &cert_p, &cert_p), false);
        assert!(
            e.starts_with("command line: `--grpc-tls-key`: server private key"),
            "{e}"
        );
        let e = err(&tcp(), parts(&cert_p, &key_p, &key_p), false);
        assert!(
            e.starts_with("command line: `--grpc-tls-client-ca`: client CA"),
            "{e}"
        );
        let e = err(&tcp(), parts(&cert_p, &other_key, &cert_p), false);
        assert!(e.starts_with("command line: `--grpc-tls-cert`:"), "{e}");
    }
}
