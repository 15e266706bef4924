//! The REST half of the simulated apiserver: URL parsing, the verbs (get,
//! list, watch, create, update, patch, delete, deletecollection) on every
//! kind of [`Store`], the status subresource (and the ASTS `/scale`),
//! request counting and fault injection. Discovery documents come from [`crate::discovery`].
//!
//! The router is a plain axum `Router`, so it serves over TCP or in-process
//! (`kube::Client::new(router, "default")`).

pub mod pages;
pub mod response;
pub mod scale;
pub mod table;
pub mod watch;

mod fields;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::faults::Faults;
use crate::patch::{self, PatchType};
use crate::selector::{self, FieldSelector, Selector};
use crate::store::{ApiError, Kind, Store, Stored, now_rfc3339};
use fields::{check_custom, check_fields, custom_schema};
use table::Include;

/// Called once per resource request with the audit verb and the resource
/// (`pods`, `statefulsets/status`, ...).
pub type RequestObserver = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub faults: Faults,
    pub observer: RequestObserver,
    /// How often watches asked for bookmarks get one.
    pub bookmark_every: Duration,
    /// Snapshots behind paged lists.
    pub pages: pages::Pages,
}

impl ApiState {
    pub fn new(store: Store, faults: Faults) -> ApiState {
        ApiState {
            store,
            faults,
            observer: Arc::new(|_, _| {}),
            bookmark_every: Duration::from_secs(1),
            pages: pages::Pages::default(),
        }
    }
}

/// The API server: discovery and every resource endpoint.
pub fn router(state: ApiState) -> Router {
    Router::new().fallback(handle).with_state(Arc::new(state))
}

const MAX_BODY: usize = 16 << 20;

/// A parsed resource URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    /// The resource as audit logs and the report name it.
    pub fn resource(&self) -> String {
        match &self.subresource {
            Some(s) => format!("{}/{s}", self.kind.plural()),
            None => self.kind.plural().to_string(),
        }
    }
}

/// Parses `/api/v1/...` and `/apis/<g>/<v>/...` resource paths.
pub fn parse_path(segs: &[&str]) -> Option<Target> {
    let (group, version, rest) = match segs {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let kind = |plural: &str| Kind::from_path(group, version, plural);
    let target = |kind: Kind, ns: Option<&str>, tail: &[&str]| {
        let (name, sub) = match tail {
            [] => (None, None),
            [n] => (Some(n.to_string()), None),
            [n, s] => (Some(n.to_string()), Some(s.to_string())),
            _ => return None,
        };
        Some(Target {
            kind,
            namespace: ns.map(str::to_string),
            name,
            subresource: sub,
        })
    };
    match rest {
        ["namespaces", ns, plural, tail @ ..] if kind(plural).is_some_and(Kind::namespaced) => {
            target(kind(plural)?, Some(ns), tail)
        }
        [plural, tail @ ..] => target(kind(plural)?, None, tail),
        [] => None,
    }
}

/// The audit verb of a request.
fn verb(method: &Method, t: &Target, watch: bool) -> Option<&'static str> {
    Some(match (method.as_str(), t.name.is_some()) {
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    })
}

struct Ctx {
    target: Target,
    query: HashMap<String, String>,
    accept: String,
    content_type: String,
    body: bytes::Bytes,
}

impl Ctx {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.q(k), Some("true" | "1"))
    }
    fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }
    fn ns(&self) -> &str {
        self.target.namespace.as_deref().unwrap_or_default()
    }
    fn wants_table(&self) -> Option<Include> {
        self.accept
            .contains("as=Table")
            .then(|| Include::parse(self.q("includeObject")))
    }
    fn err(&self, e: &ApiError) -> Response {
        response::error(e, Some(self.target.kind), self.target.name.as_deref())
    }
}

