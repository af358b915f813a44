//! The gRPC server: `sensor.v1.Sensor` over a [`ProfileSource`], with `grpc.health.v1.Health`
//! and server reflection (v1 and v1alpha), on a Unix socket (mode 0600) or, only when asked
//! explicitly, plaintext TCP.

use std::{
    fs,
    future::Future,
    io,
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::{Request, Response, Status, transport::Server};

use super::proto::{
    self, ListProfilesRequest, ListProfilesResponse, NetworkPolicyRequest, NetworkPolicyResponse,
    ProfileRef, SeccompRequest, SeccompResponse,
    sensor_server::{Sensor, SensorServer},
};
pub use super::source::{MemorySource, ProfileSource};
use super::{FILE_DESCRIPTOR_SET, ListenAddr, convert, lookup, render};
use crate::profile::model::ProfileKey;

/// The fully qualified service name (health checks, reflection).
pub const SERVICE_NAME: &str = "sensor.v1.Sensor";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "refusing to serve gRPC on plaintext TCP ({0}): TCP requires TLS with client certificates, \
         which comes with the anomaly stream; use a unix: address (or, for tests only, insecure TCP)"
    )]
    TcpNeedsTls(std::net::SocketAddr),
    #[error("creating the socket directory {path}: {source}")]
    SocketDir { path: PathBuf, source: io::Error },
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("another process is already serving on {0}")]
    InUse(PathBuf),
    #[error("binding {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("setting mode 0600 on {path}: {source}")]
    Chmod { path: PathBuf, source: io::Error },
    #[error("building server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The `sensor.v1.Sensor` implementation.
pub struct SensorService {
    source: Arc<dyn ProfileSource>,
}

impl SensorService {
    pub fn new(source: Arc<dyn ProfileSource>) -> Self {
        Self { source }
    }

    fn profile_key(r: Option<&ProfileRef>) -> Result<ProfileKey, lookup::RequestError> {
        let r = r.ok_or(lookup::RequestError::Missing { field: "ref" })?;
        Ok(ProfileKey {
            namespace: lookup::name("namespace", &r.namespace)?.to_string(),
            workload: lookup::name("workload", &r.workload)?.to_string(),
            container: lookup::name("container", &r.container)?.to_string(),
        })
    }
}

#[tonic::async_trait]
impl Sensor for SensorService {
    async fn list_profiles(
        &self,
        request: Request<ListProfilesRequest>,
    ) -> Result<Response<ListProfilesResponse>, Status> {
        let req = request.into_inner();
        let namespace = lookup::optional_name("namespace", &req.namespace)?;
        let workload = lookup::optional_name("workload", &req.workload)?;
        let mut summaries = Vec::new();
        self.source.visit(&mut |p| {
            if (namespace.is_empty() || p.key.namespace == namespace)
                && (workload.is_empty() || p.key.workload == workload)
            {
                summaries.push(convert::summary(p));
            }
        });
        summaries.sort_by(|a, b| {
            (&a.namespace, &a.workload, &a.container).cmp(&(
                &b.namespace,
                &b.workload,
                &b.container,
            ))
        });
        Ok(Response::new(ListProfilesResponse {
            profiles: summaries,
            node_name: self.source.node_name(),
            time: convert::now(),
        }))
    }

    async fn get_profile(
        &self,
        request: Request<ProfileRef>,
    ) -> Result<Response<proto::Profile>, Status> {
        let key = Self::profile_key(Some(request.get_ref()))?;
        let profile = lookup::profile(self.source.as_ref(), &key)?;
        let mut out = convert::profile(&profile);
        out.node_name = self.source.node_name();
        out.time = convert::now();
        Ok(Response::new(out))
    }

