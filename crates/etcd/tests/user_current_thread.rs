//! The distributed hive on the runtime most tests and small tools use: `#[tokio::test]`'s
//! current-thread runtime (the background tasks, the follower, lease renewals, the revoke on drop,
//! share the one thread with the caller).

mod support;

use std::time::Duration;

use hivekit_etcd::{Election, EtcdMemory, Membership, Whole};
use hivekit_hive::{Agent, AgentContext, AgentError, AgentId, Hive, ProposalOf, Snapshot};
use support::{add, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

struct Incrementer;

impl Agent<Ledger> for Incrementer {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        Ok(Some(add(ctx.round(), 1, 1)))
    }
}

#[tokio::test]
async fn a_hive_on_etcd_decides_and_follows_on_a_current_thread_runtime() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "current-thread");
    let memory = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let watcher = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let hive = Hive::builder_with_memory(memory).build().unwrap();
    hive.spawn(Incrementer);
    for round in 1..=3 {
        let decision = tokio::time::timeout(Duration::from_secs(5), hive.decide())
            .await
            .expect("decide answered")
            .unwrap();
        assert_eq!(decision.version, round);
    }
    let followed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut snapshot = hivekit_hive::Memory::snapshot(&watcher);
        while snapshot.version() < 3 {
            snapshot = hivekit_hive::Memory::changed(&watcher, snapshot.version())
                .await
                .unwrap();
        }
        snapshot
    })
    .await
    .expect("the watcher followed on the same thread");
    assert_eq!(followed.counters.get(&1), Some(&3));
}

#[tokio::test]
async fn membership_and_election_work_on_a_current_thread_runtime_and_drop_revokes_at_once() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "current-thread-members");
    let client = config.connect().await.unwrap();
    let ttl = Duration::from_secs(10);
    let membership = Membership::join(client.clone(), &config, "proc", ttl)
        .await
        .unwrap();
    membership.register(AgentId(1), "scout").await.unwrap();
    let election = Election::new(client.clone(), &config, "rounds").unwrap();
    let leadership = election.campaign("alpha", ttl).await.unwrap();
    assert!(leadership.is_leader());
    assert_eq!(Membership::list(&client, &config).await.unwrap().len(), 1);

    drop(membership);
    drop(leadership);
    // The revokes run in the background on this thread: well before the 10 s TTL.
    tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let members = Membership::list(&client, &config).await.unwrap();
            let leader = election.leader().await.unwrap();
            if members.is_empty() && leader.is_none() {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("dropping revoked the member and the leader at once");
}
