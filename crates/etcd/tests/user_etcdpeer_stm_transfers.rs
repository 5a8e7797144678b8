//! Ported from etcd's `TestSTMConflict` and `TestSTMSerialize` (tests/integration/v3_stm_test.go):
//! processes moving money between accounts at once never lose or create any (the total stays put),
//! and no reader sees a state in which a transfer is half applied: neither a process following the
//! commits nor processes opened (loading the whole state) all along, while etcd compacts and the
//! history is one version deep.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_etcd::{EtcdMemory, Keyed, KeyedState, Layout, Whole};
use hivekit_hive::{Memory, Proposal, ProposalId, State};
use serde::{Deserialize, Serialize};
use support::{caught_up, commit, config, current_revision, etcd};

const ACCOUNTS: u64 = 5;
const OPENING: i64 = 100;
const TOTAL: i64 = ACCOUNTS as i64 * OPENING;
const WRITERS: u64 = 3;
const TRANSFERS: u64 = 15;

/// Balances by account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Bank(BTreeMap<u64, i64>);

/// Moves `amount` from one account to another: two keys in one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Transfer {
    from: u64,
    to: u64,
    amount: i64,
}

impl State for Bank {
    type Key = u64;
    type Change = Transfer;
    fn apply(&mut self, change: &Transfer) {
        *self.0.entry(change.from).or_default() -= change.amount;
        *self.0.entry(change.to).or_default() += change.amount;
    }
}

impl KeyedState for Bank {
    type Value = i64;
    fn entry(&self, key: &u64) -> Option<i64> {
        self.0.get(key).copied()
    }
    fn entries(&self) -> Vec<(u64, i64)> {
        self.0.iter().map(|(key, value)| (*key, *value)).collect()
    }
    fn from_entries(entries: Vec<(u64, i64)>) -> Self {
        Bank(entries.into_iter().collect())
    }
}

fn opening() -> Bank {
    Bank((0..ACCOUNTS).map(|account| (account, OPENING)).collect())
}

fn total(bank: &Bank) -> i64 {
    bank.0.values().sum()
}

async fn transfers<L: Layout<Bank>>(layout: &str) {
    let server = etcd();
    let config = config(vec![server.endpoint()], &format!("peer-stm-{layout}"))
        .history(1)
        .commit_timeout(Duration::from_secs(15));
    let client = config.connect().await.unwrap();
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        writers.push(Arc::new(
            EtcdMemory::<Bank, L>::open(config.clone(), opening())
                .await
                .unwrap(),
        ));
    }
    let reader = Arc::new(
        EtcdMemory::<Bank, L>::open(config.clone(), opening())
            .await
            .unwrap(),
    );

    let done = Arc::new(AtomicBool::new(false));
    // The reader checks every snapshot it is woken with.
    let reading = {
        let (reader, done) = (Arc::clone(&reader), Arc::clone(&done));
        tokio::spawn(async move {
            let mut checked = 0_u64;
            let mut snapshot = reader.snapshot();
            while !done.load(Ordering::SeqCst) {
                assert_eq!(
                    total(&snapshot),
                    TOTAL,
                    "version {} is torn: {:?}",
                    snapshot.version(),
                    *snapshot
                );
                checked += 1;
                let next = tokio::time::timeout(
                    Duration::from_millis(200),
                    reader.changed(snapshot.version()),
                )
                .await;
                if let Ok(next) = next {
                    snapshot = next.unwrap();
                }
            }
            checked
        })
    };
    // Processes opened all along load the whole state at one revision: never a torn one.
    let opening_processes = {
        let (config, done) = (config.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut opened = 0_u64;
            while !done.load(Ordering::SeqCst) {
                let memory = EtcdMemory::<Bank, L>::open(config.clone(), Bank::default())
                    .await
                    .unwrap();
                let snapshot = memory.snapshot();
                assert_eq!(
                    total(&snapshot),
                    TOTAL,
                    "opened at version {}, torn: {:?}",
                    snapshot.version(),
                    *snapshot
                );
                opened += 1;
            }
            opened
        })
    };
    // etcd compacts all along, so that the reader's watch is cut and it reloads.
    let compacting = {
        let (client, done) = (client.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                // Compacting a revision already compacted (nothing committed since) is refused:
                // harmless here.
                let revision = current_revision(&client).await;
                let _ = client.clone().compact(revision, None).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let tasks: Vec<_> = writers
        .iter()
        .enumerate()
        .map(|(index, memory)| {
            let memory = Arc::clone(memory);
            let index = index as u64;
            tokio::spawn(async move {
                for step in 0..TRANSFERS {
                    let id = (index + 1) * 1_000 + step;
                    let from = (index + step) % ACCOUNTS;
                    let to = (from + 1 + step % (ACCOUNTS - 1)) % ACCOUNTS;
                    let change = Transfer {
                        from,
                        to,
                        amount: (step % 7 + 1) as i64,
                    };
                    let proposal = Proposal::new(ProposalId(id), change).writes([from, to]);
                    let base = memory.snapshot().version();
                    commit(&*memory, u128::from(id), base, &[proposal], index)
                        .await
                        .unwrap_or_else(|error| panic!("transfer {id} failed: {error}"));
                }
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(30), async {
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await
    .expect("every transfer committed");

    let version = WRITERS * TRANSFERS;
    let last = caught_up(&*reader, version, Duration::from_secs(5)).await;
    done.store(true, Ordering::SeqCst);
    let checked = reading.await.unwrap();
    compacting.await.unwrap();
    assert!(checked > 1, "the reader checked {checked} snapshots");
    let opened = opening_processes.await.unwrap();
    assert!(opened > 1, "{opened} processes opened during the transfers");
    assert_eq!(last.version(), version, "one version per transfer");
    assert_eq!(total(&last), TOTAL);
    for writer in &writers {
        let theirs = caught_up(&**writer, version, Duration::from_secs(5)).await;
        assert_eq!(*theirs, *last, "the processes disagree");
    }
    // A process opened now reads the same balances back from etcd.
    let fresh = EtcdMemory::<Bank, L>::open(config.clone(), Bank::default())
        .await
        .unwrap();
    assert_eq!(fresh.snapshot().version(), version);
    assert_eq!(*fresh.snapshot(), *last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_keep_the_total_and_no_reader_sees_one_half_applied_keyed() {
    transfers::<Keyed>("keyed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_keep_the_total_and_no_reader_sees_one_half_applied_whole() {
    transfers::<Whole>("whole").await;
}
