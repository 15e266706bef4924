//! ControllerRevisions of the pod template (`getStatefulSetRevisions`).
//!
//! Like Kruise, a revision stores only `spec.template` (as a `$patch: replace` patch), is named
//! `<set>-<hash>`, and the hash is FNV-1 (32 bit) over the revision data serialised with sorted
//! keys plus the collision count, encoded with the Kubernetes "safe" alphabet. A template equal
//! to an older revision reuses that revision (rollback) and bumps its `revision` number.

use serde_json::{Value, json};

use super::REVISION_HASH_LABEL;
use super::pod::owner_reference;
use super::types::Asts;

/// One stored ControllerRevision of a set.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub name: String,
    pub number: i64,
    /// The pod template it records (without the `$patch` marker).
    pub template: Value,
}

impl Revision {
    /// Reads a stored ControllerRevision; `None` when it holds no template.
    pub fn from_value(v: &Value) -> Option<Revision> {
        let mut template = v["data"]["spec"]["template"].clone();
        template.as_object_mut()?.remove("$patch");
        Some(Revision {
            name: v["metadata"]["name"].as_str()?.to_string(),
            number: v["revision"].as_i64().unwrap_or(0),
            template,
        })
    }
}

/// The revision data Kruise stores for a template (`getPatch`).
pub fn revision_data(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(obj) = t.as_object_mut() {
        obj.insert("$patch".into(), "replace".into());
    }
    json!({"spec": {"template": t}})
}

/// JSON with object keys sorted at every level, as Go's encoder writes maps.
pub fn canonical_json(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}

/// `HashControllerRevision`: FNV-1 32 (Go's `fnv.New32`: multiply, then xor) over the data,
/// then the collision count in decimal, rendered with `SafeEncodeString` (no vowels, no
/// look-alike characters). With the webhook's template defaults in the data this gives the
/// names real Kruise 1.5.5 gives (`examples/statefulset.yaml` is `sample-5d75576798` on both).
pub fn template_hash(template: &Value, collision_count: i64) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h = h.wrapping_mul(0x0100_0193);
            h ^= u32::from(*b);
        }
    };
    feed(canonical_json(&revision_data(template)).as_bytes());
    feed(collision_count.to_string().as_bytes());
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// What must change in the store so the set's update revision exists.
#[derive(Debug, Clone, PartialEq)]
pub enum RevisionChange {
    /// The update revision is already the newest stored revision.
    None,
    /// Create this ControllerRevision object.
    Create(Value),
    /// Rollback to an older equal revision: set its `revision` number.
    Bump { name: String, number: i64 },
}

/// The outcome of `getStatefulSetRevisions`.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub current: Revision,
    pub update: Revision,
    pub change: RevisionChange,
    pub collision_count: i64,
}

/// Finds or makes the update revision for the set's current template, and the current
/// revision (`status.currentRevision`, or the update revision on the first reconcile).
pub fn resolve(set: &Asts, revisions: &[Revision]) -> Resolved {
    let template = &set.spec.template;
    let canonical = canonical_json(template);
    let status = set.status_or_default();
    let mut collision_count = status.collision_count.unwrap_or(0);
    let max_number = revisions.iter().map(|r| r.number).max().unwrap_or(0);
    let equal = revisions
        .iter()
        .filter(|r| canonical_json(&r.template) == canonical)
        .max_by_key(|r| r.number);
    let (update, change) = match equal {
        Some(r) if r.number == max_number => (r.clone(), RevisionChange::None),
        Some(r) => {
            let bumped = Revision {
                number: max_number + 1,
                ..r.clone()
            };
            let change = RevisionChange::Bump {
                name: r.name.clone(),
                number: max_number + 1,
            };
            (bumped, change)
        }
        None => {
            let mut hash = template_hash(template, collision_count);
            let mut name = format!("{}-{hash}", set.name());
            // A stored revision with this name but other data is a hash collision.
            while revisions.iter().any(|r| r.name == name) {
                collision_count += 1;
                hash = template_hash(template, collision_count);
                name = format!("{}-{hash}", set.name());
            }
            let rev = Revision {
                name: name.clone(),
                number: max_number + 1,
                template: template.clone(),
            };
            let object = revision_object(set, &rev, &hash);
            (rev, RevisionChange::Create(object))
        }
    };
    let current = revisions
        .iter()
        .find(|r| !status.current_revision.is_empty() && r.name == status.current_revision)
        .cloned()
        .unwrap_or_else(|| update.clone());
    Resolved {
        current,
        update,
        change,
        collision_count,
    }
}

