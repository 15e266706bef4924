//! The resources the simulator serves: their group, version, names and which of the
//! API server's behaviours (generation, status subresource) apply to them.

/// The resources the simulator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Pod,
    StatefulSet,
    ControllerRevision,
    Lease,
    Event,
    EventV1,
    Namespace,
    ConfigMap,
    /// `apiextensions.k8s.io/v1` CustomResourceDefinition, stored as given.
    CustomResourceDefinition,
    /// `baton.dev/v1alpha1` UpgradePlan: served only once its CRD is stored
    /// ([`crate::crd`]); spec and status are opaque JSON to the simulator.
    UpgradePlan,
}

impl Kind {
    /// Every kind, in a stable order (discovery lists them this way).
    pub const ALL: [Kind; 10] = [
        Kind::Pod,
        Kind::StatefulSet,
        Kind::ControllerRevision,
        Kind::Lease,
        Kind::Event,
        Kind::EventV1,
        Kind::Namespace,
        Kind::ConfigMap,
        Kind::CustomResourceDefinition,
        Kind::UpgradePlan,
    ];

    /// API group; empty for the core group.
    pub fn group(self) -> &'static str {
        match self {
            Kind::Pod | Kind::Event | Kind::Namespace | Kind::ConfigMap => "",
            Kind::StatefulSet => "apps.kruise.io",
            Kind::ControllerRevision => "apps",
            Kind::Lease => "coordination.k8s.io",
            Kind::EventV1 => "events.k8s.io",
            Kind::CustomResourceDefinition => "apiextensions.k8s.io",
            Kind::UpgradePlan => "baton.dev",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Kind::StatefulSet => "v1beta1",
            Kind::UpgradePlan => "v1alpha1",
            _ => "v1",
        }
    }

    /// `apiVersion` as written in objects: `v1` or `group/version`.
    pub fn api_version(self) -> String {
        match self.group() {
            "" => self.version().to_string(),
            g => format!("{g}/{}", self.version()),
        }
    }

    /// The `kind` field of objects.
    pub fn kind_name(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::StatefulSet => "StatefulSet",
            Kind::ControllerRevision => "ControllerRevision",
            Kind::Lease => "Lease",
            Kind::Event | Kind::EventV1 => "Event",
            Kind::Namespace => "Namespace",
            Kind::ConfigMap => "ConfigMap",
            Kind::CustomResourceDefinition => "CustomResourceDefinition",
            Kind::UpgradePlan => "UpgradePlan",
        }
    }

    /// The resource name in URLs (lowercase plural).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::StatefulSet => "statefulsets",
            Kind::ControllerRevision => "controllerrevisions",
            Kind::Lease => "leases",
            Kind::Event | Kind::EventV1 => "events",
            Kind::Namespace => "namespaces",
            Kind::ConfigMap => "configmaps",
            Kind::CustomResourceDefinition => "customresourcedefinitions",
            Kind::UpgradePlan => "upgradeplans",
        }
    }

    pub fn singular(self) -> &'static str {
        match self {
            Kind::Pod => "pod",
            Kind::StatefulSet => "statefulset",
            Kind::ControllerRevision => "controllerrevision",
            Kind::Lease => "lease",
            Kind::Event | Kind::EventV1 => "event",
            Kind::Namespace => "namespace",
            Kind::ConfigMap => "configmap",
            Kind::CustomResourceDefinition => "customresourcedefinition",
            Kind::UpgradePlan => "upgradeplan",
        }
    }

    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Pod => &["po"],
            Kind::StatefulSet => &["asts"],
            Kind::Event | Kind::EventV1 => &["ev"],
            Kind::Namespace => &["ns"],
            Kind::ConfigMap => &["cm"],
            Kind::CustomResourceDefinition => &["crd", "crds"],
            Kind::UpgradePlan => &["bup"],
            Kind::ControllerRevision | Kind::Lease => &[],
        }
    }

    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::CustomResourceDefinition)
    }

    /// Kinds whose `.spec` changes bump `metadata.generation`.
    pub fn has_generation(self) -> bool {
        matches!(
            self,
            Kind::Pod | Kind::StatefulSet | Kind::CustomResourceDefinition | Kind::UpgradePlan
        )
    }

    /// Kinds served with a `/status` subresource; their main endpoint ignores
    /// `.status` and `/status` ignores everything else.
    pub fn has_status_subresource(self) -> bool {
        matches!(
            self,
            Kind::StatefulSet
                | Kind::Pod
                | Kind::Namespace
                | Kind::CustomResourceDefinition
                | Kind::UpgradePlan
        )
    }

    /// The kind served at `group/version` under `plural`, if any.
    pub fn from_path(group: &str, version: &str, plural: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.group() == group && k.version() == version && k.plural() == plural)
    }
}
