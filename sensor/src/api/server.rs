//! The gRPC server: `sensor.v1.Sensor` over the agent's [`Services`], with
//! `grpc.health.v1.Health` and server reflection (v1 and v1alpha), on a Unix socket (mode 0600)
//! or TCP with mutual TLS (plaintext TCP only when asked explicitly, for tests).

use std::{
    fs,
    future::Future,
    io,
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::{Request, Response, Status, transport::Server};

use super::control::{self, Control};
use super::filter::{AnomalyFilter, EventFilter};
use super::limits::{self, Permitted, StreamSlots};
use super::proto::{
    self, AcceptAnomalyRequest, AcceptAnomalyResponse, ListProfilesRequest, ListProfilesResponse,
    NetworkPolicyRequest, NetworkPolicyResponse, ProfileRef, RelearnRequest, RelearnResponse,
    SeccompRequest, SeccompResponse, StreamAnomaliesRequest, StreamEventsRequest,
    sensor_server::{Sensor, SensorServer},
};
use super::source::{AnomalySource, EventSource, Graduation};
pub use super::source::{MemorySource, ProfileSource};
use super::stream::{self, AnomalyStream, EventStream};
use super::tls::{TlsError, TlsFiles};
use super::{FILE_DESCRIPTOR_SET, ListenAddr, convert, lookup};
use crate::ai::{Catalogue, tools::SharedTools};
use crate::drafts::render;
use crate::profile::model::ProfileKey;

/// The fully qualified service name (health checks, reflection).
pub const SERVICE_NAME: &str = "sensor.v1.Sensor";

/// How long in-flight calls get to finish after the shutdown signal (streams are told to end at
/// once; this bounds a client that does not read its last message).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// HTTP/2 pings on idle connections: a client that vanished (node reboot, cable) is noticed and
/// its streams freed.
const KEEPALIVE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "refusing to serve gRPC on plaintext TCP ({0}): TCP requires TLS with client certificates \
         (a server certificate, its key and the CA that signs client certificates); use a unix: \
         address, or for tests only, insecure TCP"
    )]
    TcpNeedsTls(std::net::SocketAddr),
    #[error("TLS for {addr}: {source}")]
    Tls { addr: String, source: TlsError },
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

/// Everything the server serves. Only `profiles` is required: a call whose part is missing
/// answers UNIMPLEMENTED, naming what this agent does not run.
#[derive(Clone)]
pub struct Services {
    pub profiles: Arc<dyn ProfileSource>,
    /// `StreamAnomalies`.
    pub anomalies: Option<Arc<dyn AnomalySource>>,
    /// `StreamEvents`.
    pub events: Option<Arc<dyn EventSource>>,
    /// `AcceptAnomaly`, `Relearn`.
    pub control: Option<Arc<dyn Control>>,
    /// `GetInfo`.
    pub info: Option<Arc<proto::AgentInfo>>,
    /// Live tool calls for `GetAgents` (the inventory itself comes from the profiles).
    pub tools: Option<SharedTools>,
    /// What `GetAgents` and the network policy drafts classify peers and packages with: the
    /// embedded catalogue unless [`Services::with_catalogue`] says otherwise.
    pub catalogue: &'static Catalogue,
}

impl Services {
    pub fn new(profiles: Arc<dyn ProfileSource>) -> Self {
        Self {
            profiles,
            anomalies: None,
            events: None,
            control: None,
            info: None,
            tools: None,
            catalogue: Catalogue::embedded(),
        }
    }

    pub fn with_catalogue(mut self, catalogue: &'static Catalogue) -> Self {
        self.catalogue = catalogue;
        self
    }

    pub fn with_tools(mut self, tools: SharedTools) -> Self {
        self.tools = Some(tools);
        self
    }

    pub fn with_info(mut self, info: proto::AgentInfo) -> Self {
        self.info = Some(Arc::new(info));
        self
    }

