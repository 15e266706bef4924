//! The store's unit tests.

use super::*;

fn pod(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "main", "image": "a"}]}})
}

#[test]
fn create_fills_in_identity_and_rejects_duplicates() {
    let s = Store::new();
    let p = s.create(Kind::Pod, "default", pod("p")).unwrap();
    assert_eq!(p["apiVersion"], "v1");
    assert_eq!(p["kind"], "Pod");
    assert_eq!(p["metadata"]["namespace"], "default");
    assert_eq!(p["metadata"]["generation"], 1);
    assert_eq!(p["metadata"]["uid"].as_str().unwrap().len(), 36);
    assert_eq!(
        s.create(Kind::Pod, "default", pod("p")).unwrap_err().reason,
        "AlreadyExists"
    );
}

#[test]
fn modify_bumps_generation_only_on_spec_changes_and_skips_no_ops() {
    let s = Store::new();
    let p = s.create(Kind::Pod, "default", pod("p")).unwrap();
    let rv0 = p["metadata"]["resourceVersion"].clone();
    let same = s.modify(Kind::Pod, "default", "p", |_| Ok(())).unwrap();
    assert_eq!(same["metadata"]["resourceVersion"], rv0);
    let labelled = s
        .modify(Kind::Pod, "default", "p", |o| {
            o["metadata"]["labels"] = json!({"a": "b"});
            Ok(())
        })
        .unwrap();
    assert_ne!(labelled["metadata"]["resourceVersion"], rv0);
    assert_eq!(labelled["metadata"]["generation"], 1);
    let respec = s
        .modify(Kind::Pod, "default", "p", |o| {
            o["spec"]["containers"][0]["image"] = json!("b");
            Ok(())
        })
        .unwrap();
    assert_eq!(respec["metadata"]["generation"], 2);
}

#[test]
fn modify_cannot_change_identity() {
    let s = Store::new();
    let p = s.create(Kind::Pod, "default", pod("p")).unwrap();
    let q = s
        .modify(Kind::Pod, "default", "p", |o| {
            o["metadata"]["uid"] = json!("x");
            o["metadata"]["name"] = json!("q");
            Ok(())
        })
        .unwrap();
    assert_eq!(p, q);
}

#[tokio::test]
async fn watch_from_replays_history_then_goes_live_and_answers_gone_after_compaction() {
    let s = Store::new();
    let a = s.create(Kind::Pod, "default", pod("a")).unwrap();
    let rv_a: u64 = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    s.create(Kind::Pod, "default", pod("b")).unwrap();
    let (past, mut rx) = s.watch_from(rv_a).unwrap();
    assert_eq!(past.len(), 1);
    assert_eq!(past[0].name, "b");
    s.delete(Kind::Pod, "default", "a").unwrap();
    let live = rx.recv().await.unwrap();
    assert_eq!(
        (live.name.as_str(), live.change),
        ("a", ChangeType::Deleted)
    );
    s.compact();
    assert_eq!(s.watch_from(rv_a).unwrap_err().code, 410);
    assert!(s.watch_from(s.resource_version()).is_ok());
}

#[test]
fn bounded_history_forgets_old_versions() {
    let s = Store::with_history(2);
    for n in ["a", "b", "c", "d"] {
        s.create(Kind::Pod, "default", pod(n)).unwrap();
    }
    let rv = s.resource_version();
    assert!(s.watch_from(rv - 2).is_ok());
    assert_eq!(s.watch_from(rv - 3).unwrap_err().code, 410);
}