async fn handle(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let header = |h: header::HeaderName| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let accept = header(header::ACCEPT);
    if parts.method == Method::GET {
        let host = header(header::HOST);
        let served = || crate::crd::served_kinds(&st.store);
        let schema = |kind| custom_schema(&st, kind);
        if let Some(doc) = crate::discovery::document(&segs, &accept, &host, &served, &schema) {
            return response::json_typed(200, &doc.body, doc.content_type);
        }
    }
    // A custom resource's URLs exist only while its CRD does.
    let Some(target) = parse_path(&segs).filter(|t| crate::crd::served(&st.store, t.kind)) else {
        return response::error(
            &ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
            None,
            None,
        );
    };
    let query: HashMap<String, String> =
        axum::extract::Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map(|q| q.0)
            .unwrap_or_default();
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let Some(verb) = verb(&parts.method, &target, watch) else {
        return response::error(
            &ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ),
            Some(target.kind),
            target.name.as_deref(),
        );
    };
    let resource = target.resource();
    (st.observer)(verb, &resource);
    let verdict = st.faults.judge(verb, &resource);
    if !verdict.delay.is_zero() {
        tokio::time::sleep(verdict.delay).await;
    }
    if let Some(e) = verdict.error {
        return response::injected(e.code, e.retry_after_seconds);
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return response::error(
                &ApiError::new(413, "RequestEntityTooLarge", "request entity too large"),
                None,
                None,
            );
        }
    };
    let ctx = Ctx {
        target,
        query,
        accept,
        content_type: header(header::CONTENT_TYPE),
        body,
    };
    if ctx.target.subresource.as_deref() == Some("scale") && ctx.target.kind == Kind::StatefulSet {
        let result = match verb {
            "get" => scale::get(&st.store, ctx.ns(), ctx.name()),
            "update" => serde_json::from_slice(&ctx.body)
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "the body of the request could not be decoded: {e}"
                    ))
                })
                .and_then(|v| {
                    scale::write(&st.store, ctx.ns(), ctx.name(), scale::Write::Replace(v))
                }),
            "patch" => PatchType::from_content_type(&ctx.content_type)
                .ok_or_else(|| ApiError::new(415, "UnsupportedMediaType", "unsupported patch type"))
                .and_then(|pt| {
                    let w = scale::Write::Patch(pt, ctx.body.clone());
                    scale::write(&st.store, ctx.ns(), ctx.name(), w)
                }),
            _ => Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )),
        };
        return match result {
            Ok(v) => response::json(200, &v),
            Err(e) => ctx.err(&e),
        };
    }
    if let Some(sub) = &ctx.target.subresource
        && !(sub == "status" && ctx.target.kind.has_status_subresource())
    {
        return ctx.err(&ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let result = match verb {
        "get" => {
            return match get(&st, &ctx) {
                Ok(resp) => resp,
                Err(e) => ctx.err(&e),
            };
        }
        "list" => {
            return match list(&st, &ctx) {
                Ok(resp) => resp,
                Err(e) => ctx.err(&e),
            };
        }
        "watch" => return start_watch(&st, &ctx),
        "create" => create(&st, &ctx),
        "update" => update(&st, &ctx),
        "patch" => patch(&st, &ctx),
        "delete" => delete(&st, &ctx),
        _ => delete_collection(&st, &ctx),
    };
    match result {
        Ok((code, body)) => response::json(code, &body),
        Err(e) => ctx.err(&e),
    }
}

/// A status code and the body; stored objects are served as they are shared, without a copy.
type Reply = Result<(u16, Arc<Value>), ApiError>;

fn get(st: &ApiState, ctx: &Ctx) -> Result<Response, ApiError> {
    let (obj, encoded) = st
        .store
        .get_encoded(ctx.target.kind, ctx.ns(), ctx.name())
        .ok_or_else(|| ApiError::not_found(ctx.target.kind, ctx.name()))?;
    Ok(match ctx.wants_table() {
        Some(inc) => {
            let printer = table::Printer::of(&st.store, ctx.target.kind);
            response::json(200, &table::table(&printer, &[obj], None, inc, true))
        }
        None => response::encoded(200, encoded.get(&obj)),
    })
}

fn selectors(ctx: &Ctx) -> Result<(Selector, FieldSelector), ApiError> {
    let labels = selector::parse(ctx.q("labelSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
    let fields = FieldSelector::parse(ctx.q("fieldSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
    Ok((labels, fields))
}

fn selected(st: &ApiState, ctx: &Ctx) -> Result<(Vec<Stored>, u64), ApiError> {
    let (labels, fields) = selectors(ctx)?;
    let (items, rv) = st
        .store
        .list_encoded(ctx.target.kind, ctx.target.namespace.as_deref());
    let items = items
        .into_iter()
        .filter(|(o, _)| selector::matches_object(&labels, o) && fields.matches(o))
        .collect();
    Ok((items, rv))
}

fn list(st: &ApiState, ctx: &Ctx) -> Result<Response, ApiError> {
    let limit = ctx
        .q("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    // Every page of a paged list comes from the first page's snapshot.
    let page = match ctx.q("continue").filter(|c| !c.is_empty()) {
        Some(token) => st.pages.next(token, limit)?,
        None => {
            let (items, rv) = selected(st, ctx)?;
            st.pages.first(items, rv, limit)
        }
    };
    let pages::Page { items, rv, next } = page;
    if let Some(inc) = ctx.wants_table() {
        let objects: Vec<&Value> = items.iter().map(|(o, _)| &**o).collect();
        let printer = table::Printer::of(&st.store, ctx.target.kind);
        let mut t = table::table(&printer, &objects, Some(rv), inc, true);
        if let Some(c) = next {
            t["metadata"]["continue"] = json!(c);
        }
        return Ok(response::json(200, &t));
    }
    let kind = ctx.target.kind;
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = next {
        metadata["continue"] = json!(c);
    }
    Ok(response::list(kind, &metadata, &items))
}

fn start_watch(st: &ApiState, ctx: &Ctx) -> Response {
    let (labels, fields) = match selectors(ctx) {
        Ok(s) => s,
        Err(e) => return ctx.err(&e),
    };
    let resource_version = match ctx.q("resourceVersion").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return ctx.err(&ApiError::bad_request(format!(
                    "invalid resource version {v:?}"
                )));
            }
        },
    };
    let opts = watch::WatchOptions {
        kind: ctx.target.kind,
        namespace: ctx.target.namespace.clone(),
        labels,
        fields,
        resource_version,
        bookmarks: ctx.flag("allowWatchBookmarks"),
        send_initial_events: ctx.flag("sendInitialEvents"),
        timeout: ctx
            .q("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs),
        bookmark_every: st.bookmark_every,
        table: ctx
            .wants_table()
            .map(|inc| (table::Printer::of(&st.store, ctx.target.kind), inc)),
        cut_after: st.faults.watch_cut_after(),
    };
    watch::serve(&st.store, opts)
}

/// The request body as a JSON object (kubectl and kube-rs send JSON).
fn body_object(ctx: &Ctx) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(&ctx.body).map_err(|e| {
        ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be an object",
        ));
    }
    let kind = ctx.target.kind;
    if let Some(k) = v.get("kind").and_then(Value::as_str)
        && k != kind.kind_name()
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({k}) does not match the resource {}",
            kind.plural()
        )));
    }
    if let Some(ns) = v["metadata"]["namespace"].as_str()
        && kind.namespaced()
        && !ns.is_empty()
        && ns != ctx.ns()
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(v)
}