    async fn get_seccomp_profile(
        &self,
        request: Request<SeccompRequest>,
    ) -> Result<Response<SeccompResponse>, Status> {
        let req = request.into_inner();
        let key = Self::profile_key(req.r#ref.as_ref())?;
        let mode = lookup::enum_value("mode", req.mode)?;
        let format = lookup::enum_value("format", req.format)?;
        let profile = lookup::profile(self.source.as_ref(), &key)?;
        let draft = render::seccomp(&profile, mode, format)?;
        Ok(Response::new(SeccompResponse {
            content: draft.content,
            notes: draft.notes,
            completeness: convert::completeness(profile.completeness).into(),
            status: convert::status(profile.status).into(),
            localhost_profile: draft.localhost_profile,
            node_name: self.source.node_name(),
            time: convert::now(),
        }))
    }

    async fn get_network_policy(
        &self,
        request: Request<NetworkPolicyRequest>,
    ) -> Result<Response<NetworkPolicyResponse>, Status> {
        let req = request.into_inner();
        let namespace = lookup::name("namespace", &req.namespace)?;
        let workload = lookup::name("workload", &req.workload)?;
        let flavor = lookup::enum_value("flavor", req.flavor)?;
        let format = lookup::enum_value("format", req.format)?;
        let profiles = lookup::workload(self.source.as_ref(), namespace, workload)?;
        let refs: Vec<_> = profiles.iter().collect();
        let draft = render::network_policy(&refs, flavor, format)?;
        Ok(Response::new(NetworkPolicyResponse {
            content: draft.content,
            notes: draft.notes,
            containers: draft.containers,
            node_name: self.source.node_name(),
            time: convert::now(),
        }))
    }
}

/// Serves the API on `addr` until `shutdown` completes, then drains in-flight calls and returns.
///
/// - `unix:` - creates the parent directory, replaces a stale socket (only a socket nobody
///   answers on), and makes the socket appear at `path` already listening with mode 0600 (bound
///   under a temporary name, chmod, renamed into place). The socket file is removed on return.
/// - TCP - refused ([`ApiError::TcpNeedsTls`]) unless `insecure_tcp`, then plaintext with a
///   warning.
pub async fn serve(
    addr: ListenAddr,
    insecure_tcp: bool,
    source: Arc<dyn ProfileSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    if let ListenAddr::Tcp(sa) = addr
        && !insecure_tcp
    {
        return Err(ApiError::TcpNeedsTls(sa));
    }
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<SensorServer<SensorService>>().await;
    // Both reflection versions describe our service and health (reflection adds itself).
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let router = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(SensorServer::new(SensorService::new(source)));
    let shutdown = async move {
        shutdown.await;
        health
            .set_not_serving::<SensorServer<SensorService>>()
            .await;
        tracing::info!("gRPC API shutting down");
    };

    match addr {
        ListenAddr::Unix(path) => {
            let (listener, socket) = bind_unix(&path)?;
            tracing::info!(socket = %path.display(), "gRPC API listening (mode 0600)");
            let served = router
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
                .await;
            socket.remove();
            served?;
        }
        ListenAddr::Tcp(sa) => {
            let listener = TcpListener::bind(sa)
                .await
                .map_err(|source| ApiError::Bind {
                    addr: addr.to_string(),
                    source,
                })?;
            tracing::warn!(
                addr = %sa,
                "gRPC API listening on PLAINTEXT TCP without authentication: anyone who can \
                 reach this port can read every profile. Use only on a trusted test network."
            );
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
                .await?;
        }
    }
    Ok(())
}

/// The socket file this server created; removed on exit only if it is still the same file
/// (device, inode and change time: an inode number alone is reused once the file is gone).
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    identity: (u64, u64, i64, i64),
}

fn identity(m: &fs::Metadata) -> (u64, u64, i64, i64) {
    (m.dev(), m.ino(), m.ctime(), m.ctime_nsec())
}

impl SocketFile {
    fn remove(self) {
        match fs::symlink_metadata(&self.path) {
            Ok(m) if identity(&m) == self.identity => {
                if let Err(e) = fs::remove_file(&self.path) {
                    tracing::warn!(socket = %self.path.display(), "removing the socket: {e}");
                }
            }
            // Replaced by someone else (or already gone): not ours to remove.
            _ => {}
        }
    }
}

fn bind_unix(path: &Path) -> Result<(UnixListener, SocketFile), ApiError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|source| ApiError::SocketDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    remove_stale_socket(path)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let bind_err = |source| ApiError::Bind {
        addr: format!("unix:{}", path.display()),
        source,
    };
    let _ = fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(bind_err)?;
    let placed = fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
        .map_err(|source| ApiError::Chmod {
            path: path.to_path_buf(),
            source,
        })
        .and_then(|()| fs::rename(&tmp, path).map_err(bind_err))
        .and_then(|()| fs::symlink_metadata(path).map_err(bind_err));
    match placed {
        Ok(m) => Ok((
            listener,
            SocketFile {
                path: path.to_path_buf(),
                identity: identity(&m),
            },
        )),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// A leftover socket from an agent that died is removed; a live one (it accepts a connection)
/// or a file that is not a socket is an error.
fn remove_stale_socket(path: &Path) -> Result<(), ApiError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ApiError::Bind {
                addr: format!("unix:{}", path.display()),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ApiError::NotASocket(path.to_path_buf()));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(ApiError::InUse(path.to_path_buf()));
    }
    tracing::info!(socket = %path.display(), "removing a stale socket");
    fs::remove_file(path).map_err(|source| ApiError::Bind {
        addr: format!("unix:{}", path.display()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plaintext_tcp_is_refused_without_the_flag() {
        let source = Arc::new(MemorySource::new("n"));
        let err = serve(
            "127.0.0.1:1".parse().unwrap(),
            false,
            source,
            std::future::pending(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ApiError::TcpNeedsTls(_)));
        assert!(
            err.to_string()
                .contains("TCP requires TLS with client certificates"),
            "{err}"
        );
    }

    #[test]
    fn a_regular_file_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sensor.sock");
        fs::write(&path, "data").unwrap();
        let err = bind_unix(&path).unwrap_err();
        assert!(matches!(err, ApiError::NotASocket(_)), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "data");
    }

    #[tokio::test]
    async fn stale_sockets_are_replaced_live_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/sensor.sock");
        let (live, socket) = bind_unix(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(bind_unix(&path), Err(ApiError::InUse(_))));
        drop(live); // the file stays: a stale socket
        assert!(path.exists());
        let (_again, socket2) = bind_unix(&path).unwrap();
        // The first server's cleanup must not remove the second one's socket.
        socket.remove();
        assert!(path.exists());
        socket2.remove();
        assert!(!path.exists());
    }
}
