//! Endpoints as users write them: without a scheme, with one member of the list down at start,
//! and garbage (a typed error, never a panic).

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::{EtcdError, EtcdMemory, Whole};
use support::{add, commit, config, config_under, etcd, unique_prefix, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

/// A loopback endpoint nothing listens on.
fn dead_endpoint() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_down_at_start_does_not_stop_open_or_commits_whichever_its_place_in_the_list() {
    let server = etcd();
    for endpoints in [
        vec![dead_endpoint(), server.endpoint()],
        vec![server.endpoint(), dead_endpoint()],
    ] {
        let config = config(endpoints.clone(), "one-down");
        let started = Instant::now();
        let memory = LedgerMemory::open(config, Ledger::default())
            .await
            .unwrap_or_else(|error| panic!("{endpoints:?}: {error}"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        for id in 1..=5 {
            let committed = commit(&memory, u128::from(id), id - 1, &[add(id, 1, 1)], 1)
                .await
                .unwrap_or_else(|error| panic!("{endpoints:?}, commit {id}: {error}"));
            assert_eq!(committed.version, id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_without_a_scheme_connects() {
    let server = etcd();
    let bare = server.endpoint().trim_start_matches("http://").to_string();
    let config = config_under(vec![bare], &unique_prefix("bare"));
    let memory = LedgerMemory::open(config, Ledger::default()).await.unwrap();
    assert_eq!(
        commit(&memory, 1, 0, &[add(1, 1, 1)], 1)
            .await
            .unwrap()
            .version,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_endpoints_are_typed_errors_within_the_connect_timeout() {
    for endpoint in [
        "",
        "not a url",
        "http://",
        "http://[::1",
        "ftp://127.0.0.1:1",
    ] {
        let config = config_under(vec![endpoint.to_string()], &unique_prefix("garbage"))
            .connect_timeout(Duration::from_millis(500));
        let started = Instant::now();
        let outcome = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::spawn(LedgerMemory::open(config, Ledger::default())),
        )
        .await
        .unwrap_or_else(|_| panic!("{endpoint:?}: open hung"));
        let error = outcome
            .unwrap_or_else(|panic| panic!("{endpoint:?}: open panicked: {panic}"))
            .unwrap_err();
        assert!(
            matches!(error, EtcdError::Unreachable { .. }),
            "{endpoint:?}: {error}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{endpoint:?}");
    }
}
