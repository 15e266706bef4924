//! API discovery: `/version`, the legacy documents (`/api`, `/api/v1`,
//! `/apis`, `/apis/<group>`, `/apis/<group>/<version>`), aggregated discovery
//! (`apidiscovery.k8s.io/v2`, which kubectl 1.32 asks for first) and an
//! OpenAPI v3 document per group-version.
//!
//! The OpenAPI documents exist for kubectl's sake: `kubectl apply` and
//! `create` look there to see whether the server validates fields itself
//! (the `fieldValidation` parameter on PATCH) and whether a kind accepts
//! strategic merge patches. They advertise JSON, merge and apply patches only,
//! so kubectl falls back to its compiled-in strategic-merge logic for built-in
//! kinds and to merge patches for the Advanced StatefulSet, exactly as against
//! a real cluster. `/openapi/v2` is not served; kubectl copes with its absence.

use serde_json::{Value, json};

use crate::admission::ASTS_SCHEMA;
use crate::store::Kind;

/// The Kubernetes version the simulator claims to be.
pub const VERSION: (&str, &str) = ("1", "32");
const OPENAPI_HASH: &str = "baton-sim-1";

/// One served group-version and its served kinds.
struct GroupVersion {
    group: &'static str,
    version: &'static str,
    kinds: Vec<Kind>,
}

impl GroupVersion {
    fn path(&self) -> String {
        if self.group.is_empty() {
            format!("api/{}", self.version)
        } else {
            format!("apis/{}/{}", self.group, self.version)
        }
    }
    fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        self.kinds.iter().copied()
    }
}

/// The group-versions of the `served` kinds, in the order their first kind comes.
fn group_versions(served: &[Kind]) -> Vec<GroupVersion> {
    let mut out: Vec<GroupVersion> = Vec::new();
    for &k in served {
        match out
            .iter_mut()
            .find(|gv| gv.group == k.group() && gv.version == k.version())
        {
            Some(gv) => gv.kinds.push(k),
            None => out.push(GroupVersion {
                group: k.group(),
                version: k.version(),
                kinds: vec![k],
            }),
        }
    }
    out
}

fn verbs(kind: Kind) -> Value {
    match kind {
        Kind::Namespace => json!([
            "create", "delete", "get", "list", "patch", "update", "watch"
        ]),
        _ => json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ]),
    }
}

fn categories(kind: Kind) -> Value {
    match kind {
        Kind::Pod | Kind::StatefulSet => json!(["all"]),
        Kind::CustomResourceDefinition => json!(["api-extensions"]),
        Kind::UpgradePlan => json!(["baton"]),
        _ => json!([]),
    }
}

/// `kubectl version` / kube-rs `apiserver_version`.
pub fn version() -> Value {
    json!({
        "major": VERSION.0, "minor": VERSION.1,
        "gitVersion": format!("v{}.{}.0-baton-sim", VERSION.0, VERSION.1),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0", "compiler": "gc", "platform": "linux/amd64"
    })
}

/// What a discovery path answers: a body and its content type.
pub struct Doc {
    pub body: Value,
    pub content_type: &'static str,
}

const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn json_doc(body: Value) -> Option<Doc> {
    Some(Doc {
        body,
        content_type: "application/json",
    })
}

