//! A Kubernetes API server stand-in over real HTTP/1.1 on 127.0.0.1, serving real Kubernetes
//! JSON: `PodList`s (with `fieldSelector` on `spec.nodeName`, `=` and `!=`, and `limit` /
//! `continue` paging), watch streams of `WatchEvent`s (chunked, from a `resourceVersion`, with
//! `ERROR` 410 `Expired` for a history that is gone), and single `ReplicaSet` / `Job` objects.
//!
//! Why: the sensor's Kubernetes source is a real client (kube-rs). A test drives it through
//! the wire protocol the API server speaks, and changes the cluster (pods added, relabelled,
//! deleted), ends watches cleanly, expires them (410 Gone), refuses requests (403) or stops
//! answering, while recording every request it got.
//!
//! Every other resource (the sensor's custom resources, Leases, Nodes) lives in a generic store
//! with server-side apply, optimistic concurrency and watches (`kube_resources.rs`).
//!
//! Blocking std networking on its own threads: usable from any test, async or not.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::kube_resources::{MAX_BODY, Resources, Target, status};

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    /// 403 Forbidden with a Status, like an API server whose RBAC does not allow the request.
    Forbidden,
    /// Accepts, then answers nothing for this long (a slow or hung API server).
    Stall(Duration),
}

/// One request received: path and decoded query.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
}

impl Request {
    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|v| v == "true" || v == "1")
    }
}

struct State {
    rv: u64,
    pods: BTreeMap<String, Value>,
    /// Objects served by GET, by API path.
    objects: HashMap<String, Value>,
    /// Watch history: (resourceVersion, type, object).
    events: Vec<(u64, &'static str, Value)>,
    /// Watches from an older resourceVersion get 410 Gone.
    oldest_rv: u64,
    /// Bumped to end open watches: (epoch, expire with 410).
    epoch: (u64, bool),
    mode: Mode,
    requests: Vec<Request>,
    resources: Resources,
    /// Resources (`<group>/<version>/<plural>` prefixes) answered with 403.
    forbidden: Vec<String>,
}

struct Inner {
    state: Mutex<State>,
    cv: Condvar,
    stop: AtomicBool,
}

pub struct KubeApi {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl KubeApi {
    /// On a free port.
    pub fn start() -> KubeApi {
        Self::bind(0)
    }

    /// On `port` (e.g. to bring the API back where the agent was told it is).
    pub fn bind(port: u16) -> KubeApi {
        let listener =
            TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("bind {port}: {e}"));
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                rv: 1000,
                pods: BTreeMap::new(),
                objects: HashMap::new(),
                events: Vec::new(),
                oldest_rv: 0,
                epoch: (0, false),
                mode: Mode::Serve,
                requests: Vec::new(),
                resources: Resources::default(),
                forbidden: Vec::new(),
            }),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let accept_inner = inner.clone();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !accept_inner.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let inner = accept_inner.clone();
                        std::thread::spawn(move || serve(stream, &inner));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        KubeApi { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.inner.state.lock().unwrap();
        let r = f(&mut st);
        drop(st);
        self.inner.cv.notify_all();
        r
    }

    pub fn set_mode(&self, mode: Mode) {
        self.with(|s| s.mode = mode);
    }

    /// Adds or replaces a pod (an `ADDED` or `MODIFIED` event); returns its resourceVersion.
    pub fn put_pod(&self, mut pod: Value) -> u64 {
        self.with(|s| {
            s.rv += 1;
            pod["metadata"]["resourceVersion"] = json!(s.rv.to_string());
            let uid = pod["metadata"]["uid"]
                .as_str()
                .expect("pod uid")
                .to_string();
            let kind = if s.pods.contains_key(&uid) {
                "MODIFIED"
            } else {
                "ADDED"
            };
            s.pods.insert(uid, pod.clone());
            s.events.push((s.rv, kind, pod));
            s.rv
        })
    }

