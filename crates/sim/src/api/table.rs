//! Server-side printing: `meta.k8s.io/v1` `Table` responses, which `kubectl
//! get` asks for (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`).
//! Columns follow the real printers: pods like kubectl's pod printer, the
//! Advanced StatefulSet like its CRD's `additionalPrinterColumns`, and a custom resource
//! served from a stored CRD (the UpgradePlan) by that CRD's columns ([`Printer::Custom`]).

use serde_json::{Value, json};

use crate::store::Kind;

struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    priority: u8,
}

const fn col(name: &'static str, ty: &'static str, format: &'static str, priority: u8) -> Column {
    Column {
        name,
        ty,
        format,
        priority,
    }
}

fn columns(kind: Kind) -> Vec<Column> {
    match kind {
        Kind::Pod => vec![
            col("Name", "string", "name", 0),
            col("Ready", "string", "", 0),
            col("Status", "string", "", 0),
            col("Restarts", "string", "", 0),
            col("Age", "string", "", 0),
            col("IP", "string", "", 1),
            col("Node", "string", "", 1),
            col("Nominated Node", "string", "", 1),
            col("Readiness Gates", "string", "", 1),
        ],
        Kind::StatefulSet => vec![
            col("Name", "string", "name", 0),
            col("DESIRED", "integer", "", 0),
            col("CURRENT", "integer", "", 0),
            col("UPDATED", "integer", "", 0),
            col("READY", "integer", "", 0),
            col("AGE", "date", "", 0),
            col("CONTAINERS", "string", "", 1),
            col("IMAGES", "string", "", 1),
        ],
        Kind::Namespace => vec![
            col("Name", "string", "name", 0),
            col("Status", "string", "", 0),
            col("Age", "string", "", 0),
        ],
        Kind::Lease => vec![
            col("Name", "string", "name", 0),
            col("Holder", "string", "", 0),
            col("Age", "string", "", 0),
        ],
        Kind::Event | Kind::EventV1 => vec![
            col("Last Seen", "string", "", 0),
            col("Type", "string", "", 0),
            col("Reason", "string", "", 0),
            col("Object", "string", "", 0),
            col("Message", "string", "", 0),
        ],
        Kind::ControllerRevision => vec![
            col("Name", "string", "name", 0),
            col("Controller", "string", "", 0),
            col("Revision", "integer", "", 0),
            col("Age", "string", "", 0),
        ],
        Kind::ConfigMap => vec![
            col("Name", "string", "name", 0),
            col("Data", "string", "", 0),
            col("Age", "string", "", 0),
        ],
        Kind::CustomResourceDefinition => vec![
            col("Name", "string", "name", 0),
            col("Created At", "date", "", 0),
        ],
        // A custom resource whose CRD declares no columns.
        Kind::UpgradePlan => vec![col("Name", "string", "name", 0), col("Age", "date", "", 0)],
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn non_empty(v: String, default: &str) -> String {
    if v.is_empty() { default.to_string() } else { v }
}

fn or_none(v: &Value) -> Value {
    match v {
        Value::String(s) if !s.is_empty() => v.clone(),
        _ => json!("<none>"),
    }
}

fn cells(kind: Kind, o: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let created = json!(age(&o["metadata"]["creationTimestamp"], now));
    let name = o["metadata"]["name"].clone();
    match kind {
        Kind::Pod => {
            let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let statuses = o["status"]["containerStatuses"].as_array();
            let ready = statuses.map_or(0, |cs| cs.iter().filter(|c| c["ready"] == true).count());
            let restarts: i64 = statuses.map_or(0, |cs| {
                cs.iter().filter_map(|c| c["restartCount"].as_i64()).sum()
            });
            let status = if !o["metadata"]["deletionTimestamp"].is_null() {
                "Terminating".to_string()
            } else {
                non_empty(
                    s(&o["status"]["reason"]),
                    &non_empty(s(&o["status"]["phase"]), "Pending"),
                )
            };
            let gates = o["spec"]["readinessGates"].as_array().map(|gs| {
                let conds = o["status"]["conditions"].as_array();
                let ok = gs
                    .iter()
                    .filter(|g| {
                        conds.is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
                        })
                    })
                    .count();
                format!("{ok}/{}", gs.len())
            });
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                created,
                or_none(&o["status"]["podIP"]),
                or_none(&o["spec"]["nodeName"]),
                json!("<none>"),
                json!(gates.unwrap_or_else(|| "<none>".into())),
            ]
        }
        Kind::StatefulSet => {
            let containers = o["spec"]["template"]["spec"]["containers"].as_array();
            let join = |field: &str| {
                containers.map_or(String::new(), |cs| {
                    cs.iter()
                        .map(|c| s(&c[field]))
                        .collect::<Vec<_>>()
                        .join(",")
                })
            };
            vec![
                name,
                o["spec"]["replicas"].clone(),
                o["status"]["replicas"].clone(),
                o["status"]["updatedReplicas"].clone(),
                o["status"]["readyReplicas"].clone(),
                created,
                json!(join("name")),
                json!(join("image")),
            ]
        }
        Kind::Namespace => vec![
            name,
            json!(non_empty(s(&o["status"]["phase"]), "Active")),
            created,
        ],
        Kind::Lease => vec![name, or_none(&o["spec"]["holderIdentity"]), created],
        Kind::Event | Kind::EventV1 => {
            let (object, message) = if kind == Kind::Event {
                (&o["involvedObject"], &o["message"])
            } else {
                (&o["regarding"], &o["note"])
            };
            let seen = [
                &o["lastTimestamp"],
                &o["eventTime"],
                &o["metadata"]["creationTimestamp"],
            ]
            .into_iter()
            .find(|t| t.is_string())
            .cloned()
            .unwrap_or(Value::Null);
            vec![
                json!(age(&seen, now)),
                o["type"].clone(),
                o["reason"].clone(),
                json!(format!(
                    "{}/{}",
                    s(&object["kind"]).to_lowercase(),
                    s(&object["name"])
                )),
                message.clone(),
            ]
        }
        Kind::ControllerRevision => {
            let owner = o["metadata"]["ownerReferences"]
                .as_array()
                .and_then(|os| os.first())
                .map_or_else(
                    || "<none>".to_string(),
                    |r| format!("{}/{}", s(&r["kind"]).to_lowercase(), s(&r["name"])),
                );
            vec![name, json!(owner), o["revision"].clone(), created]
        }
        Kind::ConfigMap => {
            let count = |field: &str| o[field].as_object().map_or(0, serde_json::Map::len);
            let data = count("data") + count("binaryData");
            vec![name, json!(data.to_string()), created]
        }
        Kind::CustomResourceDefinition => vec![name, o["metadata"]["creationTimestamp"].clone()],
        Kind::UpgradePlan => vec![name, created],
    }
}