    pub fn with_anomalies(mut self, anomalies: Arc<dyn AnomalySource>) -> Self {
        self.anomalies = Some(anomalies);
        self
    }

    pub fn with_events(mut self, events: Arc<dyn EventSource>) -> Self {
        self.events = Some(events);
        self
    }

    pub fn with_control(mut self, control: Arc<dyn Control>) -> Self {
        self.control = Some(control);
        self
    }
}

/// Profiles only (the API before anomalies).
impl From<Arc<dyn ProfileSource>> for Services {
    fn from(profiles: Arc<dyn ProfileSource>) -> Self {
        Services::new(profiles)
    }
}

impl<T: ProfileSource> From<Arc<T>> for Services {
    fn from(profiles: Arc<T>) -> Self {
        Services::new(profiles)
    }
}

/// How a TCP address is secured. A Unix socket is protected by its mode (0600) and ignores
/// this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    /// Mutual TLS: required for TCP unless `insecure_tcp`.
    pub tls: Option<TlsFiles>,
    /// Plaintext TCP without authentication (`--grpc-insecure`): tests on a trusted network
    /// only. Ignored when `tls` is set.
    pub insecure_tcp: bool,
}

impl Transport {
    pub fn tls(files: TlsFiles) -> Self {
        Self {
            tls: Some(files),
            insecure_tcp: false,
        }
    }

    pub fn insecure() -> Self {
        Self {
            tls: None,
            insecure_tcp: true,
        }
    }
}

/// The `insecure_tcp` flag alone (no TLS files): `serve(addr, settings.insecure_tcp, ...)`.
impl From<bool> for Transport {
    fn from(insecure_tcp: bool) -> Self {
        Self {
            tls: None,
            insecure_tcp,
        }
    }
}

impl From<TlsFiles> for Transport {
    fn from(files: TlsFiles) -> Self {
        Transport::tls(files)
    }
}

/// The `sensor.v1.Sensor` implementation.
pub struct SensorService {
    services: Services,
    /// Becomes true when the server stops: streams end with UNAVAILABLE.
    shutdown: watch::Receiver<bool>,
    /// Open `StreamAnomalies` / `StreamEvents` streams, bounded (see [`limits`]).
    anomaly_streams: StreamSlots,
    event_streams: StreamSlots,
}

impl SensorService {
    pub fn new(services: impl Into<Services>, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            services: services.into(),
            shutdown,
            anomaly_streams: StreamSlots::new("StreamAnomalies", limits::MAX_STREAMS_PER_KIND),
            event_streams: StreamSlots::new("StreamEvents", limits::MAX_STREAMS_PER_KIND),
        }
    }

    fn source(&self) -> &dyn ProfileSource {
        self.services.profiles.as_ref()
    }

    fn node_name(&self) -> String {
        self.services.profiles.node_name()
    }

    fn profile_key(r: Option<&ProfileRef>) -> Result<ProfileKey, lookup::RequestError> {
        let r = r.ok_or(lookup::RequestError::Missing { field: "ref" })?;
        Ok(ProfileKey {
            namespace: lookup::name("namespace", &r.namespace)?.to_string(),
            workload: lookup::name("workload", &r.workload)?.to_string(),
            container: lookup::name("container", &r.container)?.to_string(),
        })
    }

    fn control(&self) -> Result<Arc<dyn Control>, Status> {
        self.services.control.clone().ok_or_else(|| {
            Status::unimplemented("this agent does not take drift commands (no control service)")
        })
    }
}

fn graduation(g: Graduation) -> proto::Graduation {
    proto::Graduation {
        evaluated: g.evaluated,
        ready_to_enforce: g.ready_to_enforce,
        reasons: if g.evaluated {
            g.reasons
        } else {
            vec!["not evaluated by this agent".into()]
        },
        network: g.network.map(|n| proto::NetworkGraduation {
            audited: n.audited,
            ready_to_enforce: n.ready_to_enforce,
            summary: n.summary,
        }),
    }
}