    /// Deletes a pod (a `DELETED` event).
    pub fn delete_pod(&self, uid: &str) {
        self.with(|s| {
            if let Some(mut pod) = s.pods.remove(uid) {
                s.rv += 1;
                pod["metadata"]["resourceVersion"] = json!(s.rv.to_string());
                s.events.push((s.rv, "DELETED", pod));
            }
        });
    }

    /// Deletes a pod without a trace in the watch history (it was deleted while the watch
    /// history the client could resume from is gone): only a new list shows it is gone.
    pub fn forget_pod(&self, uid: &str) {
        self.with(|s| {
            s.pods.remove(uid);
            s.events.retain(|(_, _, o)| o["metadata"]["uid"] != uid);
        });
    }

    /// Serves `object` at its API path (ReplicaSets, Jobs).
    pub fn put_object(&self, object: Value) {
        let path = object_path(&object);
        self.with(|s| s.objects.insert(path, object));
    }

    /// Serves `body` (an object or a list) at exactly `path`, e.g.
    /// `/apis/networking.k8s.io/v1/networkpolicies`.
    pub fn put_at(&self, path: &str, body: Value) {
        self.with(|s| s.objects.insert(path.to_string(), body));
    }

    /// Ends every open watch cleanly (what the API server does at `timeoutSeconds`): a client
    /// resumes from the last resourceVersion it saw.
    pub fn end_watches(&self) {
        self.with(|s| s.epoch = (s.epoch.0 + 1, false));
    }

    /// The history is compacted: open watches get `ERROR` 410 Expired, and so does any watch
    /// from an older resourceVersion. A client must list again.
    pub fn expire_watches(&self) {
        self.with(|s| {
            // Everything a client saw is too old; a new list's version is not.
            s.rv += 1;
            s.oldest_rv = s.rv;
            s.epoch = (s.epoch.0 + 1, true);
        });
    }

    /// Answers requests for resources starting with `resource` (e.g.
    /// `coordination.k8s.io/v1/leases`) with 403, as RBAC without that permission would.
    pub fn forbid(&self, resource: &str) {
        self.with(|s| s.forbidden.push(resource.to_string()));
    }

    pub fn allow_all(&self) {
        self.with(|s| s.forbidden.clear());
    }

    /// Puts an object of the generic store (a Node, a workload) at `resource`
    /// (`<group>/<version>/<plural>`, `v1/nodes`), as an `ADDED`/`MODIFIED` event.
    pub fn put_resource(&self, resource: &str, object: Value) -> u64 {
        self.with(|s| s.resources.put(resource, object, &mut s.rv))
    }

    pub fn delete_resource(&self, resource: &str, namespace: &str, name: &str) -> bool {
        self.with(|s| s.resources.remove(resource, namespace, name, &mut s.rv))
    }

    pub fn resource(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.with(|s| s.resources.object(resource, namespace, name))
    }

    /// Every object of `resource`.
    pub fn resources(&self, resource: &str) -> Vec<Value> {
        self.with(|s| s.resources.all(resource))
    }

    /// Every write the generic store answered, in order.
    pub fn writes(&self) -> Vec<crate::kube_resources::Write> {
        self.with(|s| s.resources.writes.clone())
    }

    pub fn requests(&self) -> Vec<Request> {
        self.with(|s| s.requests.clone())
    }