/// Which columns a Table has.
#[derive(Clone, Debug)]
pub enum Printer {
    /// The columns the API server has compiled in for the kind.
    Builtin(Kind),
    /// A custom resource's: `Name`, then its CRD's `additionalPrinterColumns` (or `Age`
    /// when it declares none), as the apiextensions API server prints them.
    Custom(Vec<CustomColumn>),
}

/// One `additionalPrinterColumns` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomColumn {
    pub name: String,
    pub ty: String,
    pub format: String,
    pub description: String,
    pub priority: u64,
    /// `.status.phase` as `["status", "phase"]`: the simple JSONPath CRDs allow.
    pub path: Vec<String>,
}

impl Printer {
    /// The printer of `kind`: its CRD's columns for a custom resource served from one.
    pub fn of(store: &crate::store::Store, kind: Kind) -> Printer {
        match crate::crd::definition(store, kind) {
            Some(crd) => {
                let declared = crate::crd::printer_columns(&crd, kind);
                let columns = if declared.is_empty() {
                    vec![
                        json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
                    ]
                } else {
                    declared
                };
                Printer::Custom(columns.iter().map(CustomColumn::from_crd).collect())
            }
            None => Printer::Builtin(kind),
        }
    }

    fn definitions(&self) -> Vec<Value> {
        let def = |name: &str, ty: &str, format: &str, description: &str, priority: u64| json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority});
        match self {
            Printer::Builtin(kind) => columns(*kind)
                .iter()
                .map(|c| def(c.name, c.ty, c.format, "", u64::from(c.priority)))
                .collect(),
            Printer::Custom(custom) => {
                let name = def(
                    "Name",
                    "string",
                    "name",
                    "Name must be unique within a namespace.",
                    0,
                );
                std::iter::once(name)
                    .chain(
                        custom
                            .iter()
                            .map(|c| def(&c.name, &c.ty, &c.format, &c.description, c.priority)),
                    )
                    .collect()
            }
        }
    }

    fn cells(&self, o: &Value, now: jiff::Timestamp) -> Vec<Value> {
        match self {
            Printer::Builtin(kind) => cells(*kind, o, now),
            Printer::Custom(custom) => std::iter::once(o["metadata"]["name"].clone())
                .chain(custom.iter().map(|c| c.cell(o, now)))
                .collect(),
        }
    }
}

