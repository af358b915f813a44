//! The HTTP endpoint: `GET /metrics` (Prometheus text 0.0.4), `GET /healthz` (liveness),
//! `GET /readyz` (readiness); `HEAD` too. Anything else: 404, or 405 for another method.
//!
//! Served with hyper 1 directly (HTTP/1.1): tonic already builds it, and three fixed routes need
//! no router. Bounded: at most [`MAX_CONNECTIONS`] at once (more wait in the accept queue), and
//! a client has [`HEADER_TIMEOUT`] to send its request head.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};

use super::{Metrics, MetricsError, health::Liveness};

/// Connections served at once: Prometheus and kubelet need a handful.
pub const MAX_CONNECTIONS: usize = 32;
/// Time to receive a request head: a client that opens a connection and says nothing is
/// dropped.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the endpoint's address (before anything slow, so a taken port fails at once).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })
}

/// Serves `listener` until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                tracing::warn!("metrics endpoint: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let response = respond(&metrics, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, "metrics endpoint connection: {e}");
            }
            drop(permit);
        });
    }
}

/// The response to `method path`.
pub fn respond(metrics: &Metrics, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if !matches!(path, "/metrics" | "/healthz" | "/readyz") {
        return text(
            StatusCode::NOT_FOUND,
            "not found: the paths are /metrics, /healthz and /readyz\n".into(),
        );
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use GET\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut response = match path {
        "/metrics" => match metrics.encode() {
            Ok(body) => {
                let mut r = text(StatusCode::OK, body);
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static(
                        prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                    ),
                );
                r
            }
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics: {e}\n"),
            ),
        },
        "/healthz" => healthz(metrics.health.liveness()),
        _ => readyz(&metrics.health.readiness().missing()),
    };
    if method == Method::HEAD {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

fn healthz(l: Liveness) -> Response<Full<Bytes>> {
    match l {
        Liveness::Starting => text(StatusCode::OK, "ok: starting\n".into()),
        Liveness::Alive { since_beat } => text(
            StatusCode::OK,
            format!(
                "ok: event loop ticked {:.1}s ago\n",
                since_beat.as_secs_f64()
            ),
        ),
        Liveness::Stalled { since_beat } => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "event loop stalled: no tick for {:.1}s\n",
                since_beat.as_secs_f64()
            ),
        ),
    }
}

fn readyz(missing: &[&str]) -> Response<Full<Bytes>> {
    if missing.is_empty() {
        text(StatusCode::OK, "ready\n".into())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", missing.join(", ")),
        )
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The endpoint, running; stopped when dropped.
#[derive(Debug)]
pub struct Running {
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves `metrics` there on the current runtime.
pub async fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<Running, MetricsError> {
    let listener = bind(addr).await?;
    let addr = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    tracing::info!(%addr, "metrics endpoint listening (/metrics, /healthz, /readyz)");
    Ok(Running {
        addr,
        task: tokio::spawn(serve(listener, metrics)),
    })
}