    /// Stops accepting; open connections end.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        self.end_watches();
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `/apis/<group>/<version>/namespaces/<ns>/<plural>/<name>` of a ReplicaSet or Job.
fn object_path(o: &Value) -> String {
    let plural = match o["kind"].as_str() {
        Some("ReplicaSet") => "replicasets",
        Some("Job") => "jobs",
        other => panic!("no path for kind {other:?}"),
    };
    format!(
        "/apis/{}/namespaces/{}/{plural}/{}",
        o["apiVersion"].as_str().unwrap(),
        o["metadata"]["namespace"].as_str().unwrap(),
        o["metadata"]["name"].as_str().unwrap()
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_target(target: &str) -> Request {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    Request {
        method: String::new(),
        path: path.to_string(),
        query,
    }
}

/// Whether `pod` passes a `spec.nodeName=X` / `spec.nodeName!=X` field selector.
fn selected(pod: &Value, selector: Option<&String>) -> bool {
    let node = pod["spec"]["nodeName"].as_str().unwrap_or("");
    selector.is_none_or(|sel| {
        sel.split(',').all(|term| {
            if let Some(v) = term.strip_prefix("spec.nodeName!=") {
                node != v
            } else if let Some(v) = term.strip_prefix("spec.nodeName=") {
                node == v
            } else {
                panic!("field selector {term} not supported by the test server")
            }
        })
    })
}

fn serve(stream: TcpStream, inner: &Inner) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        let mut content_type = String::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "content-type" => content_type = value.trim().to_string(),
                    _ => {}
                }
            }
        }
        let method = line.split_whitespace().next().unwrap_or("GET").to_string();
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut req = parse_target(&target);
        req.method = method;
        let mut body = vec![0u8; length.min(MAX_BODY + 1)];
        if length > 0 {
            use std::io::Read;
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            // Drain what is beyond the limit (answered 413 below).
            let mut rest = length - body.len();
            let mut sink = [0u8; 8192];
            while rest > 0 {
                let n = rest.min(sink.len());
                if reader.read_exact(&mut sink[..n]).is_err() {
                    return;
                }
                rest -= n;
            }
        }
        let (mode, forbidden) = {
            let mut st = inner.state.lock().unwrap();
            st.requests.push(req.clone());
            let forbidden = Target::parse(&req.path).filter(|t| {
                st.forbidden
                    .iter()
                    .any(|f| t.resource.starts_with(f.as_str()))
            });
            (st.mode, forbidden)
        };
        if let Some(t) = forbidden {
            let (group, plural) = t.resource.rsplit_once('/').unwrap_or(("", &t.resource));
            let group = group.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            let verb = match (req.method.as_str(), req.is_watch(), t.name.is_some()) {
                ("GET", true, _) => "watch",
                ("GET", false, true) => "get",
                ("GET", false, false) => "list",
                ("PATCH", ..) => "patch",
                ("PUT", ..) => "update",
                ("POST", ..) => "create",
                ("DELETE", ..) => "delete",
                _ => "get",
            };
            let s = status(
                403,
                "Forbidden",
                &format!(
                    "{plural}.{group} is forbidden: User \"system:serviceaccount:node-sensor:node-sensor\" \
                     cannot {verb} resource \"{plural}\" in API group \"{group}\" in the namespace \"{}\"",
                    t.namespace.as_deref().unwrap_or("")
                ),
            );
            if respond(&mut out, 403, &s).is_err() {
                return;
            }
            continue;
        }
        match mode {
            Mode::Forbidden => {
                let s = status(
                    403,
                    "Forbidden",
                    "pods is forbidden: User \"system:serviceaccount:node-sensor:node-sensor\" \
                     cannot list resource \"pods\" in API group \"\" at the cluster scope",
                );
                if respond(&mut out, 403, &s).is_err() {
                    return;
                }
                continue;
            }
            Mode::Stall(d) => {
                std::thread::sleep(d);
                return;
            }
            Mode::Serve => {}
        }
        if req.path == "/api/v1/pods" && req.is_watch() {
            watch(&mut out, inner, &req);
            return;
        }
        let served = {
            let st = inner.state.lock().unwrap();
            st.objects.get(&req.path).cloned()
        };
        let (code, body) = if req.path == "/api/v1/pods" {
            (200, list(inner, &req))
        } else if let Some(o) = served {
            (200, o)
        } else if let Some(t) = Target::parse(&req.path) {
            if req.method == "GET" && t.name.is_none() && req.is_watch() {
                watch_resources(&mut out, inner, &req, &t);
                return;
            }
            let answer = resource_request(inner, &req, &t, &content_type, &body, length);
            inner.cv.notify_all();
            answer
        } else {
            (
                404,
                status(404, "NotFound", &format!("{} not found", req.path)),
            )
        };
        if respond(&mut out, code, &body).is_err() {
            return;
        }
    }
}

