//! A keyed memory is created in one transaction (marker, head and every initial entry, so that no
//! process sees half of it): an initial state of up to etcd's `--max-txn-ops` less two entries is
//! created, a larger one is refused with a typed error naming the transaction (it said "commit"),
//! and nothing is written, so a smaller state and commits build the same memory (qa2's case).

mod support;

use std::collections::BTreeMap;

use hivekit_etcd::{EtcdError, EtcdMemory, Keyed};
use hivekit_hive::Memory;
use support::{config, etcd, Counters};

fn counters(keys: std::ops::Range<u64>) -> Counters {
    Counters(keys.map(|key| (key, 1_i64)).collect::<BTreeMap<_, _>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_state_fits_in_one_transaction_or_is_refused_with_nothing_written() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "big-initial");
    let error = EtcdMemory::<Counters, Keyed>::open(config.clone(), counters(0..600))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            EtcdError::TooManyOperations {
                operations: 602,
                limit: 128
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().starts_with("transaction of 602"),
        "{error}"
    );

    let largest = counters(0..126);
    let memory = EtcdMemory::<Counters, Keyed>::open(config.clone(), largest.clone())
        .await
        .expect("126 entries and the marker and head fit");
    assert_eq!(memory.snapshot().0, largest.0);
    let reopened = EtcdMemory::<Counters, Keyed>::open(config, Counters::default())
        .await
        .unwrap();
    assert_eq!(reopened.snapshot().0, largest.0);
}
