//! The object store behind the API server stand-in (`kube_api.rs`) for every resource that is
//! not a pod: custom resources (the sensor's `sensor.io` profiles), `coordination.k8s.io`
//! Leases, Nodes. What it implements is what the sensor's client uses, with the API server's
//! semantics and status codes:
//!
//! - `GET` an object (404 `NotFound`), a collection, namespaced or across namespaces, with a
//!   `labelSelector` of `k=v` terms and `limit`/`continue` pages; `watch` of a collection from a resourceVersion;
//! - server-side apply (`PATCH`, `application/apply-patch+yaml`, `fieldManager`, `force`): the
//!   object is created, or its `spec` (or, on `/status`, its `status`) replaced by the applied
//!   one; another manager's object is a 409 `Conflict` unless forced; an apply that changes
//!   nothing is a no-op (no new resourceVersion, no watch event), like the real server;
//! - `POST` (409 `AlreadyExists`), `PUT` with `metadata.resourceVersion` (409 `Conflict` when
//!   stale: optimistic concurrency, what leader election relies on), `DELETE`;
//! - bodies over 3 MiB are refused with 413, the API server's limit.
//!
//! Every write is recorded ([`Write`]) so tests can count writes per manager and prove that no
//! two managers wrote one object.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Value, json};

/// The API server's request body limit (`--max-request-body-bytes` default, 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Where a request points: a collection or one object (optionally its status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `<group>/<version>/<plural>` (`v1/nodes` for the core group).
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub status: bool,
}

impl Target {
    /// `/apis/<g>/<v>[/namespaces/<ns>]/<plural>[/<name>[/status]]` or `/api/v1/...`.
    pub fn parse(path: &str) -> Option<Target> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (gv, rest): (String, &[&str]) = match parts.as_slice() {
            ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
            ["api", v, rest @ ..] => (v.to_string(), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            _ => (None, rest),
        };
        let (plural, name, status) = match rest {
            [plural] => (*plural, None, false),
            [plural, name] => (*plural, Some(name.to_string()), false),
            [plural, name, "status"] => (*plural, Some(name.to_string()), true),
            _ => return None,
        };
        Some(Target {
            resource: format!("{gv}/{plural}"),
            namespace,
            name,
            status,
        })
    }

    fn key(&self) -> Option<(String, String, String)> {
        Some((
            self.resource.clone(),
            self.namespace.clone().unwrap_or_default(),
            self.name.clone()?,
        ))
    }
}

/// One write the store accepted (or refused).
#[derive(Debug, Clone)]
pub struct Write {
    pub at: Instant,
    pub method: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub manager: Option<String>,
    pub status_subresource: bool,
    /// The HTTP status answered.
    pub code: u16,
    /// Whether the object changed (a new resourceVersion).
    pub changed: bool,
    pub bytes: usize,
    /// The request body, parsed (`Null` when it was not JSON).
    pub body: Value,
}

#[derive(Debug, Default)]
pub struct Resources {
    objects: BTreeMap<(String, String, String), Value>,
    /// (resourceVersion, type, resource, object).
    events: Vec<(u64, &'static str, String, Value)>,
    pub writes: Vec<Write>,
    uid: u64,
}

/// An API answer: status code and body.
pub type Answer = (u16, Value);

pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn labels_match(o: &Value, selector: Option<&String>) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    sel.split(',').all(|term| {
        let (k, v) = term
            .split_once('=')
            .unwrap_or_else(|| panic!("label selector {term} not supported by the test server"));
        let k = k.trim_end_matches('=');
        o["metadata"]["labels"][k].as_str() == Some(v)
    })
}

impl Resources {
    pub fn get(&self, t: &Target) -> Answer {
        match t.key().and_then(|k| self.objects.get(&k)) {
            Some(o) => (200, o.clone()),
            None => not_found(t),
        }
    }

