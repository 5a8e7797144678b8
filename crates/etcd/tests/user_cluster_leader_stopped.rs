//! A 3-member etcd cluster whose Raft leader is stopped while two handles commit, a process is a
//! member and an election is held: every commit lands exactly once (no lost or duplicated
//! version), the member stays listed, and leadership moves off a candidate that only knew the
//! stopped member.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{Election, EtcdConfig, EtcdMemory, Membership, Whole};
use hivekit_hive::{AgentId, Memory};
use support::{add, commit, config_under, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

/// The index of the member that is the Raft leader now.
async fn raft_leader(cluster: &EtcdCluster) -> usize {
    for (index, endpoint) in cluster.endpoints().iter().enumerate() {
        let mut client = EtcdConfig::new([endpoint.clone()], "/probe")
            .connect()
            .await
            .unwrap();
        let status = client.status().await.unwrap();
        if status.leader() == status.header().unwrap().member_id() {
            return index;
        }
    }
    panic!("the cluster has no leader");
}

/// What one committer saw: decisions reported committed (with their version) and decisions that
/// failed without possibly landing.
#[derive(Debug, Default)]
struct Outcomes {
    committed: BTreeMap<u64, u64>,
    failed: BTreeSet<u64>,
}

/// Commits decisions `ids` one after another; an unknown outcome is settled with `resolve`.
async fn committer(
    memory: Arc<LedgerMemory>,
    ids: std::ops::Range<u64>,
    started: tokio::sync::mpsc::Sender<()>,
) -> Outcomes {
    let mut outcomes = Outcomes::default();
    for id in ids {
        let base = memory.snapshot().version();
        match commit(&*memory, u128::from(id), base, &[add(id, id % 2, 1)], 1).await {
            Ok(committed) => {
                outcomes.committed.insert(id, committed.version);
            }
            Err(error) if error.may_have_committed() => {
                match memory.resolve(u128::from(id)).await.unwrap() {
                    Some(version) => {
                        outcomes.committed.insert(id, version);
                    }
                    None => {
                        outcomes.failed.insert(id);
                    }
                }
            }
            Err(error) => {
                eprintln!("decision {id} failed: {error}");
                outcomes.failed.insert(id);
            }
        }
        let _ = started.try_send(());
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_raft_leader_mid_run_loses_no_commit_keeps_members_and_moves_the_election() {
    let mut cluster = EtcdCluster::start(3).unwrap_or_else(|error| panic!("{error}"));
    let endpoints = cluster.endpoints();
    let leader = raft_leader(&cluster).await;
    let others: Vec<String> = (0..3)
        .filter(|index| *index != leader)
        .map(|index| endpoints[index].clone())
        .collect();
    let prefix = support::unique_prefix("raft-leader-stopped");
    // The leader's endpoint first, so that the clients start on it.
    let mut everyone = vec![endpoints[leader].clone()];
    everyone.extend(others.iter().cloned());
    let shared = config_under(everyone, &prefix).commit_timeout(Duration::from_secs(10));
    let pinned_config = config_under(vec![endpoints[leader].clone()], &prefix);
    let spare_config = config_under(others.clone(), &prefix);

    // The pinned candidate's lease is short; the others outlive an etcd leader election (a
    // second or two without a Raft leader, during which no lease can be renewed).
    let ttl = Duration::from_secs(2);
    let long_ttl = Duration::from_secs(6);
    let membership = Membership::join(shared.connect().await.unwrap(), &shared, "steady", long_ttl)
        .await
        .unwrap();
    membership.register(AgentId(1), "worker").await.unwrap();
    let pinned = Election::new(
        pinned_config.connect().await.unwrap(),
        &pinned_config,
        "rounds",
    )
    .unwrap()
    .campaign("pinned", ttl)
    .await
    .unwrap();
    let spare_election = Election::new(
        spare_config.connect().await.unwrap(),
        &spare_config,
        "rounds",
    )
    .unwrap();
    let spare = {
        let election = spare_election.clone();
        tokio::spawn(async move { election.campaign("spare", long_ttl).await })
    };

    let memories = [
        Arc::new(
            LedgerMemory::open(shared.clone(), Ledger::default())
                .await
                .unwrap(),
        ),
        Arc::new(
            LedgerMemory::open(shared.clone(), Ledger::default())
                .await
                .unwrap(),
        ),
    ];
    let (started, mut progress) = tokio::sync::mpsc::channel(64);
    let per_committer = 20;
    let tasks: Vec<_> = memories
        .iter()
        .enumerate()
        .map(|(index, memory)| {
            let first = 1 + index as u64 * 1_000;
            tokio::spawn(committer(
                Arc::clone(memory),
                first..first + per_committer,
                started.clone(),
            ))
        })
        .collect();
    drop(started);
    for _ in 0..6 {
        tokio::time::timeout(Duration::from_secs(10), progress.recv())
            .await
            .expect("commits before the stop")
            .expect("committers running");
    }
    tokio::task::block_in_place(|| cluster.member_mut(leader).unwrap().kill());

    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(
            tokio::time::timeout(Duration::from_secs(40), task)
                .await
                .expect("the committers finished")
                .unwrap(),
        );
    }
    let history = memories[0].history(1, u64::MAX - 1).await.unwrap();
    let versions: Vec<u64> = history.iter().map(|entry| entry.version).collect();
    assert_eq!(
        versions,
        (1..=history.len() as u64).collect::<Vec<_>>(),
        "gapless"
    );
    let mut landed = BTreeMap::new();
    for entry in &history {
        assert_eq!(entry.changes.len(), 1);
        let id = entry.changes[0].proposal;
        assert!(
            landed.insert(id, entry.version).is_none(),
            "decision {id} landed twice"
        );
        assert_eq!(entry.decision_id, format!("{:032x}", u128::from(id)));
    }
    let mut reported = 0;
    for outcome in &outcomes {
        for (id, version) in &outcome.committed {
            assert_eq!(landed.get(id), Some(version), "decision {id}");
            reported += 1;
        }
        for id in &outcome.failed {
            assert!(!landed.contains_key(id), "decision {id} failed yet landed");
        }
    }
    assert_eq!(
        reported,
        landed.len(),
        "every version was reported committed"
    );
    assert!(
        reported >= 30,
        "the run went on after the stop: {reported} of 40 committed ({outcomes:?})"
    );
    for memory in &memories {
        let snapshot =
            support::caught_up(&**memory, history.len() as u64, Duration::from_secs(10)).await;
        assert_eq!(snapshot.applied, history.len() as u64);
    }

    // The candidate that knew only the stopped member loses its leadership; the spare is elected.
    tokio::time::timeout(ttl * 2, pinned.lost())
        .await
        .expect("the pinned leader knew it lost leadership");
    assert!(!pinned.is_leader());
    let spare = tokio::time::timeout(Duration::from_secs(15), spare)
        .await
        .expect("the spare candidate was elected")
        .unwrap()
        .unwrap();
    assert!(spare.is_leader());
    assert_eq!(
        spare_election.leader().await.unwrap().as_deref(),
        Some("spare")
    );
    // The member reachable through the other members stayed alive and listed all along.
    assert!(membership.is_alive());
    let members = Membership::list(&spare_config.connect().await.unwrap(), &spare_config)
        .await
        .unwrap();
    assert_eq!(
        members
            .iter()
            .map(|member| (member.process.as_str(), member.agent))
            .collect::<Vec<_>>(),
        [("steady", 1)]
    );
}
