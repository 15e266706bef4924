use super::*;

#[test]
fn paths_parse_into_targets() {
    let t = |kind, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| Target {
        kind,
        namespace: ns.map(Into::into),
        name: name.map(Into::into),
        subresource: sub.map(Into::into),
    };
    let cases = [
        ("/api/v1/pods", Some(t(Kind::Pod, None, None, None))),
        (
            "/api/v1/namespaces/default/pods",
            Some(t(Kind::Pod, Some("default"), None, None)),
        ),
        (
            "/api/v1/namespaces/default/pods/p/status",
            Some(t(Kind::Pod, Some("default"), Some("p"), Some("status"))),
        ),
        (
            "/api/v1/namespaces",
            Some(t(Kind::Namespace, None, None, None)),
        ),
        (
            "/api/v1/namespaces/default",
            Some(t(Kind::Namespace, None, Some("default"), None)),
        ),
        (
            "/api/v1/namespaces/default/status",
            Some(t(Kind::Namespace, None, Some("default"), Some("status"))),
        ),
        (
            "/apis/apps.kruise.io/v1beta1/namespaces/d/statefulsets/s/status",
            Some(t(Kind::StatefulSet, Some("d"), Some("s"), Some("status"))),
        ),
        (
            "/apis/events.k8s.io/v1/namespaces/d/events",
            Some(t(Kind::EventV1, Some("d"), None, None)),
        ),
        (
            "/api/v1/namespaces/d/events",
            Some(t(Kind::Event, Some("d"), None, None)),
        ),
        ("/apis/apps/v1/namespaces/d/statefulsets", None),
        ("/api/v1/bogus", None),
    ];
    for (path, want) in cases {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        assert_eq!(parse_path(&segs), want, "{path}");
    }
}
