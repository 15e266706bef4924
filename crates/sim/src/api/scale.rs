//! The `/scale` subresource of the Advanced StatefulSet (its CRD declares
//! one), so that `kubectl scale` works: an `autoscaling/v1` `Scale` view of
//! `spec.replicas`, `status.replicas` and `status.labelSelector`.

use serde_json::{Value, json};

use crate::patch::{self, PatchType};
use crate::store::{ApiError, Kind, Store};

/// The `Scale` view of a set.
pub fn view(set: &Value) -> Value {
    let m = &set["metadata"];
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]
        },
        "spec": {"replicas": set["spec"]["replicas"]},
        "status": {"replicas": set["status"]["replicas"].as_u64().unwrap_or(0),
                   "selector": set["status"]["labelSelector"].as_str().unwrap_or_default()}
    })
}

pub fn get(store: &Store, ns: &str, name: &str) -> Result<Value, ApiError> {
    store
        .get(Kind::StatefulSet, ns, name)
        .map(|s| view(&s))
        .ok_or_else(|| ApiError::not_found(Kind::StatefulSet, name))
}

/// How a write reaches the Scale view.
pub enum Write {
    Replace(Value),
    Patch(PatchType, bytes::Bytes),
}

/// Applies a write to the Scale view and carries `spec.replicas` over to the set.
pub fn write(store: &Store, ns: &str, name: &str, w: Write) -> Result<Value, ApiError> {
    let set = store.modify(Kind::StatefulSet, ns, name, |cur| {
        let before = view(cur);
        let after = match w {
            Write::Replace(v) => v,
            Write::Patch(pt, body) => {
                let mut v = before.clone();
                patch::apply(pt, &mut v, &body)?;
                v
            }
        };
        let sent_rv = after["metadata"]["resourceVersion"]
            .as_str()
            .filter(|v| !v.is_empty());
        if sent_rv.is_some_and(|rv| Some(rv) != before["metadata"]["resourceVersion"].as_str()) {
            return Err(ApiError::conflict(Kind::StatefulSet, name));
        }
        match after["spec"]["replicas"].as_i64() {
            Some(r) if r >= 0 => {
                cur["spec"]["replicas"] = json!(r);
                Ok(())
            }
            _ => Err(ApiError::invalid(
                Kind::StatefulSet,
                name,
                &["spec.replicas: Invalid value: must be a non-negative integer".into()],
            )),
        }
    })?;
    Ok(view(&set))
}
