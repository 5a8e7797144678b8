//! Reads of more than one page (256 keys) return every stored key while etcd compacts its revisions
//! between their pages, as production etcds do on a schedule (`--auto-compaction-retention`):
//! `EtcdMemory::history` and `open` of a keyed memory of several pages (the follower's catch-up and
//! `resolve`'s scan read the same way). Before, every page after the first was pinned to the first
//! one's revision, and once etcd compacted it they failed with `EtcdError::Client` "mvcc: required
//! revision has been compacted" (found by qa6); now such a read starts again at the current revision.

mod support;

use std::time::Duration;

use hivekit_etcd::{EtcdMemory, Keyed, Whole};
use hivekit_hive::{AcceptedChange, CommitRequest, Memory, Proposal, ProposalId};
use support::{add, commit, config, etcd, Add, Counters, Ledger};

/// Bumps etcd's revision outside any memory and compacts up to it, `rounds` times.
fn compactor(client: hivekit_etcd::Client, rounds: u32) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for round in 0..rounds {
            let put = client
                .clone()
                .put("/hivekit-test/compaction-tick", round.to_string(), None)
                .await;
            if put.is_err() {
                return; // the test ended and stopped etcd
            }
            support::compact_now(&client).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reads_of_many_pages_are_whole_while_etcd_compacts_between_them() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "compacted-pages").history(usize::MAX);
    let memory = EtcdMemory::<Ledger, Whole>::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    // More entries than one read page (256).
    for id in 1..=300 {
        commit(&memory, u128::from(id), id - 1, &[add(id, 1, 1)], 1)
            .await
            .unwrap();
    }
    let compacting = compactor(memory.client().clone(), 200);
    let mut reads = 0;
    while !compacting.is_finished() {
        let history = tokio::time::timeout(Duration::from_secs(5), memory.history(1, 1_000))
            .await
            .expect("history answered");
        let history = history.unwrap_or_else(|error| {
            panic!("history read {reads} failed while etcd compacted: {error}")
        });
        assert_eq!(history.len(), 300);
        reads += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_memory_of_several_pages_opens_while_etcd_compacts() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "compacted-open").history(0);
    let memory = EtcdMemory::<Counters, Keyed>::open(config.clone(), Counters::default())
        .await
        .unwrap();
    // 300 keys (more than one page), 100 per commit.
    for batch in 0..3_u64 {
        let proposals: Vec<_> = (0..100)
            .map(|index| {
                let key = batch * 100 + index;
                Proposal::new(
                    ProposalId(key),
                    Add {
                        id: key,
                        key,
                        delta: 1,
                    },
                )
                .writes([key])
            })
            .collect();
        let accepted: Vec<AcceptedChange<'_, Counters>> = proposals
            .iter()
            .map(|proposal| AcceptedChange {
                proposal,
                proposer: None,
            })
            .collect();
        memory
            .commit(CommitRequest {
                decision_id: u128::from(batch + 1),
                round: batch + 1,
                base: batch,
                accepted: &accepted,
            })
            .await
            .unwrap();
    }
    let compacting = compactor(memory.client().clone(), 200);
    let mut opens = 0;
    while !compacting.is_finished() {
        let opened = tokio::time::timeout(
            Duration::from_secs(5),
            EtcdMemory::<Counters, Keyed>::open(config.clone(), Counters::default()),
        )
        .await
        .expect("open answered")
        .unwrap_or_else(|error| panic!("open {opens} failed while etcd compacted: {error}"));
        assert_eq!(opened.snapshot().0.len(), 300);
        opens += 1;
    }
}