/// A request for the generic store; writes are recorded.
fn resource_request(
    inner: &Inner,
    req: &Request,
    t: &Target,
    content_type: &str,
    body: &[u8],
    length: usize,
) -> (u16, Value) {
    let mut guard = inner.state.lock().unwrap();
    let st = &mut *guard;
    if req.method == "GET" {
        return if t.name.is_some() {
            st.resources.get(t)
        } else {
            st.resources.list(
                t,
                req.query.get("labelSelector"),
                req.query.get("limit").and_then(|l| l.parse().ok()),
                req.query
                    .get("continue")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0),
                st.rv,
            )
        };
    }
    let before = st.rv;
    let (code, answer) = if length > MAX_BODY {
        (
            413,
            status(
                413,
                "RequestEntityTooLarge",
                &format!("Request entity too large: limit is {MAX_BODY}"),
            ),
        )
    } else {
        match req.method.as_str() {
            "PATCH" if content_type.starts_with("application/apply-patch") => {
                let force = req.query.get("force").is_some_and(|f| f == "true");
                st.resources
                    .apply(t, req.query.get("fieldManager"), force, body, &mut st.rv)
            }
            "PATCH" => (
                415,
                status(
                    415,
                    "UnsupportedMediaType",
                    "only server-side apply patches",
                ),
            ),
            "POST" => st.resources.create(t, body, &mut st.rv),
            "PUT" => st.resources.replace(t, body, &mut st.rv),
            "DELETE" => st.resources.delete(t, &mut st.rv),
            m => (405, status(405, "MethodNotAllowed", m)),
        }
    };
    let changed = st.rv != before;
    st.resources.writes.push(crate::kube_resources::Write {
        at: std::time::Instant::now(),
        method: req.method.clone(),
        resource: t.resource.clone(),
        namespace: t.namespace.clone().unwrap_or_default(),
        name: t.name.clone().unwrap_or_default(),
        manager: req.query.get("fieldManager").cloned(),
        status_subresource: t.status,
        code,
        changed,
        bytes: length,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    });
    (code, answer)
}

fn respond(out: &mut TcpStream, code: u16, body: &Value) -> std::io::Result<()> {
    let text = body.to_string();
    let reason = match code {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        413 => "Request Entity Too Large",
        _ => "Error",
    };
    write!(
        out,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )?;
    out.flush()
}

fn list(inner: &Inner, req: &Request) -> Value {
    let st = inner.state.lock().unwrap();
    let items: Vec<Value> = st
        .pods
        .values()
        .filter(|p| selected(p, req.query.get("fieldSelector")))
        .map(|p| {
            // List items carry no kind/apiVersion, like the API server's.
            let mut p = p.clone();
            let o = p.as_object_mut().unwrap();
            o.remove("kind");
            o.remove("apiVersion");
            p
        })
        .collect();
    let start: usize = req
        .query
        .get("continue")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let limit: usize = req
        .query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(items.len());
    let mut metadata = json!({"resourceVersion": st.rv.to_string()});
    if end < items.len() {
        metadata["continue"] = json!(end.to_string());
    }
    json!({"kind": "PodList", "apiVersion": "v1", "metadata": metadata,
           "items": items[start.min(end)..end].to_vec()})
}

fn chunk(out: &mut TcpStream, v: &Value) -> std::io::Result<()> {
    let line = format!("{v}\n");
    write!(out, "{:x}\r\n{line}\r\n", line.len())?;
    out.flush()
}

fn watch(out: &mut TcpStream, inner: &Inner, req: &Request) {
    let selector = req.query.get("fieldSelector");
    stream(out, inner, req, |st, cursor| {
        st.events
            .iter()
            .filter(|(rv, _, o)| *rv > cursor && selected(o, selector))
            .map(|(_, t, o)| json!({"type": t, "object": o}))
            .collect()
    });
}

fn watch_resources(out: &mut TcpStream, inner: &Inner, req: &Request, t: &Target) {
    let labels = req.query.get("labelSelector");
    stream(out, inner, req, |st, cursor| {
        st.resources.events_after(cursor, t, labels)
    });
}

