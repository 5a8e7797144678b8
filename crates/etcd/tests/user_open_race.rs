//! Processes creating one memory at once with different initial states or layouts: exactly one
//! creation wins, every process that opens holds the winner's state, and a process asking for the
//! other layout gets a typed `LayoutMismatch`, never a mixture.

mod support;

use std::collections::BTreeMap;

use hivekit_etcd::{EtcdError, EtcdMemory, Keyed, Whole};
use hivekit_hive::Memory;
use support::{config, etcd, Counters, Ledger};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_creating_one_memory_at_once_all_hold_the_one_initial_state_that_won() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "initial-race");
    let opened = futures::future::join_all((0..8_i64).map(|index| {
        let initial = Counters((0..=index as u64).map(|key| (key, index + 1)).collect());
        EtcdMemory::<Counters, Keyed>::open(config.clone(), initial)
    }))
    .await;
    let states: Vec<BTreeMap<u64, i64>> = opened
        .into_iter()
        .map(|memory| memory.unwrap().snapshot().0.clone())
        .collect();
    let winner = &states[0];
    assert!(states.iter().all(|state| state == winner), "{states:?}");
    // The winner is one of the initial states offered, whole.
    let value = winner[&0];
    assert_eq!(
        *winner,
        (0..value as u64)
            .map(|key| (key, value))
            .collect::<BTreeMap<_, _>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_creating_one_memory_at_once_with_two_layouts_get_it_or_a_layout_mismatch() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "layout-race");
    let whole = futures::future::join_all(
        (0..4).map(|_| EtcdMemory::<Ledger, Whole>::open(config.clone(), Ledger::default())),
    );
    let keyed = futures::future::join_all(
        (0..4).map(|_| EtcdMemory::<Counters, Keyed>::open(config.clone(), Counters::default())),
    );
    let (whole, keyed) = futures::future::join(whole, keyed).await;
    let whole_won = whole.iter().filter(|opened| opened.is_ok()).count();
    let keyed_won = keyed.iter().filter(|opened| opened.is_ok()).count();
    assert!(
        (whole_won, keyed_won) == (4, 0) || (whole_won, keyed_won) == (0, 4),
        "whole opened {whole_won}, keyed {keyed_won}"
    );
    let errors = whole
        .into_iter()
        .filter_map(Result::err)
        .chain(keyed.into_iter().filter_map(Result::err));
    for error in errors {
        assert!(matches!(error, EtcdError::LayoutMismatch { .. }), "{error}");
    }
}