fn profile_ref(k: &ProfileKey) -> ProfileRef {
    ProfileRef {
        namespace: k.namespace.clone(),
        workload: k.workload.clone(),
        container: k.container.clone(),
    }
}

/// Runs a synchronous agent call off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("the agent's handler panicked: {e}")))
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
        self.source().visit(&mut |p| {
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
        // Outside `visit`: the agent may take its own locks to evaluate graduation.
        for s in &mut summaries {
            let key = ProfileKey {
                namespace: s.namespace.clone(),
                workload: s.workload.clone(),
                container: s.container.clone(),
            };
            s.graduation = Some(graduation(self.source().graduation(&key)));
        }
        Ok(Response::new(ListProfilesResponse {
            profiles: summaries,
            node_name: self.node_name(),
            time: convert::now(),
        }))
    }

    async fn get_profile(
        &self,
        request: Request<ProfileRef>,
    ) -> Result<Response<proto::Profile>, Status> {
        let key = Self::profile_key(Some(request.get_ref()))?;
        let profile = lookup::profile(self.source(), &key)?;
        let mut out = convert::profile(&profile);
        out.graduation = Some(graduation(self.source().graduation(&key)));
        out.node_name = self.node_name();
        out.time = convert::now();
        Ok(Response::new(out))
    }

    async fn get_seccomp_profile(
        &self,
        request: Request<SeccompRequest>,
    ) -> Result<Response<SeccompResponse>, Status> {
        let req = request.into_inner();
        let key = Self::profile_key(req.r#ref.as_ref())?;
        let mode = lookup::enum_value::<proto::SeccompMode>("mode", req.mode)?;
        let format = lookup::enum_value::<proto::SeccompFormat>("format", req.format)?;
        let profile = lookup::profile(self.source(), &key)?;
        let draft = render::seccomp(&profile, mode.into(), format.into())
            .map_err(lookup::RequestError::from)?;
        Ok(Response::new(SeccompResponse {
            content: draft.content,
            notes: draft.notes,
            completeness: convert::completeness(profile.completeness).into(),
            status: convert::status(profile.status).into(),
            localhost_profile: draft.localhost_profile,
            node_name: self.node_name(),
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
        let flavor = lookup::enum_value::<proto::NetworkPolicyFlavor>("flavor", req.flavor)?;
        let format = lookup::enum_value::<proto::PolicyFormat>("format", req.format)?;
        let profiles = lookup::workload(self.source(), namespace, workload)?;
        let refs: Vec<_> = profiles.iter().collect();
        let draft =
            render::network_policy(&refs, flavor.into(), format.into(), self.services.catalogue)
                .map_err(lookup::RequestError::from)?;
        Ok(Response::new(NetworkPolicyResponse {
            content: draft.content,
            notes: draft.notes,
            containers: draft.containers,
            node_name: self.node_name(),
            time: convert::now(),
        }))
    }

    type StreamAnomaliesStream = Permitted<AnomalyStream>;

    async fn stream_anomalies(
        &self,
        request: Request<StreamAnomaliesRequest>,
    ) -> Result<Response<Permitted<AnomalyStream>>, Status> {
        let req = request.into_inner();
        let filter = AnomalyFilter::compile(req.filter.as_ref(), &req.deny_list)?;
        let source = self.services.anomalies.clone().ok_or_else(|| {
            Status::unimplemented("this agent does not detect anomalies (no anomaly source)")
        })?;
        let permit = self.anomaly_streams.acquire()?;
        let stream = stream::anomalies(
            source,
            self.node_name(),
            filter,
            req.since_seq,
            self.shutdown.clone(),
        )?;
        Ok(Response::new(Permitted::new(stream, permit)))
    }

    type StreamEventsStream = Permitted<EventStream>;

    async fn stream_events(
        &self,
        request: Request<StreamEventsRequest>,
    ) -> Result<Response<Permitted<EventStream>>, Status> {
        let req = request.into_inner();
        let filter = EventFilter::compile(req.filter.as_ref(), &req.deny_list)?;
        let source = self.services.events.clone().ok_or_else(|| {
            Status::unimplemented("this agent does not stream events (no event source)")
        })?;
        let permit = self.event_streams.acquire()?;
        let stream = stream::events(source, self.node_name(), filter, self.shutdown.clone());
        Ok(Response::new(Permitted::new(stream, permit)))
    }

    async fn accept_anomaly(
        &self,
        request: Request<AcceptAnomalyRequest>,
    ) -> Result<Response<AcceptAnomalyResponse>, Status> {
        let seq = request.into_inner().seq;
        if seq == 0 {
            return Err(lookup::RequestError::Missing { field: "seq" }.into());
        }
        let control = self.control()?;
        let outcome = blocking(move || control.accept(seq)).await??;
        Ok(Response::new(AcceptAnomalyResponse {
            profile: Some(profile_ref(&outcome.profile)),
            added: Some(super::message::fold(&outcome.fold)),
            description: control::describe(&outcome.fold),
            changed: outcome.changed,
            node_name: self.node_name(),
            time: convert::now(),
        }))
    }

    async fn get_info(
        &self,
        _request: Request<proto::GetInfoRequest>,
    ) -> Result<Response<proto::AgentInfo>, Status> {
        let info = self.services.info.clone().ok_or_else(|| {
            Status::unimplemented("this agent does not report its probes (no info)")
        })?;
        Ok(Response::new(info.as_ref().clone()))
    }

    async fn get_agents(
        &self,
        request: Request<proto::GetAgentsRequest>,
    ) -> Result<Response<proto::GetAgentsResponse>, Status> {
        let req = request.into_inner();
        let namespace = lookup::optional_name("namespace", &req.namespace)?;
        let catalogue = self.services.catalogue;
        let mut agents = Vec::new();
        self.source().visit(&mut |p| {
            if !namespace.is_empty() && namespace != p.key.namespace {
                return;
            }
            let inv = crate::ai::inventory::of_profile(p, catalogue);
            if inv.is_agent || req.all {
                agents.push(inv);
            }
        });
        if let Some(tools) = &self.services.tools {
            let tools = tools.lock().expect("tool tracker lock");
            for inv in &mut agents {
                let key = ProfileKey {
                    namespace: inv.namespace.clone(),
                    workload: inv.workload.clone(),
                    container: inv.container.clone(),
                };
                inv.recent_calls = tools.calls(&key);
            }
        }
        agents.sort_by(|a, b| {
            (&a.namespace, &a.workload, &a.container).cmp(&(
                &b.namespace,
                &b.workload,
                &b.container,
            ))
        });
        Ok(Response::new(proto::GetAgentsResponse {
            agents: agents.iter().map(super::agents::entry).collect(),
            catalogue_version: catalogue.version,
            node_name: self.node_name(),
            time: convert::now(),
        }))
    }

    async fn relearn(
        &self,
        request: Request<RelearnRequest>,
    ) -> Result<Response<RelearnResponse>, Status> {
        let req = request.into_inner();
        let namespace = lookup::name("namespace", &req.namespace)?.to_string();
        let workload = lookup::name("workload", &req.workload)?.to_string();
        let control = self.control()?;
        let keys = blocking(move || control.relearn(&namespace, &workload)).await??;
        Ok(Response::new(RelearnResponse {
            profiles: keys.iter().map(profile_ref).collect(),
            node_name: self.node_name(),
            time: convert::now(),
        }))
    }
}

/// Serves the API on `addr` until `shutdown` completes, then ends the streams, drains in-flight
/// calls (at most a few seconds) and returns.
///
/// - `unix:` - creates the parent directory, replaces a stale socket (only a socket nobody
///   answers on), and makes the socket appear at `path` already listening with mode 0600 (bound
///   under a temporary name, chmod, renamed into place). The socket file is removed on return.
///   `transport` is ignored (with a warning if TLS files were given).
/// - TCP - mutual TLS with `transport.tls` (files checked before binding, errors name the file);
///   without it, refused ([`ApiError::TcpNeedsTls`]) unless `transport.insecure_tcp`, then
///   plaintext with a warning.
///
/// `transport` takes a [`Transport`], a [`TlsFiles`], or the `insecure_tcp` flag as a `bool`;
/// `services` takes [`Services`] or just a profile source. To listen on a socket and TCP at
/// once, call it twice with clones of the same [`Services`].
pub async fn serve(
    addr: ListenAddr,
    transport: impl Into<Transport>,
    services: impl Into<Services>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    serve_reporting(addr, transport, services, shutdown, || {}).await
}

/// [`serve`], calling `listening` once the address is bound (the agent's readiness).
pub async fn serve_reporting(
    addr: ListenAddr,
    transport: impl Into<Transport>,
    services: impl Into<Services>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    listening: impl FnOnce() + Send,
) -> Result<(), ApiError> {
    let transport = transport.into();
    let mut builder = Server::builder()
        .max_concurrent_streams(limits::MAX_CONCURRENT_STREAMS)
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)));
    let mut tls = false;
    match (&addr, &transport.tls) {
        (ListenAddr::Tcp(_), Some(files)) => {
            let config = files.load().map_err(|source| ApiError::Tls {
                addr: addr.to_string(),
                source,
            })?;
            builder = builder.tls_config(config).map_err(|e| ApiError::Tls {
                addr: addr.to_string(),
                source: TlsError::Rejected(super::tls::chain(&e)),
            })?;
            tls = true;
        }
        (ListenAddr::Tcp(sa), None) if !transport.insecure_tcp => {
            return Err(ApiError::TcpNeedsTls(*sa));
        }
        (ListenAddr::Unix(path), Some(_)) => tracing::warn!(
            socket = %path.display(),
            "TLS files ignored: a Unix socket is protected by its mode (0600), not TLS"
        ),
        _ => {}
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
    let (stop_streams, streams_stopped) = watch::channel(false);
    let router = builder
        .add_service(health_service.max_decoding_message_size(limits::MAX_REQUEST_BYTES))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            SensorServer::new(SensorService::new(services, streams_stopped))
                .max_decoding_message_size(limits::MAX_REQUEST_BYTES),
        );
    let (stopping_tx, mut stopping) = watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        health
            .set_not_serving::<SensorServer<SensorService>>()
            .await;
        tracing::info!("gRPC API shutting down");
        let _ = stop_streams.send(true);
        let _ = stopping_tx.send(true);
    };
    // Graceful shutdown waits for open calls; a client that stopped reading could hold it
    // forever: give up after the grace period.
    let deadline = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        tracing::warn!("gRPC API: calls still open after the shutdown grace period, closing");
    };

    match addr {
        ListenAddr::Unix(path) => {
            let (listener, socket) = bind_unix(&path)?;
            tracing::info!(socket = %path.display(), "gRPC API listening (mode 0600)");
            listening();
            let served = tokio::select! {
                r = router.serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown) => r,
                () = deadline => Ok(()),
            };
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
            listening();
            if tls {
                tracing::info!(addr = %sa, "gRPC API listening on TCP with mutual TLS");
            } else {
                tracing::warn!(
                    addr = %sa,
                    "gRPC API listening on PLAINTEXT TCP without authentication: anyone who can \
                     reach this port can read every profile and anomaly, and accept anomalies \
                     into baselines. Use only on a trusted test network."
                );
            }
            tokio::select! {
                r = router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown) => r?,
                () = deadline => {}
            }
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
