//! A new user's "who runs the nightly job" dashboard, written from the README and the rustdoc
//! only, against a real etcd: `Election::observe` gives a `LeaderObserver` that says who leads
//! now (`leader`) and waits for the next leader (`changed`), and the leader announces what it is
//! doing with `Leadership::proclaim`, which fails with `LeaseLost` once its key is gone.
#![cfg(feature = "etcd")]

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use hivekit::etcd::{Election, EtcdConfig, EtcdError, LeaderObserver};
use hivekit::runtime::{execute, spawn};
use hivekit_etcd::testing::EtcdServer;

const TTL: Duration = Duration::from_secs(5);

/// Runs `future` on the process-wide runtime, failing the test if it takes over `limit`.
fn within<T>(limit: Duration, future: impl Future<Output = T>) -> Option<T> {
    execute(async {
        let mut future = pin!(future);
        let mut timer = pin!(hivekit::runtime::sleep(limit));
        poll_fn(|cx| match future.as_mut().poll(cx) {
            Poll::Ready(value) => Poll::Ready(Some(value)),
            Poll::Pending if timer.as_mut().poll(cx).is_ready() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await
    })
}

fn bounded<T>(future: impl Future<Output = T>) -> T {
    within(Duration::from_secs(20), future).expect("done within 20 s")
}

/// The observer's next change, within 5 s.
fn next(observer: &mut LeaderObserver) -> Option<String> {
    within(Duration::from_secs(5), observer.changed())
        .expect("the observer saw a change within 5 s")
        .expect("etcd answered")
}

#[test]
fn a_dashboard_follows_the_nightly_jobs_leader_and_what_it_proclaims() {
    let server = EtcdServer::start().expect("etcd starts (needs the etcd binary)");
    let config = EtcdConfig::new([server.endpoint()], "/newuser-nightly");
    let (node_a, node_b, dashboard) = bounded(async {
        let connect = || async { config.connect().await.expect("etcd reachable") };
        (connect().await, connect().await, connect().await)
    });
    let election_a = Election::new(node_a, &config, "nightly").expect("a valid name");
    let election_b = Election::new(node_b, &config, "nightly").expect("a valid name");
    let watching = Election::new(dashboard, &config, "nightly").expect("a valid name");

    let mut observer = bounded(watching.observe()).expect("observing");
    assert_eq!(observer.leader(), None, "nobody campaigned yet");

    let mut leader_a = bounded(election_a.campaign("node-a: idle", TTL)).expect("elected");
    assert!(leader_a.is_leader());
    assert_eq!(next(&mut observer).as_deref(), Some("node-a: idle"));
    assert_eq!(observer.leader(), Some("node-a: idle"));

    // The leader says what it is doing; everyone reading the election sees it.
    bounded(leader_a.proclaim("node-a: running job 7")).expect("still the leader");
    assert_eq!(leader_a.candidate(), "node-a: running job 7");
    assert_eq!(
        next(&mut observer).as_deref(),
        Some("node-a: running job 7")
    );
    assert_eq!(
        bounded(election_b.leader()).expect("read").as_deref(),
        Some("node-a: running job 7")
    );
    // Proclaiming the same value again is no change of leader: the observer reports none.
    bounded(leader_a.proclaim("node-a: running job 7")).expect("still the leader");
    assert!(
        within(Duration::from_millis(300), observer.changed()).is_none(),
        "the same leader was reported twice in a row"
    );

    // Node b queues behind a; a hands over by resigning.
    let waiting_b = spawn(async move { election_b.campaign("node-b: idle", TTL).await });
    assert!(
        within(Duration::from_millis(300), observer.changed()).is_none(),
        "a waiting candidate was reported as the leader"
    );
    bounded(leader_a.resign()).expect("resigned");
    assert_eq!(next(&mut observer).as_deref(), Some("node-b: idle"));
    let mut leader_b = bounded(waiting_b)
        .expect("the campaign task ran")
        .expect("b elected");
    assert!(leader_b.is_leader());

    // A leader whose key is deleted from outside has lost: it cannot proclaim.
    let key = leader_b.key();
    bounded(async {
        let mut client = config.connect().await.expect("etcd reachable");
        client.delete(key, None).await.expect("deleted");
    });
    assert_eq!(next(&mut observer), None, "the election has no leader now");
    assert_eq!(observer.leader(), None);
    let refused = bounded(leader_b.proclaim("node-b: running job 8"));
    assert!(
        matches!(refused, Err(EtcdError::LeaseLost { .. })),
        "{refused:?}"
    );
    assert_eq!(
        leader_b.candidate(),
        "node-b: idle",
        "a refused proclaim changes nothing"
    );
    assert_eq!(bounded(watching.leader()).expect("read"), None);
}
