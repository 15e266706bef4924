//! Naming a request the way the apiserver's audit log does (verb and
//! resource), from its method, path and query alone, so fault rules written
//! for the simulator select the same requests here.

use http::Method;

/// The audit verb and resource of a request, and whether it is a watch that
/// resumes from a `resourceVersion`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Audit {
    pub verb: String,
    /// `pods`, `statefulsets/status`; for a path that names no resource
    /// (`/version`, `/apis`, `/openapi/v2`) the path itself.
    pub resource: String,
    /// A watch with a `resourceVersion` other than `""` or `"0"`.
    pub resumes: bool,
}

/// Subresources of a namespace, which look like namespaced resources in a path.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

pub(crate) fn audit(method: &Method, path: &str, query: Option<&str>) -> Audit {
    let param = |key: &str| {
        query
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let rest = match parts.as_slice() {
        ["api", _version, rest @ ..] | ["apis", _, _version, rest @ ..] if !rest.is_empty() => rest,
        _ => {
            return Audit {
                verb: method.as_str().to_ascii_lowercase(),
                resource: path.to_string(),
                resumes: false,
            };
        }
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..]
            if !tail.is_empty() && !NAMESPACE_SUBRESOURCES.contains(&tail[0]) =>
        {
            tail
        }
        _ => rest,
    };
    let (resource, named) = match rest {
        [plural] => (plural.to_string(), false),
        [plural, _name] => (plural.to_string(), true),
        [plural, _name, sub, ..] => (format!("{plural}/{sub}"), true),
        [] => (String::new(), false),
    };
    let watch = legacy_watch || matches!(param("watch"), Some("true" | "1"));
    let verb = match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => {
            return Audit {
                verb: method.as_str().to_ascii_lowercase(),
                resource,
                resumes: false,
            };
        }
    };
    Audit {
        verb: verb.to_string(),
        resource,
        resumes: watch && param("resourceVersion").is_some_and(|rv| !rv.is_empty() && rv != "0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_like_the_audit_log() {
        let cases = [
            (
                "GET",
                "/api/v1/namespaces/default/pods",
                None,
                "list",
                "pods",
                false,
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods/p-0",
                None,
                "get",
                "pods",
                false,
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods",
                Some("watch=true&resourceVersion=12"),
                "watch",
                "pods",
                true,
            ),
            (
                "GET",
                "/api/v1/pods",
                Some("watch=1&resourceVersion=0"),
                "watch",
                "pods",
                false,
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/default/pods",
                None,
                "watch",
                "pods",
                false,
            ),
            (
                "PUT",
                "/apis/apps.kruise.io/v1beta1/namespaces/ns/statefulsets/s/status",
                None,
                "update",
                "statefulsets/status",
                false,
            ),
            (
                "PATCH",
                "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l",
                None,
                "patch",
                "leases",
                false,
            ),
            (
                "POST",
                "/api/v1/namespaces/ns/pods/p/binding",
                None,
                "create",
                "pods/binding",
                false,
            ),
            (
                "POST",
                "/api/v1/namespaces",
                None,
                "create",
                "namespaces",
                false,
            ),
            (
                "GET",
                "/api/v1/namespaces/ns",
                None,
                "get",
                "namespaces",
                false,
            ),
            (
                "PUT",
                "/api/v1/namespaces/ns/status",
                None,
                "update",
                "namespaces/status",
                false,
            ),
            (
                "DELETE",
                "/api/v1/namespaces/ns/events",
                None,
                "deletecollection",
                "events",
                false,
            ),
            (
                "DELETE",
                "/api/v1/namespaces/ns/events/e",
                None,
                "delete",
                "events",
                false,
            ),
            ("GET", "/version", None, "get", "/version", false),
            ("GET", "/apis/apps/v1", None, "get", "/apis/apps/v1", false),
        ];
        for (method, path, query, verb, resource, resumes) in cases {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let got = audit(&method, path, query);
            assert_eq!(
                (got.verb.as_str(), got.resource.as_str(), got.resumes),
                (verb, resource, resumes),
                "{method} {path}?{query:?}"
            );
        }
    }
}
