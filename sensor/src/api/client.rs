//! Connecting to the agent's API over its Unix socket, or TCP (mutual TLS, or plaintext for an
//! agent started with insecure TCP).

use std::{error::Error as _, io, time::Duration};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::ListenAddr;
use super::proto::sensor_client::SensorClient;
use super::tls::{ClientTls, TlsError, chain};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// HTTP/2 pings while a stream is idle: a vanished agent is noticed, not waited on forever.
const KEEPALIVE: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the agent at {addr}: is `sensor run` running? ({reason})")]
    Unreachable { addr: String, reason: String },
    #[error(
        "cannot reach the agent at {addr}: permission denied (the socket is mode 0600: run as the agent's user, usually root)"
    )]
    PermissionDenied { addr: String },
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error(
        "--tls-* options apply to tcp:// addresses; {addr} is a Unix socket (protected by its mode)"
    )]
    TlsOverUnix { addr: String },
    #[error("TLS handshake with the agent at {addr} failed: {reason}")]
    Handshake { addr: String, reason: String },
}

/// How to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// TLS for a TCP address (required when the agent listens on TCP with TLS).
    pub tls: Option<ClientTls>,
    /// For streams: no per-call timeout (a stream lasts as long as it is read), HTTP/2 pings
    /// instead.
    pub streaming: bool,
}

/// A channel to the agent; connects now, so a missing agent is reported here.
pub async fn channel(addr: &ListenAddr) -> Result<Channel, ClientError> {
    channel_with(addr, &ConnectOptions::default()).await
}

/// A channel to the agent with TLS and/or streaming settings.
pub async fn channel_with(
    addr: &ListenAddr,
    options: &ConnectOptions,
) -> Result<Channel, ClientError> {
    let settings = |endpoint: Endpoint| {
        let endpoint = endpoint.connect_timeout(CONNECT_TIMEOUT);
        if options.streaming {
            endpoint
                .http2_keep_alive_interval(KEEPALIVE)
                .keep_alive_timeout(KEEPALIVE)
                .keep_alive_while_idle(true)
        } else {
            endpoint.timeout(REQUEST_TIMEOUT)
        }
    };
    let connected = match addr {
        ListenAddr::Unix(path) => {
            if options.tls.is_some() {
                return Err(ClientError::TlsOverUnix {
                    addr: addr.to_string(),
                });
            }
            let path = path.clone();
            // The URI is required by the API but unused: the connector dials the socket.
            settings(Endpoint::from_static("http://localhost"))
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
                }))
                .await
        }
        ListenAddr::Tcp(sa) => {
            let scheme = if options.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let mut endpoint = settings(
                Endpoint::from_shared(format!("{scheme}://{sa}"))
                    .expect("a socket address makes a valid URI"),
            );
            if let Some(tls) = &options.tls {
                let config = tls.load(&sa.ip().to_string())?;
                endpoint = endpoint
                    .tls_config(config)
                    .map_err(|e| ClientError::Tls(TlsError::Rejected(chain(&e))))?;
            }
            endpoint.connect().await
        }
    };
    connected.map_err(|e| match unreachable(addr, &e) {
        // rustls reports certificate problems as InvalidData.
        ClientError::Unreachable { addr, reason }
            if options.tls.is_some() && is_tls_failure(&e) =>
        {
            ClientError::Handshake { addr, reason }
        }
        other => other,
    })
}

fn is_tls_failure(e: &tonic::transport::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(s) = source {
        if s.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::InvalidData)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// A `sensor.v1.Sensor` client connected to the agent.
pub async fn connect(addr: &ListenAddr) -> Result<SensorClient<Channel>, ClientError> {
    Ok(SensorClient::new(channel(addr).await?))
}

/// A `sensor.v1.Sensor` client with TLS and/or streaming settings.
pub async fn connect_with(
    addr: &ListenAddr,
    options: &ConnectOptions,
) -> Result<SensorClient<Channel>, ClientError> {
    Ok(SensorClient::new(channel_with(addr, options).await?))
}

/// The innermost cause of a transport error (`No such file or directory`, `Connection refused`,
/// a certificate the CA did not sign ...), which is what tells a person what to fix.
fn unreachable(addr: &ListenAddr, e: &tonic::transport::Error) -> ClientError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    let mut reason = e.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::PermissionDenied
        {
            return ClientError::PermissionDenied {
                addr: addr.to_string(),
            };
        }
        reason = s.to_string();
        source = s.source();
    }
    ClientError::Unreachable {
        addr: addr.to_string(),
        reason,
    }
}
