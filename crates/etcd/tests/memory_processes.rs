//! Several client processes (this test binary, run again as a client) sharing one etcd memory.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use etcd_client::{EventType, WatchOptions};
use hivekit_etcd::Membership;
use support::child::{run_if_child, verify, Client, ClientPlan};
use support::{config, etcd};

#[test]
fn three_processes_of_ten_agents_share_one_gapless_history_with_every_change_once() {
    if run_if_child() {
        return;
    }
    let server = etcd();
    let config = config(vec![server.endpoint()], "processes");
    let mut clients: Vec<Client> = (0..3)
        .map(|index| {
            let plan = ClientPlan {
                endpoints: vec![server.endpoint()],
                prefix: config.prefix().to_string(),
                index,
                agents: 10,
                decisions: 200,
                lease_ttl_secs: 2,
            };
            Client::spawn(
                "three_processes_of_ten_agents_share_one_gapless_history_with_every_change_once",
                &plan,
            )
        })
        .collect();
    for client in &mut clients {
        client.finish(Duration::from_secs(90));
        assert_eq!(
            client.committed().len(),
            200,
            "every decision of client {} committed",
            client.index
        );
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let history = runtime.block_on(verify(&config, &clients, 10));
    assert_eq!(history.len(), 600);
    assert!(
        history.iter().any(|entry| entry.rebased),
        "the processes contended"
    );
}

#[test]
fn a_client_killed_mid_run_leaves_no_partial_commit_and_its_members_go_within_the_ttl() {
    if run_if_child() {
        return;
    }
    let server = etcd();
    let config = config(vec![server.endpoint()], "killed");
    let ttl = 2;
    let plan = |index| ClientPlan {
        endpoints: vec![server.endpoint()],
        prefix: config.prefix().to_string(),
        index,
        agents: 10,
        decisions: 100,
        lease_ttl_secs: ttl,
    };
    let name = "a_client_killed_mid_run_leaves_no_partial_commit_and_its_members_go_within_the_ttl";
    let mut victim = Client::spawn(name, &plan(0));
    let mut survivor = Client::spawn(name, &plan(1));
    let runtime = tokio::runtime::Runtime::new().unwrap();

    victim.wait_for_commits(20, Duration::from_secs(30));
    let (members_before, mut deletions, _client) = runtime.block_on(async {
        let client = config.connect().await.unwrap();
        let members = Membership::list(&client, &config).await.unwrap();
        let revision = support::current_revision(&client).await;
        let watch = client
            .watch_client()
            .watch(
                format!("{}members/p0/", config.prefix()),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await
            .unwrap();
        // The client is kept: dropping its channel would end the watch.
        (members, watch, client)
    });
    assert_eq!(
        members_before
            .iter()
            .filter(|member| member.process == "p0")
            .count(),
        10
    );

    victim.guard.kill();
    let killed = Instant::now();
    let gone_within = Duration::from_secs(ttl) + Duration::from_secs(1);
    runtime.block_on(async {
        let mut gone = BTreeSet::new();
        while gone.len() < 10 {
            let message = tokio::time::timeout(
                gone_within.saturating_sub(killed.elapsed()),
                deletions.message(),
            )
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of 10 members gone {:?} after the kill",
                    gone.len(),
                    killed.elapsed()
                )
            })
            .unwrap()
            .unwrap();
            for event in message.events() {
                if event.event_type() == EventType::Delete {
                    gone.insert(event.kv().unwrap().key().to_vec());
                }
            }
        }
    });
    let members_after = runtime.block_on(async {
        let client = config.connect().await.unwrap();
        Membership::list(&client, &config).await.unwrap()
    });
    assert!(members_after.iter().all(|member| member.process != "p0"));

    survivor.finish(Duration::from_secs(60));
    let history = runtime.block_on(verify(&config, &[victim, survivor], 10));
    assert!(
        history.len() >= 120,
        "the survivor's 100 and the victim's 20 or more"
    );
}