/// The discovery or OpenAPI document at `segs` (the path split on `/`), if
/// the path is one. `accept` picks aggregated discovery; `host` is echoed in
/// `serverAddressByClientCIDRs`; `served` says which kinds to list (custom resources only
/// once their CRD is stored, [`crate::crd::served_kinds`]) and `custom_schema` gives a custom
/// resource's schema; both are asked only for a discovery path.
pub fn document(
    segs: &[&str],
    accept: &str,
    host: &str,
    served: &dyn Fn() -> Vec<Kind>,
    custom_schema: &dyn Fn(Kind) -> Option<Value>,
) -> Option<Doc> {
    let group_versions = || group_versions(&served());
    let aggregated = accept.contains("as=APIGroupDiscoveryList") && accept.contains("v=v2;");
    match segs {
        ["version"] => json_doc(version()),
        ["api"] if aggregated => Some(Doc {
            body: aggregated_list(&group_versions(), true),
            content_type: AGGREGATED_V2,
        }),
        ["apis"] if aggregated => Some(Doc {
            body: aggregated_list(&group_versions(), false),
            content_type: AGGREGATED_V2,
        }),
        ["api"] => json_doc(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]
        })),
        ["apis"] => json_doc(json!({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": group_versions().iter().filter(|gv| !gv.group.is_empty()).map(api_group).collect::<Vec<_>>()
        })),
        ["api", "v1"] => group_versions()
            .iter()
            .find(|gv| gv.group.is_empty())
            .and_then(|gv| json_doc(resource_list(gv))),
        ["apis", g] => group_versions()
            .iter()
            .find(|gv| gv.group == *g)
            .and_then(|gv| json_doc(api_group(gv))),
        ["apis", g, v] => group_versions()
            .into_iter()
            .find(|gv| gv.group == *g && gv.version == *v)
            .and_then(|gv| json_doc(resource_list(&gv))),
        ["openapi", "v3"] => json_doc(json!({
            "paths": group_versions().iter().map(|gv| {
                (gv.path(), json!({"serverRelativeURL": format!("/openapi/v3/{}?hash={OPENAPI_HASH}", gv.path())}))
            }).collect::<serde_json::Map<_, _>>()
        })),
        ["openapi", "v3", rest @ ..] => {
            let want = rest.join("/");
            group_versions()
                .into_iter()
                .find(|gv| gv.path() == want)
                .and_then(|gv| json_doc(openapi(&gv, custom_schema)))
        }
        _ => None,
    }
}

fn api_group(gv: &GroupVersion) -> Value {
    let v = json!({"groupVersion": gv.group_version(), "version": gv.version});
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": gv.group, "versions": [v], "preferredVersion": v})
}

fn resource_list(gv: &GroupVersion) -> Value {
    let mut resources = Vec::new();
    for k in gv.kinds() {
        resources.push(json!({
            "name": k.plural(), "singularName": k.singular(), "namespaced": k.namespaced(),
            "kind": k.kind_name(), "verbs": verbs(k), "shortNames": k.short_names(),
            "categories": categories(k)
        }));
        if k.has_status_subresource() {
            resources.push(json!({
                "name": format!("{}/status", k.plural()), "singularName": "", "namespaced": k.namespaced(),
                "kind": k.kind_name(), "verbs": ["get", "patch", "update"]
            }));
        }
    }
    if gv.group == Kind::StatefulSet.group() {
        resources.push(json!({
            "name": "statefulsets/scale", "singularName": "", "namespaced": true,
            "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]
        }));
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv.group_version(), "resources": resources})
}