/// The ControllerRevision object for `rev`: labelled with the selector's labels and the hash,
/// owned by the set.
pub fn revision_object(set: &Asts, rev: &Revision, hash: &str) -> Value {
    let mut labels = serde_json::Map::new();
    for (k, v) in set.spec.selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if v.is_string() {
            labels.insert(k.clone(), v.clone());
        }
    }
    labels.insert(REVISION_HASH_LABEL.into(), hash.into());
    json!({
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": rev.name,
            "namespace": set.namespace(),
            "labels": labels,
            "ownerReferences": [owner_reference(set)],
        },
        "data": revision_data(&rev.template),
        "revision": rev.number,
    })
}

/// Revisions to delete so at most `revisionHistoryLimit` (default 10) unused ones remain
/// (`truncateHistory`): never the current or update revision, nor one a pod still uses.
pub fn history_to_delete(
    set: &Asts,
    revisions: &[Revision],
    live: &[&str],
    current: &str,
    update: &str,
) -> Vec<String> {
    let limit = usize::try_from(set.spec.revision_history_limit.unwrap_or(10).max(0)).unwrap_or(0);
    let mut unused: Vec<&Revision> = revisions
        .iter()
        .filter(|r| r.name != current && r.name != update && !live.contains(&r.name.as_str()))
        .collect();
    if unused.len() <= limit {
        return vec![];
    }
    unused.sort_by_key(|r| r.number);
    let excess = unused.len() - limit;
    unused
        .into_iter()
        .take(excess)
        .map(|r| r.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_with(image: &str, current: &str) -> Asts {
        Asts::from_value(&json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "main", "image": image}]}}},
            "status": {"currentRevision": current},
        }))
        .unwrap()
    }

    #[test]
    fn the_hash_ignores_key_order_and_changes_with_the_template() {
        let a = json!({"spec": {"containers": [{"name": "m", "image": "x:1"}]}, "metadata": {}});
        let b: Value = serde_json::from_str(
            r#"{"metadata":{},"spec":{"containers":[{"image":"x:1","name":"m"}]}}"#,
        )
        .unwrap();
        let c = json!({"spec": {"containers": [{"name": "m", "image": "x:2"}]}, "metadata": {}});
        assert_eq!(template_hash(&a, 0), template_hash(&b, 0));
        assert_ne!(template_hash(&a, 0), template_hash(&c, 0));
        assert_ne!(template_hash(&a, 0), template_hash(&a, 1));
        assert!(
            template_hash(&a, 0)
                .bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
        );
    }

    #[test]
    fn a_new_template_creates_a_revision_and_the_first_one_is_also_current() {
        let set = set_with("x:1", "");
        let r = resolve(&set, &[]);
        let RevisionChange::Create(obj) = &r.change else {
            panic!("expected a new revision, got {:?}", r.change);
        };
        assert_eq!(obj["metadata"]["name"], r.update.name);
        assert!(r.update.name.starts_with("web-"));
        assert_eq!(r.update.number, 1);
        assert_eq!(r.current, r.update);
        assert_eq!(Revision::from_value(obj).unwrap(), r.update);
    }

    #[test]
    fn rolling_back_to_an_older_template_reuses_its_revision_with_a_new_number() {
        let v1 = resolve(&set_with("x:1", ""), &[]).update;
        let v2 = Revision {
            name: "web-other".into(),
            number: 2,
            template: set_with("x:2", "").spec.template,
        };
        let r = resolve(&set_with("x:1", "web-other"), &[v1.clone(), v2.clone()]);
        assert_eq!(r.update.name, v1.name);
        assert_eq!(
            r.change,
            RevisionChange::Bump {
                name: v1.name.clone(),
                number: 3
            }
        );
        assert_eq!(r.current, v2);
    }
}
