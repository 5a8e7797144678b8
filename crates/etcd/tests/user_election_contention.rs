//! Elections under contention and cancellation: many candidates campaigning at once hold the
//! leadership one at a time, each exactly once; a campaign cancelled at any point of its way
//! (granting its lease, standing, waiting) leaves no candidacy that delays the next leader; a
//! candidate value etcd refuses fails the campaign with a typed error at once.
//!
//! Promises (crates/etcd/src/election.rs): `Election` "etcd elects them one at a time, in the order
//! they campaigned"; `campaign` "# Cancel safety: Cancelling drops the lease (revoking it), which
//! withdraws the candidacy", "# Errors ... [`EtcdError`] when etcd refuses the campaign";
//! `Leadership::is_leader`; `Election::leader` "the current leader's candidate value".

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hivekit_etcd::{Election, EtcdConfig, EtcdError};
use parking_lot::Mutex;
use support::{config, etcd};

const TTL: Duration = Duration::from_secs(10);

/// How many candidates stand in election `name` now.
async fn standing(config: &EtcdConfig, name: &str) -> usize {
    let client = config.connect().await.unwrap();
    let prefix = format!("{}election/{name}/", config.prefix());
    client
        .clone()
        .get(
            prefix,
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only(),
            ),
        )
        .await
        .unwrap()
        .count() as usize
}

/// Waits (bounded) until exactly `count` candidates stand.
async fn wait_for_standing(config: &EtcdConfig, name: &str, count: usize, within: Duration) {
    let started = Instant::now();
    loop {
        let now = standing(config, name).await;
        if now == count {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{now} candidates stand after {within:?}, expected {count}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_candidates_campaigning_at_once_lead_one_at_a_time_each_exactly_once() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "contended-election");
    const CANDIDATES: usize = 8;
    let holders = Arc::new(AtomicUsize::new(0));
    let elected = Arc::new(Mutex::new(Vec::new()));
    let mut campaigns = Vec::new();
    for index in 0..CANDIDATES {
        let client = config.connect().await.unwrap();
        let election = Election::new(client, &config, "rounds").unwrap();
        let (holders, elected) = (Arc::clone(&holders), Arc::clone(&elected));
        campaigns.push(tokio::spawn(async move {
            let name = format!("candidate-{index}");
            let leadership = election.campaign(&name, TTL).await.unwrap();
            let before = holders.fetch_add(1, Ordering::SeqCst);
            assert_eq!(before, 0, "{name} elected while another one leads");
            assert!(leadership.is_leader());
            assert_eq!(leadership.candidate(), name);
            assert_eq!(
                election.leader().await.unwrap().as_deref(),
                Some(name.as_str()),
                "etcd names the elected candidate as the leader"
            );
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            assert!(
                leadership.is_leader(),
                "{name} still leads until it resigns"
            );
            elected.lock().push(name);
            holders.fetch_sub(1, Ordering::SeqCst);
            leadership.resign().await.unwrap();
        }));
    }
    for campaign in campaigns {
        tokio::time::timeout(Duration::from_secs(20), campaign)
            .await
            .expect("every candidate was elected in turn, without waiting out a TTL")
            .unwrap();
    }
    let elected = elected.lock().clone();
    let distinct: BTreeSet<_> = elected.iter().collect();
    assert_eq!(
        (elected.len(), distinct.len()),
        (CANDIDATES, CANDIDATES),
        "each candidate elected exactly once: {elected:?}"
    );
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    assert_eq!(election.leader().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_cancelled_at_any_point_leaves_no_candidacy_that_delays_the_next_leader() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "cancel-sweep");
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "rounds").unwrap();
    let holder = election.campaign("holder", TTL).await.unwrap();
    // Cancelled after every delay from nothing to well past the grant and the stand (a few ms on
    // loopback): while the holder leads, no campaign can finish.
    for step in 0..60_u64 {
        let delay = Duration::from_micros(step * 200);
        let name = format!("cancelled-{step}");
        let campaign = election.campaign(&name, TTL);
        let outcome = tokio::time::timeout(delay, campaign).await;
        assert!(
            outcome.is_err(),
            "step {step}: a campaign finished while the holder leads"
        );
    }
    // Every cancelled candidacy is withdrawn promptly (its lease revoked, not left to its TTL).
    wait_for_standing(&config, "rounds", 1, Duration::from_secs(5)).await;
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("holder"));
    let successor = election.clone();
    let next = tokio::spawn(async move { successor.campaign("next", TTL).await });
    wait_for_standing(&config, "rounds", 2, Duration::from_secs(5)).await;
    holder.resign().await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(3), next)
        .await
        .expect("the next candidate was elected at once, not after a cancelled one's TTL")
        .unwrap()
        .unwrap();
    assert!(next.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("next"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_value_etcd_refuses_fails_the_campaign_typed_at_once_and_leaves_no_candidacy() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "refused-candidate");
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    // Far over etcd's 1.5 MiB request limit.
    let huge = "x".repeat(3 * 1024 * 1024);
    let started = Instant::now();
    let refused = tokio::time::timeout(Duration::from_secs(8), election.campaign(&huge, TTL))
        .await
        .expect("a refused campaign returns instead of retrying for ever");
    let error = refused.expect_err("etcd refuses a candidate value over its request limit");
    assert!(
        !matches!(error, EtcdError::LeaseLost { .. }),
        "the lease was not lost, etcd refused the request: {error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused after {:?}",
        started.elapsed()
    );
    wait_for_standing(&config, "rounds", 0, Duration::from_secs(3)).await;
    assert_eq!(election.leader().await.unwrap(), None);
    let next = tokio::time::timeout(Duration::from_secs(3), election.campaign("next", TTL))
        .await
        .expect("the next candidate is elected at once")
        .unwrap();
    assert!(next.is_leader());
}