fn aggregated_list(group_versions: &[GroupVersion], core: bool) -> Value {
    let items: Vec<Value> = group_versions
        .iter()
        .filter(|gv| gv.group.is_empty() == core)
        .map(|gv| {
            let resources: Vec<Value> = gv
                .kinds()
                .map(|k| {
                    let rk = json!({"group": k.group(), "version": k.version(), "kind": k.kind_name()});
                    let mut subresources = if k.has_status_subresource() {
                        json!([{"subresource": "status", "responseKind": rk, "verbs": ["get", "patch", "update"]}])
                    } else {
                        json!([])
                    };
                    if k == Kind::StatefulSet
                        && let Some(list) = subresources.as_array_mut()
                    {
                        list.push(json!({"subresource": "scale",
                            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                            "verbs": ["get", "patch", "update"]}));
                    }
                    json!({
                        "resource": k.plural(), "responseKind": rk,
                        "scope": if k.namespaced() { "Namespaced" } else { "Cluster" },
                        "singularResource": k.singular(), "verbs": verbs(k),
                        "shortNames": k.short_names(), "categories": categories(k),
                        "subresources": subresources
                    })
                })
                .collect();
            json!({
                "metadata": {"name": gv.group, "creationTimestamp": null},
                "versions": [{"version": gv.version, "resources": resources, "freshness": "Current"}]
            })
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// The OpenAPI schema name of a kind, as the apiserver spells it.
fn schema_name(kind: Kind) -> String {
    match kind {
        Kind::StatefulSet => "com.github.openkruise.kruise.apis.apps.v1beta1.StatefulSet".into(),
        Kind::UpgradePlan => "dev.baton.v1alpha1.UpgradePlan".into(),
        Kind::CustomResourceDefinition => {
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
                .into()
        }
        k => {
            let group = match k.group() {
                "" => "core".to_string(),
                g => g.trim_end_matches(".k8s.io").to_string(),
            };
            format!("io.k8s.api.{group}.{}.{}", k.version(), k.kind_name())
        }
    }
}

/// The OpenAPI v3 document of a group-version; a custom resource's schema is its CRD's
/// (`custom_schema`), so `kubectl explain` reads the same text as on a real cluster.
fn openapi(gv: &GroupVersion, custom_schema: &dyn Fn(Kind) -> Option<Value>) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for k in gv.kinds() {
        let gvk = json!({"group": k.group(), "version": k.version(), "kind": k.kind_name()});
        let name = schema_name(k);
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        let mut schema = if k == Kind::StatefulSet {
            ASTS_SCHEMA.clone()
        } else {
            custom_schema(k).unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            )
        };
        if let Some(m) = schema.as_object_mut() {
            m.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
        }
        schemas.insert(name, schema);
        let body = |types: &[&str]| json!({"content": types.iter().map(|t| (t.to_string(), json!({"schema": reference}))).collect::<serde_json::Map<_, _>>()});
        let op = |action: &str, params: &[&str], request: Option<Value>| {
            let mut o = json!({
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params.iter().map(|p| json!({"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": true}})).collect::<Vec<_>>(),
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}}
            });
            if let Some(r) = request {
                o["requestBody"] = r;
            }
            o
        };
        let write_params = ["dryRun", "fieldManager", "fieldValidation"];
        let patch_params = ["dryRun", "fieldManager", "fieldValidation", "force"];
        let prefix = if k.group().is_empty() {
            format!("/api/{}", k.version())
        } else {
            format!("/apis/{}/{}", k.group(), k.version())
        };
        let collection = if k.namespaced() {
            format!("{prefix}/namespaces/{{namespace}}/{}", k.plural())
        } else {
            format!("{prefix}/{}", k.plural())
        };
        let patch_types = [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ];
        let mut item_ops = json!({
            "get": op("get", &[], None),
            "put": op("put", &write_params, Some(body(&["application/json"]))),
            "patch": op("patch", &patch_params, Some(body(&patch_types))),
            "delete": op("delete", &["dryRun"], None),
        });
        paths.insert(
            collection.clone(),
            json!({
                "get": op("list", &["labelSelector", "fieldSelector", "watch", "resourceVersion"], None),
                "post": op("post", &write_params, Some(body(&["application/json"]))),
            }),
        );
        paths.insert(format!("{collection}/{{name}}"), item_ops.take());
        if k.has_status_subresource() {
            paths.insert(
                format!("{collection}/{{name}}/status"),
                json!({
                    "get": op("get", &[], None),
                    "put": op("put", &write_params, Some(body(&["application/json"]))),
                    "patch": op("patch", &patch_params, Some(body(&patch_types))),
                }),
            );
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", VERSION.0, VERSION.1)},
        "paths": paths,
        "components": {"schemas": schemas}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_discoverable_under_its_group_version() {
        for k in Kind::ALL {
            let segs: Vec<&str> = if k.group().is_empty() {
                vec!["api", k.version()]
            } else {
                vec!["apis", k.group(), k.version()]
            };
            let doc = document(
                &segs,
                "application/json",
                "h",
                &|| Kind::ALL.to_vec(),
                &|_| None,
            )
            .unwrap()
            .body;
            let found = doc["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == k.plural() && r["kind"] == k.kind_name());
            assert!(found, "{k:?}");
        }
    }

    #[test]
    fn aggregated_discovery_is_served_only_when_asked_for() {
        let accept =
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        let doc = document(&["apis"], accept, "h", &|| Kind::ALL.to_vec(), &|_| None).unwrap();
        assert_eq!(doc.content_type, AGGREGATED_V2);
        let groups: Vec<&str> = doc.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap())
            .collect();
        assert!(groups.contains(&"apps.kruise.io"));
        assert_eq!(
            document(
                &["apis"],
                "application/json",
                "h",
                &|| Kind::ALL.to_vec(),
                &|_| None
            )
            .unwrap()
            .body["kind"],
            "APIGroupList"
        );
    }

    #[test]
    fn openapi_patch_operations_name_their_kind_and_field_validation() {
        let doc = document(
            &["openapi", "v3", "apis", "apps.kruise.io", "v1beta1"],
            "",
            "h",
            &|| Kind::ALL.to_vec(),
            &|_| None,
        )
        .unwrap()
        .body;
        let patch = &doc["paths"]["/apis/apps.kruise.io/v1beta1/namespaces/{namespace}/statefulsets/{name}"]
            ["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "StatefulSet"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(
            patch["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_none()
        );
    }
}
