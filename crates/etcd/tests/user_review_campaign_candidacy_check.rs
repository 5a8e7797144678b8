//! Review of 50f9f90 (`Election::campaign` reads its own candidacy back once no candidate is
//! ahead): a candidacy deleted while a leader is still ahead of it, and the read-back during a
//! failover of a 3-member cluster.

mod support;

use std::time::Duration;

use hivekit_etcd::testing::EtcdCluster;
use hivekit_etcd::{Client, Election, EtcdError};
use support::{config, etcd, leader_index};

const TTL: Duration = Duration::from_secs(5);

/// The election's key prefix (a leadership's key without its last segment).
fn prefix_of(key: &str) -> String {
    key[..=key.rfind('/').unwrap()].to_owned()
}

/// The candidacy keys under `prefix`, oldest first.
async fn candidacies(client: &Client, prefix: &str) -> Vec<String> {
    let response = client
        .clone()
        .get(
            prefix,
            Some(etcd_client::GetOptions::new().with_prefix().with_sort(
                etcd_client::SortTarget::Create,
                etcd_client::SortOrder::Ascend,
            )),
        )
        .await
        .unwrap();
    response
        .kvs()
        .iter()
        .map(|pair| String::from_utf8_lossy(pair.key()).into_owned())
        .collect()
}

/// Waits (bounded) until `prefix` holds `count` candidacies.
async fn until_candidacies(client: &Client, prefix: &str, count: usize) -> Vec<String> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let keys = candidacies(client, prefix).await;
            if keys.len() == count {
                return keys;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} candidacies never stood under {prefix}"))
}

/// The docs: `campaign` fails with `LeaseLost` "when the candidacy's key is deleted ... while it
/// waits". A waiting candidate whose key an operator deleted is out of the queue for good (a
/// later candidate will be elected before it), yet it goes on waiting for as long as the leader
/// ahead of it leads: the check runs only once nobody is ahead any more. Its lease is alive
/// meanwhile, so nothing else ends the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_candidate_whose_key_is_deleted_fails_while_the_leader_still_leads() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "review-campaign-deleted-waiting");
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "jobs").unwrap();
    let leader = election.campaign("a", TTL).await.unwrap();
    let prefix = prefix_of(&leader.key());
    let waiting = {
        let election = election.clone();
        tokio::spawn(async move { election.campaign("b", TTL).await })
    };
    let keys = until_candidacies(&client, &prefix, 2).await;
    client.clone().delete(keys[1].clone(), None).await.unwrap();

    let outcome = tokio::time::timeout(Duration::from_secs(5), waiting).await;
    assert!(leader.is_leader(), "the leader ahead still leads");
    match outcome {
        Ok(Ok(Err(EtcdError::LeaseLost { .. }))) => {}
        Ok(other) => panic!("expected LeaseLost, got {other:?}"),
        Err(_) => panic!(
            "the candidate whose key was deleted was still waiting 5 s later (it waits until \
             the leader `a` leaves, however long that is)"
        ),
    }
    drop(leader);
}

/// A candidate waiting behind the leader while the Raft leader of a 3-member cluster is killed and
/// the leader resigns: the read-back of its own key goes through the failover and it is elected
/// (not refused with `LeaseLost`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_candidate_is_elected_through_a_failover_of_the_raft_leader() {
    let mut cluster = match EtcdCluster::start(3) {
        Ok(cluster) => cluster,
        Err(error) => panic!("{error}"),
    };
    let config = config(cluster.endpoints(), "review-campaign-failover")
        .request_timeout(Duration::from_secs(5));
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "jobs").unwrap();
    let leader = election.campaign("a", TTL).await.unwrap();
    let prefix = prefix_of(&leader.key());
    let waiting = {
        let election = election.clone();
        tokio::spawn(async move { election.campaign("b", TTL).await })
    };
    until_candidacies(&client, &prefix, 2).await;

    let raft_leader = leader_index(&cluster).await;
    tokio::task::block_in_place(|| cluster.member_mut(raft_leader).unwrap().kill());
    // The survivors elect a Raft leader; then the leader resigns, and the waiting candidate's
    // watch (maybe on the killed member) and its read-back of its own key go through the
    // failover.
    let survivors: Vec<String> = cluster
        .endpoints()
        .into_iter()
        .enumerate()
        .filter(|(index, _)| *index != raft_leader)
        .map(|(_, endpoint)| endpoint)
        .collect();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let probe = hivekit_etcd::EtcdConfig::new(survivors.clone(), "/probe")
                .connect()
                .await;
            if let Ok(mut probe) = probe {
                if probe
                    .status()
                    .await
                    .is_ok_and(|status| status.leader() != 0)
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the survivors elected a Raft leader");
    leader.resign().await.unwrap();
    let elected = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting candidate was elected within 10 s of the failover")
        .unwrap();
    let elected = match elected {
        Ok(elected) => elected,
        Err(error) => panic!("the waiting candidate was refused through a failover: {error:?}"),
    };
    assert!(elected.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("b"));
    elected.resign().await.unwrap();
}

/// Resigning right after the Raft leader of a 3-member cluster is killed (etcd's election API,
/// sent again through `request` while its member is unreachable): within the request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resignation_right_after_the_raft_leader_is_killed_goes_through() {
    let mut cluster = match EtcdCluster::start(3) {
        Ok(cluster) => cluster,
        Err(error) => panic!("{error}"),
    };
    let config = config(cluster.endpoints(), "review-resign-failover")
        .request_timeout(Duration::from_secs(5));
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "jobs").unwrap();
    let leader = election.campaign("a", TTL).await.unwrap();
    let raft_leader = leader_index(&cluster).await;
    tokio::task::block_in_place(|| cluster.member_mut(raft_leader).unwrap().kill());
    let resigned = leader.resign().await;
    assert!(resigned.is_ok(), "{resigned:?}");
}