/// A watch stream from the request's resourceVersion: `pending(state, cursor)` gives the
/// events after `cursor`.
fn stream(
    out: &mut TcpStream,
    inner: &Inner,
    req: &Request,
    pending: impl Fn(&State, u64) -> Vec<Value>,
) {
    let mut cursor: u64 = req
        .query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut st = inner.state.lock().unwrap();
    let epoch = st.epoch.0;
    if cursor < st.oldest_rv {
        let e = json!({"type": "ERROR", "object": status(410, "Expired",
            &format!("too old resource version: {cursor} ({})", st.oldest_rv))});
        drop(st);
        let _ = chunk(out, &e).and_then(|_| out.write_all(b"0\r\n\r\n"));
        return;
    }
    loop {
        let pending: Vec<Value> = pending(&st, cursor);
        cursor = st.rv;
        let (now_epoch, expire) = st.epoch;
        drop(st);
        for e in &pending {
            if chunk(out, e).is_err() {
                return;
            }
        }
        if inner.stop.load(Ordering::Relaxed) || now_epoch != epoch {
            if expire {
                let e = json!({"type": "ERROR", "object": status(410, "Expired",
                    "too old resource version")});
                let _ = chunk(out, &e);
            }
            let _ = out.write_all(b"0\r\n\r\n");
            return;
        }
        st = inner.state.lock().unwrap();
        if st.rv == cursor && st.epoch.0 == epoch {
            st = inner
                .cv
                .wait_timeout(st, Duration::from_millis(200))
                .unwrap()
                .0;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Real Kubernetes objects.

/// A pod as the API server returns it.
#[derive(Debug, Clone)]
pub struct PodObject {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
    pub labels: BTreeMap<String, String>,
    /// (kind, name, uid) of the controller.
    pub owner: Option<(String, String, String)>,
    pub service_account: String,
    pub ips: Vec<String>,
    pub host_network: bool,
    pub phase: String,
    /// (container name, runtime id).
    pub containers: Vec<(String, String)>,
}

impl PodObject {
    pub fn new(namespace: &str, name: &str, uid: &str, node: &str) -> PodObject {
        PodObject {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            node: node.into(),
            labels: BTreeMap::new(),
            owner: None,
            service_account: "default".into(),
            ips: Vec::new(),
            host_network: false,
            phase: "Running".into(),
            containers: vec![("app".into(), String::new())],
        }
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    pub fn owner(mut self, kind: &str, name: &str, uid: &str) -> Self {
        self.owner = Some((kind.into(), name.into(), uid.into()));
        self
    }

    pub fn ip(mut self, ip: &str) -> Self {
        self.ips.push(ip.into());
        self
    }

    pub fn host_network(mut self) -> Self {
        self.host_network = true;
        self
    }

    pub fn service_account(mut self, sa: &str) -> Self {
        self.service_account = sa.into();
        self
    }

    pub fn containers(mut self, c: &[(&str, &str)]) -> Self {
        self.containers = c
            .iter()
            .map(|(n, i)| (n.to_string(), i.to_string()))
            .collect();
        self
    }

    pub fn json(&self) -> Value {
        let api_version = |kind: &str| match kind {
            "ReplicaSet" | "StatefulSet" | "DaemonSet" => "apps/v1",
            "Job" => "batch/v1",
            _ => "v1",
        };
        let owners: Vec<Value> = self
            .owner
            .iter()
            .map(|(k, n, u)| {
                json!({"apiVersion": api_version(k), "kind": k, "name": n, "uid": u,
                       "controller": true, "blockOwnerDeletion": true})
            })
            .collect();
        let containers: Vec<Value> = self
            .containers
            .iter()
            .map(|(n, _)| json!({"name": n, "image": "busybox:1.36", "resources": {},
                                 "terminationMessagePath": "/dev/termination-log",
                                 "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}))
            .collect();
        let statuses: Vec<Value> = self
            .containers
            .iter()
            .map(|(n, id)| {
                let mut s = json!({"name": n, "image": "docker.io/library/busybox:1.36",
                    "imageID": "docker.io/library/busybox@sha256:5eef5ed34e1e1ff0a4ae850395cbf665c4de6b4b83a32a0bc7bcb998e24e7bbb",
                    "ready": true, "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": "2026-11-26T00:00:05Z"}}});
                if !id.is_empty() {
                    s["containerID"] = json!(format!("containerd://{id}"));
                }
                s
            })
            .collect();
        let mut status = json!({"phase": self.phase, "hostIP": "10.0.0.10",
            "hostIPs": [{"ip": "10.0.0.10"}], "qosClass": "BestEffort",
            "startTime": "2026-11-26T00:00:01Z", "containerStatuses": statuses,
            "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null,
                            "lastTransitionTime": "2026-11-26T00:00:06Z"}]});
        if let Some(first) = self.ips.first() {
            status["podIP"] = json!(first);
            status["podIPs"] = json!(
                self.ips
                    .iter()
                    .map(|ip| json!({"ip": ip}))
                    .collect::<Vec<_>>()
            );
        }
        json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid,
                         "creationTimestamp": "2026-11-26T00:00:00Z",
                         "labels": self.labels, "ownerReferences": owners},
            "spec": {"containers": containers, "nodeName": self.node,
                     "serviceAccountName": self.service_account,
                     "serviceAccount": self.service_account,
                     "hostNetwork": self.host_network, "restartPolicy": "Always",
                     "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                     "terminationGracePeriodSeconds": 30, "enableServiceLinks": true,
                     "securityContext": {}, "priority": 0, "preemptionPolicy": "PreemptLowerPriority",
                     "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                      "effect": "NoExecute", "tolerationSeconds": 300}]},
            "status": status
        })
    }
}

/// A ReplicaSet owned by a Deployment (`deployment`: (name, uid)), as the API returns it.
pub fn replicaset(
    namespace: &str,
    name: &str,
    uid: &str,
    deployment: Option<(&str, &str)>,
    labels: &BTreeMap<String, String>,
) -> Value {
    let owners: Vec<Value> = deployment
        .iter()
        .map(|(n, u)| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": n, "uid": u,
                             "controller": true, "blockOwnerDeletion": true})
        })
        .collect();
    json!({
        "kind": "ReplicaSet", "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": "77",
                     "generation": 1, "creationTimestamp": "2026-11-25T23:59:00Z",
                     "labels": labels, "ownerReferences": owners,
                     "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}}},
        "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                   "fullyLabeledReplicas": 1, "observedGeneration": 1}
    })
}