fn strict(ctx: &Ctx) -> bool {
    ctx.q("fieldValidation") == Some("Strict")
}

fn dry_run(ctx: &Ctx) -> bool {
    ctx.q("dryRun") == Some("All")
}

/// What a fresh object looks like after the create strategy: status is the
/// server's to set.
fn prepare_for_create(kind: Kind, obj: &mut Value) {
    match kind {
        Kind::StatefulSet => {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        Kind::Pod => obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"}),
        Kind::Namespace => obj["status"] = json!({"phase": "Active"}),
        Kind::CustomResourceDefinition => {
            obj["status"] = crate::crd::accepted_status(obj, &now_rfc3339());
        }
        Kind::UpgradePlan => {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        _ => {}
    }
}

fn create(st: &ApiState, ctx: &Ctx) -> Reply {
    let kind = ctx.target.kind;
    let mut obj = body_object(ctx)?;
    if kind.namespaced() && st.store.get(Kind::Namespace, "", ctx.ns()).is_none() {
        return Err(ApiError::not_found(Kind::Namespace, ctx.ns()));
    }
    prepare_for_create(kind, &mut obj);
    let custom = custom_schema(st, kind);
    check_fields(kind, strict(ctx), custom.as_ref(), &mut obj)?;
    check_custom(kind, custom.as_ref(), &mut obj)?;
    if dry_run(ctx) {
        crate::admission::default(kind, &mut obj);
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        crate::admission::validate(kind, &name, None, &obj)?;
        return Ok((201, Arc::new(obj)));
    }
    let created = st.store.create(kind, ctx.ns(), obj)?;
    Ok((201, created))
}

/// Copies into `target` what a write through `sub` may not change:
/// the status through the main resource, everything else through `/status`.
fn keep_other_half(kind: Kind, sub: Option<&str>, old: &Value, target: &mut Value) {
    match sub {
        Some("status") => {
            let status = target.get("status").cloned();
            *target = old.clone();
            match status {
                Some(s) => target["status"] = s,
                None => {
                    if let Some(m) = target.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        _ if kind.has_status_subresource() => match old.get("status") {
            Some(s) => target["status"] = s.clone(),
            None => {
                if let Some(m) = target.as_object_mut() {
                    m.remove("status");
                }
            }
        },
        _ => {}
    }
}

fn resource_version_of(o: &Value) -> Option<&str> {
    o["metadata"]["resourceVersion"]
        .as_str()
        .filter(|v| !v.is_empty())
}

/// Kinds whose strategy refuses updates without a resourceVersion.
fn needs_resource_version(kind: Kind) -> bool {
    matches!(kind, Kind::StatefulSet)
}

fn update(st: &ApiState, ctx: &Ctx) -> Reply {
    let kind = ctx.target.kind;
    let obj = body_object(ctx)?;
    if let Some(n) = obj["metadata"]["name"].as_str()
        && n != ctx.name()
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({})",
            ctx.name()
        )));
    }
    let sent_rv = resource_version_of(&obj).map(str::to_string);
    if sent_rv.is_none() && needs_resource_version(kind) {
        return Err(ApiError::invalid(
            kind,
            ctx.name(),
            &[
                "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
                    .into(),
            ],
        ));
    }
    let sub = ctx.target.subresource.clone();
    let name = ctx.name().to_string();
    let dry = dry_run(ctx);
    let strict = strict(ctx);
    let custom = custom_schema(st, kind);
    let apply = move |cur: &mut Value| -> Result<(), ApiError> {
        if let Some(rv) = &sent_rv
            && resource_version_of(cur) != Some(rv.as_str())
        {
            return Err(ApiError::conflict(kind, &name));
        }
        let mut new = obj;
        check_fields(kind, strict, custom.as_ref(), &mut new)?;
        keep_other_half(kind, sub.as_deref(), cur, &mut new);
        check_custom(kind, custom.as_ref(), &mut new)?;
        *cur = new;
        Ok(())
    };
    write(st, ctx, dry, apply)
}

fn patch(st: &ApiState, ctx: &Ctx) -> Reply {
    let kind = ctx.target.kind;
    let pt = PatchType::from_content_type(&ctx.content_type).ok_or_else(|| {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )
    })?;
    if pt == PatchType::Strategic && kind == Kind::StatefulSet {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        ));
    }
    if pt == PatchType::Apply && ctx.q("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "PATCH requests with apply-patch+yaml require fieldManager",
        ));
    }
    let exists = st.store.get(kind, ctx.ns(), ctx.name()).is_some();
    if !exists {
        if pt == PatchType::Apply && ctx.target.subresource.is_none() {
            let mut obj = patch::parse_apply(&ctx.body)?;
            if let Some(n) = obj["metadata"]["name"].as_str()
                && n != ctx.name()
            {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            obj["metadata"]["name"] = json!(ctx.name());
            if kind.namespaced() && st.store.get(Kind::Namespace, "", ctx.ns()).is_none() {
                return Err(ApiError::not_found(Kind::Namespace, ctx.ns()));
            }
            prepare_for_create(kind, &mut obj);
            let custom = custom_schema(st, kind);
            check_fields(kind, strict(ctx), custom.as_ref(), &mut obj)?;
            check_custom(kind, custom.as_ref(), &mut obj)?;
            return Ok((201, st.store.create(kind, ctx.ns(), obj)?));
        }
        return Err(ApiError::not_found(kind, ctx.name()));
    }
    let sub = ctx.target.subresource.clone();
    let name = ctx.name().to_string();
    let body = ctx.body.clone();
    let strict = strict(ctx);
    let custom = custom_schema(st, kind);
    let apply = move |cur: &mut Value| -> Result<(), ApiError> {
        let before = cur.clone();
        let mut new = cur.clone();
        patch::apply(pt, &mut new, &body)?;
        check_fields(kind, strict, custom.as_ref(), &mut new)?;
        // A resourceVersion in the patch is a precondition.
        if resource_version_of(&new) != resource_version_of(&before) {
            return Err(ApiError::conflict(kind, &name));
        }
        if new["metadata"]["name"] != before["metadata"]["name"] {
            return Err(ApiError::bad_request(
                "metadata.name cannot be changed by a patch",
            ));
        }
        keep_other_half(kind, sub.as_deref(), &before, &mut new);
        check_custom(kind, custom.as_ref(), &mut new)?;
        *cur = new;
        Ok(())
    };
    write(st, ctx, dry_run(ctx), apply)
}