    /// A collection, in pages when `limit` is given (`continue` is the next item's index).
    pub fn list(
        &self,
        t: &Target,
        label_selector: Option<&String>,
        limit: Option<usize>,
        from: usize,
        rv: u64,
    ) -> Answer {
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|((r, ns, _), o)| {
                *r == t.resource
                    && t.namespace.as_ref().is_none_or(|n| n == ns)
                    && labels_match(o, label_selector)
            })
            .map(|(_, o)| o)
            .collect::<Vec<&Value>>()
            .into_iter()
            .skip(from)
            .cloned()
            .collect();
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        let page: Vec<Value> = items.into_iter().take(limit.saturating_add(1)).collect();
        let more = page.len() > limit;
        let page: Vec<Value> = page.into_iter().take(limit).collect();
        if more {
            metadata["continue"] = json!((from + page.len()).to_string());
        }
        (
            200,
            json!({"kind": "List", "apiVersion": "v1", "metadata": metadata, "items": page}),
        )
    }

    /// Watch events after `cursor` for a collection.
    pub fn events_after(
        &self,
        cursor: u64,
        t: &Target,
        label_selector: Option<&String>,
    ) -> Vec<Value> {
        self.events
            .iter()
            .filter(|(rv, _, r, o)| {
                *rv > cursor
                    && *r == t.resource
                    && t.namespace
                        .as_ref()
                        .is_none_or(|n| o["metadata"]["namespace"].as_str() == Some(n))
                    && labels_match(o, label_selector)
            })
            .map(|(_, ty, _, o)| json!({"type": ty, "object": o}))
            .collect()
    }

    /// Puts `object` as is (a test's own object: a Node, a workload); returns its version.
    pub fn put(&mut self, resource: &str, mut object: Value, rv: &mut u64) -> u64 {
        *rv += 1;
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        if object["metadata"]["uid"].is_null() {
            self.uid += 1;
            object["metadata"]["uid"] = json!(format!("uid-{}", self.uid));
        }
        let key = (resource.to_string(), ns, name);
        let ty = if self.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.objects.insert(key, object.clone());
        self.events.push((*rv, ty, resource.to_string(), object));
        *rv
    }

    pub fn remove(&mut self, resource: &str, namespace: &str, name: &str, rv: &mut u64) -> bool {
        let key = (
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        match self.objects.remove(&key) {
            Some(mut o) => {
                *rv += 1;
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
                self.events.push((*rv, "DELETED", resource.to_string(), o));
                true
            }
            None => false,
        }
    }

    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&(
                resource.to_string(),
                namespace.to_string(),
                name.to_string(),
            ))
            .cloned()
    }

    pub fn all(&self, resource: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((r, _, _), _)| r == resource)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Server-side apply of `body` by `manager`.
    pub fn apply(
        &mut self,
        t: &Target,
        manager: Option<&String>,
        force: bool,
        body: &[u8],
        rv: &mut u64,
    ) -> Answer {
        let Some(manager) = manager.filter(|m| !m.is_empty()) else {
            return (
                400,
                status(
                    400,
                    "BadRequest",
                    "PATCH with apply requires a fieldManager",
                ),
            );
        };
        let Some(key) = t.key() else {
            return (
                405,
                status(405, "MethodNotAllowed", "apply to a collection"),
            );
        };
        let applied: Value = match parse(body) {
            Ok(v) => v,
            Err(answer) => return answer,
        };
        if applied["metadata"]["name"].as_str() != t.name.as_deref() {
            return (
                400,
                status(
                    400,
                    "BadRequest",
                    "the name of the object does not match the URL",
                ),
            );
        }
        let field = if t.status { "status" } else { "spec" };
        let existing = self.objects.get(&key).cloned();
        let (mut object, ty) = match existing {
            None if t.status => return not_found(t),
            None => {
                self.uid += 1;
                let mut o = json!({
                    "apiVersion": applied["apiVersion"], "kind": applied["kind"],
                    "metadata": {"name": key.2, "uid": format!("uid-{}", self.uid),
                                 "creationTimestamp": "2026-12-08T00:00:00Z", "generation": 0,
                                 "managedFields": []},
                });
                if !key.1.is_empty() {
                    o["metadata"]["namespace"] = json!(key.1);
                }
                (o, "ADDED")
            }
            Some(o) => {
                let owner = owner_of(&o, t.status);
                if owner.as_deref().is_some_and(|m| m != manager) && !force {
                    return (
                        409,
                        status(
                            409,
                            "Conflict",
                            &format!(
                                "Apply failed with 1 conflict: conflict with \"{}\": .{field}",
                                owner.unwrap_or_default()
                            ),
                        ),
                    );
                }
                (o, "MODIFIED")
            }
        };
        let before = object.clone();
        if !t.status {
            for m in ["labels", "annotations", "ownerReferences"] {
                match applied["metadata"].get(m) {
                    Some(v) => object["metadata"][m] = v.clone(),
                    None => {
                        if let Some(meta) = object["metadata"].as_object_mut() {
                            meta.remove(m);
                        }
                    }
                }
            }
        }
        object[field] = applied.get(field).cloned().unwrap_or(Value::Null);
        if object == before {
            return (200, object);
        }
        if !t.status && before.get("spec") != object.get("spec") {
            let g = object["metadata"]["generation"].as_u64().unwrap_or(0);
            object["metadata"]["generation"] = json!(g + 1);
        }
        set_owner(&mut object, manager, t.status);
        *rv += 1;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.objects.insert(key, object.clone());
        self.events
            .push((*rv, ty, t.resource.clone(), object.clone()));
        (if ty == "ADDED" { 201 } else { 200 }, object)
    }

    /// `POST` to a collection.
    pub fn create(&mut self, t: &Target, body: &[u8], rv: &mut u64) -> Answer {
        let mut o: Value = match parse(body) {
            Ok(v) => v,
            Err(answer) => return answer,
        };
        let Some(name) = o["metadata"]["name"].as_str().map(str::to_string) else {
            return (422, status(422, "Invalid", "metadata.name: Required value"));
        };
        let ns = t.namespace.clone().unwrap_or_default();
        let key = (t.resource.clone(), ns.clone(), name.clone());
        if self.objects.contains_key(&key) {
            return (
                409,
                status(
                    409,
                    "AlreadyExists",
                    &format!("{} \"{name}\" already exists", t.resource),
                ),
            );
        }
        *rv += 1;
        self.uid += 1;
        o["metadata"]["uid"] = json!(format!("uid-{}", self.uid));
        o["metadata"]["resourceVersion"] = json!(rv.to_string());
        if !ns.is_empty() {
            o["metadata"]["namespace"] = json!(ns);
        }
        self.objects.insert(key, o.clone());
        self.events
            .push((*rv, "ADDED", t.resource.clone(), o.clone()));
        (201, o)
    }

    /// `PUT` of an object: refused when its `metadata.resourceVersion` is not the stored one.
    pub fn replace(&mut self, t: &Target, body: &[u8], rv: &mut u64) -> Answer {
        let Some(key) = t.key() else {
            return (405, status(405, "MethodNotAllowed", "PUT to a collection"));
        };
        let mut o: Value = match parse(body) {
            Ok(v) => v,
            Err(answer) => return answer,
        };
        let Some(stored) = self.objects.get(&key) else {
            return not_found(t);
        };
        let stored_rv = stored["metadata"]["resourceVersion"].clone();
        if o["metadata"]["resourceVersion"] != stored_rv {
            return (
                409,
                status(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                        t.resource, key.2
                    ),
                ),
            );
        }
        o["metadata"]["uid"] = stored["metadata"]["uid"].clone();
        *rv += 1;
        o["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.objects.insert(key, o.clone());
        self.events
            .push((*rv, "MODIFIED", t.resource.clone(), o.clone()));
        (200, o)
    }

    pub fn delete(&mut self, t: &Target, rv: &mut u64) -> Answer {
        let Some(key) = t.key() else {
            return (
                405,
                status(405, "MethodNotAllowed", "DELETE of a collection"),
            );
        };
        if self.remove(&key.0, &key.1, &key.2, rv) {
            (200, status(200, "", "deleted"))
        } else {
            not_found(t)
        }
    }
}