/// A Job owned by a CronJob (`cronjob`: (name, uid)), as the API returns it.
pub fn job(namespace: &str, name: &str, uid: &str, cronjob: Option<(&str, &str)>) -> Value {
    let owners: Vec<Value> = cronjob
        .iter()
        .map(|(n, u)| {
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "name": n, "uid": u,
                             "controller": true, "blockOwnerDeletion": true})
        })
        .collect();
    json!({
        "kind": "Job", "apiVersion": "batch/v1",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": "88",
                     "creationTimestamp": "2026-11-26T00:00:00Z", "ownerReferences": owners,
                     "labels": {"batch.kubernetes.io/controller-uid": uid}},
        "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 6,
                 "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
                 "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": uid}},
                              "spec": {"restartPolicy": "OnFailure",
                                       "containers": [{"name": "job", "image": "busybox:1.36"}]}}},
        "status": {"active": 1, "startTime": "2026-11-26T00:00:00Z"}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded() {
        let r = parse_target("/api/v1/pods?fieldSelector=spec.nodeName%21%3Dnode-a&watch=true");
        assert_eq!(r.query["fieldSelector"], "spec.nodeName!=node-a");
        assert!(r.is_watch());
        assert!(selected(
            &json!({"spec": {"nodeName": "b"}}),
            r.query.get("fieldSelector")
        ));
        assert!(!selected(
            &json!({"spec": {"nodeName": "node-a"}}),
            r.query.get("fieldSelector")
        ));
    }
}