/// Applies an update or a patch to the named object: stored, or with `dry` only computed
/// from what is stored and answered.
fn write(
    st: &ApiState,
    ctx: &Ctx,
    dry: bool,
    apply: impl FnOnce(&mut Value) -> Result<(), ApiError>,
) -> Reply {
    let kind = ctx.target.kind;
    if dry {
        let mut cur = st
            .store
            .get(kind, ctx.ns(), ctx.name())
            .ok_or_else(|| ApiError::not_found(kind, ctx.name()))?;
        apply(&mut cur)?;
        return Ok((200, Arc::new(cur)));
    }
    Ok((200, st.store.modify(kind, ctx.ns(), ctx.name(), apply)?))
}

fn delete(st: &ApiState, ctx: &Ctx) -> Reply {
    let kind = ctx.target.kind;
    let opts: Value = if ctx.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&ctx.body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let cur = st
        .store
        .get_shared(kind, ctx.ns(), ctx.name())
        .ok_or_else(|| ApiError::not_found(kind, ctx.name()))?;
    let pre = &opts["preconditions"];
    let uid_ok = pre["uid"]
        .as_str()
        .is_none_or(|u| cur["metadata"]["uid"] == u);
    let rv_ok = pre["resourceVersion"]
        .as_str()
        .is_none_or(|v| resource_version_of(&cur) == Some(v));
    if !uid_ok || !rv_ok {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": precondition failed",
                crate::store::qualified(kind),
                ctx.name()
            ),
        ));
    }
    if dry_run(ctx) {
        return Ok((200, cur));
    }
    let has_finalizers = cur["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if has_finalizers {
        let obj = st.store.modify(kind, ctx.ns(), ctx.name(), |o| {
            if o["metadata"]["deletionTimestamp"].is_null() {
                o["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            }
            Ok(())
        })?;
        return Ok((200, obj));
    }
    let deleted = st.store.delete(kind, ctx.ns(), ctx.name())?;
    if kind == Kind::CustomResourceDefinition {
        crate::crd::remove_instances(&st.store, &deleted);
    }
    Ok((200, deleted))
}

fn delete_collection(st: &ApiState, ctx: &Ctx) -> Reply {
    let kind = ctx.target.kind;
    let (items, _) = selected(st, ctx)?;
    let mut deleted = Vec::new();
    for (o, _) in items {
        let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        // Another writer may have removed it meanwhile; that is fine.
        if let Ok(d) = st.store.delete(kind, ns, name) {
            deleted.push(d);
        }
    }
    let deleted: Vec<&Value> = deleted.iter().map(|d| &**d).collect();
    Ok((
        200,
        Arc::new(json!({
            "kind": format!("{}List", kind.kind_name()), "apiVersion": kind.api_version(),
            "metadata": {"resourceVersion": st.store.resource_version().to_string()},
            "items": deleted
        })),
    ))
}

#[cfg(test)]
mod tests;