impl CustomColumn {
    fn from_crd(column: &Value) -> CustomColumn {
        let text = |field: &str| column[field].as_str().unwrap_or_default().to_string();
        CustomColumn {
            name: text("name"),
            ty: text("type"),
            format: text("format"),
            description: text("description"),
            priority: column["priority"].as_u64().unwrap_or(0),
            path: text("jsonPath")
                .split('.')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// The value at the column's path: `null` when absent (kubectl prints `<none>`), a
    /// `date` as an age, anything else as found.
    fn cell(&self, o: &Value, now: jiff::Timestamp) -> Value {
        let value = self.path.iter().try_fold(o, |v, key| v.get(key));
        match value {
            None | Some(Value::Null) => Value::Null,
            Some(v) if self.ty == "date" => json!(age(v, now)),
            Some(v) if self.ty == "string" => json!(s(v)),
            Some(v) => v.clone(),
        }
    }
}

/// How long ago `ts` was, the way kubectl prints ages (`5s`, `3m2s`, `4h`, `2d`).
pub fn age(ts: &Value, now: jiff::Timestamp) -> String {
    let Some(t) = ts.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = (now.as_second() - t.as_second()).max(0);
    match secs {
        0..120 => format!("{secs}s"),
        120..600 => format!("{}m{}s", secs / 60, secs % 60),
        600..10800 => format!("{}m", secs / 60),
        10800..172800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// Which object a row carries (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(s: Option<&str>) -> Include {
        match s {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

fn row(printer: &Printer, o: &Value, include: Include, now: jiff::Timestamp) -> Value {
    let object = match include {
        Include::None => Value::Null,
        Include::Object => o.clone(),
        Include::Metadata => json!({
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]
        }),
    };
    json!({"cells": printer.cells(o, now), "object": object})
}

/// A Table of `items`; `columns` false leaves out the column definitions
/// (watch events after the first).
pub fn table(
    printer: &Printer,
    items: &[impl std::borrow::Borrow<Value>],
    rv: Option<u64>,
    include: Include,
    with_columns: bool,
) -> Value {
    let now = jiff::Timestamp::now();
    let defs: Vec<Value> = if with_columns {
        printer.definitions()
    } else {
        vec![]
    };
    let mut metadata = json!({});
    if let Some(rv) = rv {
        metadata["resourceVersion"] = json!(rv.to_string());
    }
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
        "columnDefinitions": defs,
        "rows": items.iter().map(|o| row(printer, o.borrow(), include, now)).collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_print_like_kubectl() {
        let now: jiff::Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        for (ts, want) in [
            ("2026-01-01T11:59:55Z", "5s"),
            ("2026-01-01T11:57:00Z", "3m0s"),
            ("2026-01-01T11:00:00Z", "60m"),
            ("2026-01-01T00:00:00Z", "12h"),
            ("2025-12-25T12:00:00Z", "7d"),
        ] {
            assert_eq!(age(&json!(ts), now), want, "{ts}");
        }
        assert_eq!(age(&Value::Null, now), "<unknown>");
    }

    #[test]
    fn pod_rows_count_ready_containers_and_gates() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "readinessGates": [{"conditionType": "InPlaceUpdateReady"}]},
            "status": {"phase": "Running", "containerStatuses": [{"ready": true, "restartCount": 1}, {"ready": false, "restartCount": 2}],
                       "conditions": [{"type": "InPlaceUpdateReady", "status": "True"}]}
        });
        let t = table(
            &Printer::Builtin(Kind::Pod),
            &[pod],
            Some(7),
            Include::Metadata,
            true,
        );
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], "3");
        assert_eq!(cells[8], "1/1");
        assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "p");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn custom_resources_print_their_crd_columns() {
        let columns = [
            json!({"name": "Phase", "type": "string", "jsonPath": ".status.phase"}),
            json!({"name": "Wave", "type": "integer", "jsonPath": ".status.wave", "description": "w"}),
            json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
        ];
        let printer = Printer::Custom(columns.iter().map(CustomColumn::from_crd).collect());
        let plan = json!({"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
                          "status": {"wave": 2}});
        let t = table(&printer, &[plan], None, Include::None, true);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Phase", "Wave", "Age"]);
        assert_eq!(t["columnDefinitions"][2]["type"], "integer");
        let cells = t["rows"][0]["cells"].as_array().unwrap();
        assert_eq!(cells[..3], [json!("p"), Value::Null, json!(2)]);
        assert!(cells[3].as_str().unwrap().ends_with('d'), "{cells:?}");
    }
}
