//! The arbiter over real HTTP: each behaviour a client can meet (SPEC §3 and the simulator's
//! misbehaviour knobs), seen from a reqwest client against the router on 127.0.0.1.

use std::time::Duration;

use baton_sim::arbiter::{Arbiter, ArbiterConfig, Mode, Role};
use baton_sim::report::Report;
use serde_json::{Value, json};

struct Served {
    arbiter: Arbiter,
    url: String,
    http: reqwest::Client,
}

async fn serve(cfg: ArbiterConfig) -> Served {
    let arbiter = Arbiter::new(cfg);
    arbiter.seed(&[
        ("s-0".into(), true),
        ("s-1".into(), false),
        ("s-2".into(), true),
        ("s-3".into(), false),
        ("s-4".into(), true),
    ]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = arbiter.router();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Served {
        arbiter,
        url,
        http: reqwest::Client::new(),
    }
}

impl Served {
    async fn members(&self) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/v1/members", self.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn handover(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v1/handover", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn epoch(&self) -> u64 {
        self.members().await.1["epoch"].as_u64().unwrap()
    }
}

fn working(doc: &Value) -> Vec<String> {
    doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "working")
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn members_lists_every_pod_with_its_role_and_an_epoch() {
    let a = serve(ArbiterConfig::default()).await;
    let (code, doc) = a.members().await;
    assert_eq!(code, 200);
    assert_eq!(doc["members"].as_array().unwrap().len(), 5);
    assert_eq!(working(&doc), ["s-0", "s-2", "s-4"]);
    assert!(doc["epoch"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_synchronous_handover_answers_200_with_the_new_roles_and_a_new_epoch() {
    let a = serve(ArbiterConfig::default()).await;
    let epoch = a.epoch().await;
    let report = Report::new();
    a.arbiter.attach_report(report.clone());
    let (code, doc) = a
        .handover(json!({"epoch": epoch, "promote": ["s-1", "s-3"], "demote": ["s-0", "s-2"], "requestId": "r/1"}))
        .await;
    assert_eq!(code, 200);
    assert_eq!(working(&doc), ["s-1", "s-3", "s-4"]);
    assert!(doc["epoch"].as_u64().unwrap() > epoch);
    assert_eq!(working(&a.members().await.1), ["s-1", "s-3", "s-4"]);
    assert_eq!(a.arbiter.roles()["s-1"], Role::Working);
    assert_eq!(report.to_json()["workingMin"], 3);
}

#[tokio::test]
async fn an_asynchronous_handover_answers_202_and_shows_up_later() {
    let a = serve(ArbiterConfig {
        mode: Mode::Async,
        async_delay_ms: 100,
        ..ArbiterConfig::default()
    })
    .await;
    let epoch = a.epoch().await;
    let (code, _) = a
        .handover(
            json!({"epoch": epoch, "promote": ["s-1"], "demote": ["s-0"], "requestId": "r/1"}),
        )
        .await;
    assert_eq!(code, 202);
    assert_eq!(
        working(&a.members().await.1),
        ["s-0", "s-2", "s-4"],
        "not applied yet"
    );
    let mut doc = a.members().await.1;
    for _ in 0..100 {
        if working(&doc) != ["s-0", "s-2", "s-4"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        doc = a.members().await.1;
    }
    assert_eq!(working(&doc), ["s-1", "s-2", "s-4"]);
    assert!(doc["epoch"].as_u64().unwrap() > epoch);
}

#[tokio::test]
async fn the_nth_handover_meets_a_conflict_with_a_newer_epoch() {
    let a = serve(ArbiterConfig {
        conflict_on_nth_handover: Some(2),
        ..ArbiterConfig::default()
    })
    .await;
    let epoch = a.epoch().await;
    let (first, _) = a
        .handover(
            json!({"epoch": epoch, "promote": ["s-1"], "demote": ["s-0"], "requestId": "r/1"}),
        )
        .await;
    assert_eq!(first, 200);
    let epoch = a.epoch().await;
    let (second, body) = a
        .handover(
            json!({"epoch": epoch, "promote": ["s-3"], "demote": ["s-2"], "requestId": "r/2"}),
        )
        .await;
    assert_eq!(second, 409);
    let newer = body["epoch"].as_u64().unwrap();
    assert!(newer > epoch);
    assert!(body["error"].is_string());
    // Re-read and re-plan: the same request at the new epoch goes through.
    let (third, doc) = a
        .handover(
            json!({"epoch": newer, "promote": ["s-3"], "demote": ["s-2"], "requestId": "r/2"}),
        )
        .await;
    assert_eq!(third, 200);
    assert_eq!(working(&doc), ["s-1", "s-3", "s-4"]);
}

#[tokio::test]
async fn a_stale_epoch_is_a_conflict() {
    let a = serve(ArbiterConfig::default()).await;
    let epoch = a.epoch().await;
    let (code, body) = a
        .handover(json!({"epoch": epoch - 1, "promote": ["s-1"], "demote": ["s-0"]}))
        .await;
    assert_eq!(code, 409);
    assert_eq!(body["epoch"], epoch);
}

#[tokio::test]
async fn with_a_token_requests_without_it_are_unauthorized() {
    let a = serve(ArbiterConfig {
        token: Some("s3cret".into()),
        ..ArbiterConfig::default()
    })
    .await;
    let bare = a
        .http
        .get(format!("{}/v1/members", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 401);
    let wrong = a
        .http
        .get(format!("{}/v1/members", a.url))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let post = a
        .http
        .post(format!("{}/v1/handover", a.url))
        .json(&json!({"epoch": 1, "promote": [], "demote": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 401);
    let good = a
        .http
        .get(format!("{}/v1/members", a.url))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(good.status().as_u16(), 200);
}

#[tokio::test]
async fn the_quorum_rule_refuses_handovers_with_422() {
    let a = serve(ArbiterConfig::default()).await;
    let epoch = a.epoch().await;
    let cases = [
        (
            "fewer promoted than demoted",
            json!({"promote": ["s-1"], "demote": ["s-0", "s-2"]}),
        ),
        ("demote only", json!({"promote": [], "demote": ["s-4"]})),
        (
            "promote an unknown member",
            json!({"promote": ["s-9"], "demote": ["s-0"]}),
        ),
        (
            "promote a working member",
            json!({"promote": ["s-2"], "demote": ["s-0"]}),
        ),
        (
            "demote an idle member",
            json!({"promote": ["s-1"], "demote": ["s-3"]}),
        ),
        (
            "a member named twice",
            json!({"promote": ["s-1"], "demote": ["s-1"]}),
        ),
    ];
    for (name, mut body) in cases {
        body["epoch"] = epoch.into();
        let (code, resp) = a.handover(body).await;
        assert_eq!(code, 422, "{name}");
        assert!(resp["error"].is_string(), "{name}");
    }
    assert_eq!(a.epoch().await, epoch, "nothing was applied");
    assert_eq!(working(&a.members().await.1), ["s-0", "s-2", "s-4"]);
}

#[tokio::test]
async fn an_outage_answers_503_for_its_duration_then_recovers() {
    let a = serve(ArbiterConfig::default()).await;
    a.arbiter.outage(Duration::from_millis(300));
    let r = a
        .http
        .get(format!("{}/v1/members", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let (code, _) = a
        .handover(json!({"epoch": 1, "promote": [], "demote": []}))
        .await;
    assert_eq!(code, 503);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(a.members().await.0, 200);
}

#[tokio::test]
async fn flapping_swaps_roles_but_keeps_the_working_count() {
    let a = serve(ArbiterConfig::default()).await;
    let (_, before) = a.members().await;
    a.arbiter.set_config(ArbiterConfig {
        flap_every_ms: Some(20),
        ..ArbiterConfig::default()
    });
    tokio::time::sleep(Duration::from_millis(110)).await;
    let (_, after) = a.members().await;
    assert!(after["epoch"].as_u64().unwrap() >= before["epoch"].as_u64().unwrap() + 5);
    assert_eq!(working(&after).len(), 3);
}

#[tokio::test]
async fn a_repeated_request_id_is_not_applied_twice() {
    let a = serve(ArbiterConfig::default()).await;
    let epoch = a.epoch().await;
    let body = json!({"epoch": epoch, "promote": ["s-1"], "demote": ["s-0"], "requestId": "run/1"});
    let (first, doc1) = a.handover(body.clone()).await;
    assert_eq!(first, 200);
    let epoch_after = a.epoch().await;
    // The same request again (a retry after a lost answer): same answer, nothing applied.
    let (again, doc2) = a.handover(body).await;
    assert_eq!(again, 200);
    assert_eq!(doc1, doc2);
    assert_eq!(a.epoch().await, epoch_after);
    assert_eq!(working(&a.members().await.1), ["s-1", "s-2", "s-4"]);
}

#[tokio::test]
async fn empty_mode_lists_the_pods_it_learns_all_idle() {
    let a = serve(ArbiterConfig {
        empty: true,
        ..ArbiterConfig::default()
    })
    .await;
    a.arbiter.seed(&[]);
    assert!(
        a.members().await.1["members"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    a.arbiter.ensure_member("app-0");
    a.arbiter.ensure_member("app-1");
    a.arbiter.ensure_member("app-0");
    let (_, doc) = a.members().await;
    assert_eq!(
        doc["members"],
        json!([{"name": "app-0", "role": "idle"}, {"name": "app-1", "role": "idle"}])
    );
    a.arbiter.forget_member("app-1");
    assert_eq!(a.members().await.1["members"].as_array().unwrap().len(), 1);
}
