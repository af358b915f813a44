//! Connecting to the agent's API over its Unix socket (or TCP).

use std::{error::Error as _, io, time::Duration};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::ListenAddr;
use super::proto::sensor_client::SensorClient;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the agent at {addr}: is `sensor run` running? ({reason})")]
    Unreachable { addr: String, reason: String },
    #[error(
        "cannot reach the agent at {addr}: permission denied (the socket is mode 0600: run as the agent's user, usually root)"
    )]
    PermissionDenied { addr: String },
}

/// A channel to the agent; connects now, so a missing agent is reported here.
pub async fn channel(addr: &ListenAddr) -> Result<Channel, ClientError> {
    let connected = match addr {
        ListenAddr::Unix(path) => {
            let path = path.clone();
            // The URI is required by the API but unused: the connector dials the socket.
            Endpoint::from_static("http://localhost")
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
                }))
                .await
        }
        ListenAddr::Tcp(sa) => {
            Endpoint::from_shared(format!("http://{sa}"))
                .expect("a socket address makes a valid URI")
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .connect()
                .await
        }
    };
    connected.map_err(|e| unreachable(addr, &e))
}

/// A `sensor.v1.Sensor` client connected to the agent.
pub async fn connect(addr: &ListenAddr) -> Result<SensorClient<Channel>, ClientError> {
    Ok(SensorClient::new(channel(addr).await?))
}

/// The innermost cause of a transport error (`No such file or directory`, `Connection refused`
/// ...), which is what tells a person what to fix.
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