/// A JSON request body, or the API server's 400.
fn parse(body: &[u8]) -> Result<Value, Answer> {
    serde_json::from_slice(body)
        .map_err(|e| (400, status(400, "BadRequest", &format!("body: {e}"))))
}

fn not_found(t: &Target) -> Answer {
    (
        404,
        status(
            404,
            "NotFound",
            &format!(
                "{} \"{}\" not found",
                t.resource,
                t.name.as_deref().unwrap_or("")
            ),
        ),
    )
}

/// The manager of the object's spec (or status) fields, from its managedFields.
fn owner_of(o: &Value, status: bool) -> Option<String> {
    o["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| (e["subresource"].as_str() == Some("status")) == status)
        .and_then(|e| e["manager"].as_str())
        .map(str::to_string)
}

fn set_owner(o: &mut Value, manager: &str, status: bool) {
    let api_version = o["apiVersion"].clone();
    let fields = o["metadata"]["managedFields"]
        .as_array_mut()
        .expect("managedFields");
    fields.retain(|e| (e["subresource"].as_str() == Some("status")) != status);
    let mut entry = json!({"manager": manager, "operation": "Apply",
        "apiVersion": api_version, "fieldsType": "FieldsV1", "fieldsV1": {},
        "time": "2026-12-08T00:00:00Z"});
    if status {
        entry["subresource"] = json!("status");
    }
    fields.push(entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(spec: Value) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"apiVersion": "sensor.io/v1alpha1", "kind": "ProfilePiece",
            "metadata": {"name": "p", "namespace": "ns"}, "spec": spec}),
        )
        .unwrap()
    }

    #[test]
    fn paths_parse() {
        let t =
            Target::parse("/apis/sensor.io/v1alpha1/namespaces/ns/profilepieces/p/status").unwrap();
        assert_eq!(t.resource, "sensor.io/v1alpha1/profilepieces");
        assert_eq!(t.namespace.as_deref(), Some("ns"));
        assert_eq!(t.name.as_deref(), Some("p"));
        assert!(t.status);
        let all = Target::parse("/apis/sensor.io/v1alpha1/profilepieces").unwrap();
        assert_eq!((all.namespace, all.name), (None, None));
        let nodes = Target::parse("/api/v1/nodes/n1").unwrap();
        assert_eq!(nodes.resource, "v1/nodes");
    }

    #[test]
    fn apply_creates_updates_conflicts_and_skips_no_ops() {
        let mut r = Resources::default();
        let mut rv = 10;
        let t = Target::parse("/apis/sensor.io/v1alpha1/namespaces/ns/profilepieces/p").unwrap();
        let a = "sensor/node/a".to_string();
        let b = "sensor/node/b".to_string();
        assert_eq!(
            r.apply(&t, Some(&a), true, &piece(json!({"x": 1})), &mut rv)
                .0,
            201
        );
        assert_eq!(rv, 11);
        assert_eq!(
            r.apply(&t, Some(&a), true, &piece(json!({"x": 1})), &mut rv)
                .0,
            200
        );
        assert_eq!(rv, 11, "a no-op apply writes nothing");
        assert_eq!(
            r.apply(&t, Some(&b), false, &piece(json!({"x": 2})), &mut rv)
                .0,
            409
        );
        assert_eq!(
            r.apply(&t, Some(&a), false, &piece(json!({"x": 2})), &mut rv)
                .0,
            200
        );
        assert_eq!(r.get(&t).1["spec"]["x"], 2);
        assert_eq!(r.get(&t).1["metadata"]["generation"], 2);
        assert_eq!(r.apply(&t, None, true, &piece(json!({})), &mut rv).0, 400);
    }

    #[test]
    fn lists_come_in_pages() {
        let mut r = Resources::default();
        let mut rv = 1;
        for n in 0..5 {
            r.put(
                "v1/nodes",
                json!({"metadata": {"name": format!("n{n}")}}),
                &mut rv,
            );
        }
        let t = Target::parse("/api/v1/nodes").unwrap();
        let (_, first) = r.list(&t, None, Some(2), 0, rv);
        assert_eq!(first["items"].as_array().unwrap().len(), 2);
        assert_eq!(first["metadata"]["continue"], "2");
        let (_, last) = r.list(&t, None, Some(2), 4, rv);
        assert_eq!(last["items"][0]["metadata"]["name"], "n4");
        assert!(last["metadata"].get("continue").is_none());
        assert_eq!(
            r.list(&t, None, None, 0, rv).1["items"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
    }

    #[test]
    fn replace_needs_the_current_version() {
        let mut r = Resources::default();
        let mut rv = 1;
        let coll = Target::parse("/apis/coordination.k8s.io/v1/namespaces/s/leases").unwrap();
        let lease = json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}});
        let (code, created) = r.create(&coll, lease.to_string().as_bytes(), &mut rv);
        assert_eq!(code, 201);
        assert_eq!(
            r.create(&coll, lease.to_string().as_bytes(), &mut rv).0,
            409
        );
        let one = Target::parse("/apis/coordination.k8s.io/v1/namespaces/s/leases/l").unwrap();
        let mut next = created.clone();
        next["spec"]["holderIdentity"] = json!("b");
        assert_eq!(r.replace(&one, next.to_string().as_bytes(), &mut rv).0, 200);
        // A second writer with the old version loses.
        assert_eq!(r.replace(&one, next.to_string().as_bytes(), &mut rv).0, 409);
    }
}
