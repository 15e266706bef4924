//! The run lock against the simulator's API server.

use std::time::Duration;

use baton_sim::faults::{ErrorFault, Target};
use baton_sim::{FaultConfig, Sim, SimConfig};
use baton_steps::lease::{
    LeaseConfig, LeaseError, RELEASE_RETRY, RELEASE_TIMEOUT, acquire, acquire_with, holder_identity,
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::PostParams;

#[tokio::test]
async fn a_second_acquire_is_refused_naming_the_holder_until_the_first_releases() {
    let sim = Sim::new(SimConfig::default());
    let client = kube::Client::new(sim.router(), "default");
    let first = holder_identity("run-a");
    let guard = acquire(&client, "default", "sample", &first, "run-a")
        .await
        .unwrap();
    let second = holder_identity("run-b");
    match acquire(&client, "default", "sample", &second, "run-b").await {
        Err(LeaseError::Held { holder }) => assert_eq!(holder, first),
        Err(e) => panic!("expected Held, got {e}"),
        Ok(_) => panic!("a second run must be refused"),
    }
    guard.release().await.unwrap();
    let again = acquire(&client, "default", "sample", &second, "run-b")
        .await
        .unwrap();
    assert_eq!(again.holder(), second);
}

#[tokio::test]
async fn an_expired_lease_is_taken_over() {
    let sim = Sim::new(SimConfig::default());
    let client = kube::Client::new(sim.router(), "default");
    // A holder that stopped renewing (its renewal would come only after 30 s).
    let silent = LeaseConfig {
        duration: Duration::from_secs(1),
        renew_every: Duration::from_secs(30),
    };
    let _stale = acquire_with(
        &client,
        "default",
        "sample",
        "run-a@host/1",
        "run-a",
        silent,
    )
    .await
    .unwrap();
    match acquire(&client, "default", "sample", "run-b@host/2", "run-b").await {
        Err(LeaseError::Held { holder }) => assert_eq!(holder, "run-a@host/1"),
        other => panic!(
            "expected Held before expiry, got {:?}",
            other.map(|g| g.holder().to_owned())
        ),
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let taker = acquire(&client, "default", "sample", "run-b@host/2", "run-b")
        .await
        .unwrap();
    assert_eq!(taker.holder(), "run-b@host/2");
    taker.release().await.unwrap();
}

#[tokio::test]
async fn a_holder_whose_lease_is_taken_by_someone_else_is_told_it_lost_the_lock() {
    let sim = Sim::new(SimConfig::default());
    let client = kube::Client::new(sim.router(), "default");
    let fast = LeaseConfig {
        duration: Duration::from_secs(15),
        renew_every: Duration::from_millis(100),
    };
    let guard = acquire_with(&client, "default", "sample", "run-a@host/1", "run-a", fast)
        .await
        .unwrap();
    let lost = guard.lost();
    let api: Api<Lease> = Api::namespaced(client.clone(), "default");
    // The holder renews every 100 ms, so the intruder may need a few tries.
    let mut taken = false;
    for _ in 0..20 {
        let mut lease = api.get("baton-sample").await.unwrap();
        lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
        if api
            .replace("baton-sample", &PostParams::default(), &lease)
            .await
            .is_ok()
        {
            taken = true;
            break;
        }
    }
    assert!(taken, "the intruder could not write the lease");
    tokio::time::timeout(Duration::from_secs(5), lost.cancelled())
        .await
        .expect("the lost token is cancelled");
}

/// Every lease update the simulator answers with `code`, `count` times (`None`: always).
fn failing_lease_updates(code: u16, count: Option<u32>) -> FaultConfig {
    FaultConfig {
        errors: vec![ErrorFault {
            target: Target {
                verb: Some("update".into()),
                resource: Some("leases".into()),
            },
            code,
            rate: 1.0,
            count,
            retry_after_seconds: None,
        }],
        ..FaultConfig::default()
    }
}

fn lease_updates(sim: &Sim) -> u64 {
    sim.report()["requests"]["update leases"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_release_that_fails_transiently_is_retried_and_clears_the_holder() {
    let sim = Sim::new(SimConfig::default());
    let client = kube::Client::new(sim.router(), "default");
    let guard = acquire(&client, "default", "sample", "run-a@host/1", "run-a")
        .await
        .unwrap();
    let before = lease_updates(&sim);
    sim.faults().set(failing_lease_updates(503, Some(2)));
    let started = std::time::Instant::now();
    guard.release().await.unwrap();
    assert!(
        started.elapsed() < RELEASE_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        lease_updates(&sim) - before,
        3,
        "two failed releases, then the one that went through"
    );
    let lease = Api::<Lease>::namespaced(client.clone(), "default")
        .get("baton-sample")
        .await
        .unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity, None);
    // The next run takes the lock at once.
    acquire(&client, "default", "sample", "run-b@host/2", "run-b")
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_release_that_keeps_failing_gives_up_within_the_bound() {
    let sim = Sim::new(SimConfig::default());
    let client = kube::Client::new(sim.router(), "default");
    let guard = acquire(&client, "default", "sample", "run-a@host/1", "run-a")
        .await
        .unwrap();
    let before = lease_updates(&sim);
    sim.faults().set(failing_lease_updates(500, None));
    let started = std::time::Instant::now();
    match guard.release().await {
        Err(LeaseError::Api { .. }) => {}
        other => panic!("expected the last API error, got {other:?}"),
    }
    assert!(
        started.elapsed() < RELEASE_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        lease_updates(&sim) - before,
        u64::from(RELEASE_RETRY.max_attempts),
        "every try of the retry policy"
    );
    let lease = Api::<Lease>::namespaced(client.clone(), "default")
        .get("baton-sample")
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("run-a@host/1"),
        "the lease is left to expire"
    );
}
