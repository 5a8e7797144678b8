//! `EtcdConfig` as documented: its defaults (the constants, the timeouts `new` sets), the prefix it
//! normalises, the configurations every entry point refuses before touching etcd, and a connect
//! timeout of `Duration::MAX` (no limit) that still connects.
//!
//! Promises (crates/etcd/src/config.rs): `new` "a `/` is appended when missing. Timeouts: connect
//! 3 s, request 5 s, commit 15 s"; `DEFAULT_DECISION_WINDOW` "ten minutes, forty times the default
//! commit timeout"; `DEFAULT_MAX_REQUEST_BYTES` "(1.5 MiB)"; `DEFAULT_MAX_TXN_OPS` "128";
//! `connect_timeout` "How long connecting may take before [`EtcdError::Unreachable`]".

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::{
    Election, EtcdConfig, EtcdError, EtcdMemory, Membership, Whole, DEFAULT_DECISION_WINDOW,
    DEFAULT_HISTORY, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS,
};
use hivekit_hive::Memory;
use support::{add, commit, etcd, unique_prefix, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

/// A port nothing listens on (bound, then released).
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn the_default_constants_are_the_documented_values() {
    assert_eq!(DEFAULT_MAX_REQUEST_BYTES, 1536 * 1024, "1.5 MiB");
    assert_eq!(DEFAULT_MAX_TXN_OPS, 128);
    assert_eq!(DEFAULT_HISTORY, 100);
    assert_eq!(DEFAULT_DECISION_WINDOW, Duration::from_secs(10 * 60));
    assert_eq!(
        DEFAULT_DECISION_WINDOW,
        40 * Duration::from_secs(15),
        "forty times the default commit timeout"
    );
    let config = EtcdConfig::new(["http://127.0.0.1:2379"], "/hive");
    assert_eq!(config.decision_window_length(), DEFAULT_DECISION_WINDOW);
    assert_eq!(config.history_depth(), DEFAULT_HISTORY);
    assert_eq!(config.endpoints(), ["http://127.0.0.1:2379"]);
}

#[test]
fn new_appends_one_slash_to_a_prefix_only_when_it_is_missing() {
    let prefix = |given: &str| {
        EtcdConfig::new(["http://127.0.0.1:2379"], given)
            .prefix()
            .to_owned()
    };
    assert_eq!(prefix("/hive"), "/hive/");
    assert_eq!(prefix("/hive/"), "/hive/");
    assert_eq!(prefix("hive"), "hive/");
    assert_eq!(prefix("/a//"), "/a//");
    assert_eq!(prefix(""), "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_commit_timeout_is_fifteen_seconds() {
    // The window check runs before connecting and names the commit timeout it compared.
    let config = EtcdConfig::new([dead_endpoint()], &unique_prefix("default-commit"))
        .decision_window(Duration::from_secs(14));
    let error = LedgerMemory::open(config, Ledger::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, EtcdError::DecisionWindowTooShort { commit_timeout, .. }
            if commit_timeout == Duration::from_secs(15)),
        "{error:?}"
    );
    let at_least = EtcdConfig::new([dead_endpoint()], &unique_prefix("default-commit"))
        .decision_window(Duration::from_secs(15))
        .connect_timeout(Duration::from_millis(200));
    let error = LedgerMemory::open(at_least, Ledger::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, EtcdError::Unreachable { .. }),
        "a window equal to the commit timeout is accepted: {error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_connect_timeout_is_three_seconds_and_bounds_an_unreachable_open() {
    let config = EtcdConfig::new([dead_endpoint()], &unique_prefix("default-connect"));
    let started = Instant::now();
    let error = tokio::time::timeout(
        Duration::from_secs(8),
        LedgerMemory::open(config, Ledger::default()),
    )
    .await
    .expect("open gave up within the connect timeout")
    .unwrap_err();
    let elapsed = started.elapsed();
    match &error {
        EtcdError::Unreachable { waited, .. } => assert_eq!(*waited, Duration::from_secs(3)),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(
        elapsed < Duration::from_secs(3) + Duration::from_millis(1500),
        "gave up after {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_point_refuses_no_endpoints_or_the_whole_keyspace_before_touching_etcd() {
    let server = etcd();
    let good = support::config_under(vec![server.endpoint()], &unique_prefix("refusals"));
    let client = good.connect().await.unwrap();
    let no_endpoints = EtcdConfig::new(Vec::<String>::new(), "/hive");
    for whole_keyspace in ["", "/"] {
        let whole = EtcdConfig::new([server.endpoint()], whole_keyspace);
        for (config, what) in [(&no_endpoints, "no endpoints"), (&whole, "prefix `/`")] {
            let errors = [
                config.connect().await.map(drop).unwrap_err(),
                LedgerMemory::open(config.clone(), Ledger::default())
                    .await
                    .map(drop)
                    .unwrap_err(),
                LedgerMemory::open_with_client(client.clone(), config.clone(), Ledger::default())
                    .await
                    .map(drop)
                    .unwrap_err(),
                Membership::join(client.clone(), config, "proc", Duration::from_secs(5))
                    .await
                    .map(drop)
                    .unwrap_err(),
                Election::new(client.clone(), config, "rounds")
                    .map(drop)
                    .unwrap_err(),
            ];
            for error in errors {
                match (&error, what) {
                    (EtcdError::NoEndpoints, "no endpoints") => {}
                    (EtcdError::InvalidPrefix { prefix, .. }, "prefix `/`") => {
                        assert_eq!(prefix, "/");
                    }
                    _ => panic!("{what}: {error:?}"),
                }
                let message = error.to_string();
                assert!(
                    !message.ends_with('.') && message.starts_with(char::is_lowercase),
                    "{message}"
                );
            }
        }
    }
    // Nothing was written anywhere: the keyspace holds no key.
    let all = client
        .clone()
        .get(
            "\0",
            Some(
                etcd_client::GetOptions::new()
                    .with_from_key()
                    .with_count_only(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(all.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_timeout_of_duration_max_means_no_limit_and_still_connects() {
    let server = etcd();
    let config = support::config_under(vec![server.endpoint()], &unique_prefix("connect-max"))
        .connect_timeout(Duration::MAX);
    let memory = tokio::time::timeout(
        Duration::from_secs(10),
        LedgerMemory::open(config, Ledger::default()),
    )
    .await
    .expect("open answered")
    .unwrap();
    commit(&memory, 1, 0, &[add(1, 1, 1)], 1).await.unwrap();
    assert_eq!(memory.snapshot().version(), 1);
}
