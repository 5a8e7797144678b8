//! A process may join the hive's membership or campaign in its election before the memory on the
//! same prefix exists; the memory is then still created (opening failed with NotAMemory for as long
//! as a member or candidate key lived: found by qa2). Foreign keys on the prefix still refuse it.

mod support;

use std::time::Duration;

use hivekit_etcd::{Election, EtcdMemory, Membership, Whole};
use hivekit_hive::{AgentId, Memory};
use support::{add, commit, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_joins_and_campaigns_before_the_memory_exists_can_still_open_it() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "join-first");
    let client = config.connect().await.unwrap();
    // The first process of a fresh hive registers its agents and runs for leader first.
    let membership = Membership::join(client.clone(), &config, "first", Duration::from_secs(5))
        .await
        .unwrap();
    membership.register(AgentId(1), "scout").await.unwrap();
    let election = Election::new(client.clone(), &config, "rounds").unwrap();
    let leadership = election
        .campaign("first", Duration::from_secs(5))
        .await
        .unwrap();

    let memory = LedgerMemory::open_with_client(client, config, Ledger::default())
        .await
        .expect("members/ and election/ are the memory's own keys (see the key layout)");
    assert_eq!(memory.snapshot().version(), 0);
    commit(&memory, 1, 0, &[add(1, 1, 1)], 1).await.unwrap();
    assert!(leadership.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_key_beside_members_still_refuses_the_prefix() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "join-foreign");
    let mut client = config.connect().await.unwrap();
    let membership = Membership::join(client.clone(), &config, "first", Duration::from_secs(5))
        .await
        .unwrap();
    membership.register(AgentId(1), "scout").await.unwrap();
    client
        .put(format!("{}someone-else", config.prefix()), "x", None)
        .await
        .unwrap();
    let error = LedgerMemory::open_with_client(client, config, Ledger::default())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("1 keys and no hivekit marker"),
        "{error}"
    );
}
