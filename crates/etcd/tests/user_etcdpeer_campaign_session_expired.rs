//! Ported from etcd's `TestMutexLockSessionExpired` (tests/integration/clientv3/concurrency): a
//! candidate waiting behind the holder whose session (lease) ends before the holder lets go must
//! not be handed the lock. etcd's `Mutex::Lock` reads its own key back after the wait and fails
//! with `ErrSessionExpired` when it is gone; hivekit's `Election::campaign` promises to wait
//! "until elected" and to fail with `LeaseLost` "when the lease is lost while waiting".

mod support;

use std::time::Duration;

use hivekit_etcd::{Client, Election, EtcdConfig, EtcdError};
use support::{config, etcd};

/// Long enough that the waiting candidate's own renewal (every third of it) does not notice the
/// revoke before the leader resigns.
const TTL: Duration = Duration::from_secs(6);

/// The candidacy keys of election `name`, oldest first: `(key, lease)`.
async fn candidacies(client: &Client, config: &EtcdConfig, name: &str) -> Vec<(Vec<u8>, i64)> {
    let prefix = format!("{}election/{name}/", config.prefix());
    let options = etcd_client::GetOptions::new().with_prefix().with_sort(
        etcd_client::SortTarget::Create,
        etcd_client::SortOrder::Ascend,
    );
    client
        .clone()
        .get(prefix, Some(options))
        .await
        .unwrap()
        .kvs()
        .iter()
        .map(|kv| (kv.key().to_vec(), kv.lease()))
        .collect()
}

async fn wait_for_candidacies(client: &Client, config: &EtcdConfig, name: &str, count: usize) {
    tokio::time::timeout(Duration::from_secs(3), async {
        while candidacies(client, config, name).await.len() < count {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the candidates stood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_candidate_whose_lease_is_revoked_before_the_leader_resigns_is_not_elected() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "peer-session-expired");
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "lock").unwrap();
    let holder = election.campaign("holder", TTL).await.unwrap();
    let waiting = {
        let election = election.clone();
        tokio::spawn(async move { election.campaign("waiter", TTL).await })
    };
    wait_for_candidacies(&client, &config, "lock", 2).await;
    let (_, waiter_lease) = candidacies(&client, &config, "lock").await[1].clone();

    // The waiter's session ends (etcdctl lease revoke), then the holder unlocks.
    client.clone().lease_revoke(waiter_lease).await.unwrap();
    holder.resign().await.unwrap();

    let outcome = tokio::time::timeout(TTL, waiting)
        .await
        .expect("the campaign ended within the TTL")
        .unwrap();
    match outcome {
        Err(error) => assert!(matches!(error, EtcdError::LeaseLost { .. }), "{error}"),
        Ok(leadership) => panic!(
            "elected with a revoked lease: is_leader() = {}, etcd's leader = {:?}, candidacies \
             left = {}",
            leadership.is_leader(),
            election.leader().await.unwrap(),
            candidacies(&client, &config, "lock").await.len()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_candidate_whose_key_is_deleted_never_says_it_leads_while_etcd_has_no_leader() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "peer-candidacy-deleted");
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "lock").unwrap();
    let holder = election.campaign("holder", TTL).await.unwrap();
    let waiting = {
        let election = election.clone();
        tokio::spawn(async move { election.campaign("waiter", TTL).await })
    };
    wait_for_candidacies(&client, &config, "lock", 2).await;
    let (waiter_key, _) = candidacies(&client, &config, "lock").await[1].clone();

    // An operator removes the waiting candidacy (etcdctl del), then the holder resigns.
    client.clone().delete(waiter_key, None).await.unwrap();
    holder.resign().await.unwrap();

    let outcome = tokio::time::timeout(TTL, waiting)
        .await
        .expect("the campaign ended within the TTL")
        .unwrap();
    if let Ok(leadership) = outcome {
        // Whatever campaign answers, a leadership that says it leads must be etcd's leader.
        let said = leadership.is_leader();
        let etcd_leader = election.leader().await.unwrap();
        assert!(
            !said || etcd_leader.as_deref() == Some("waiter"),
            "is_leader() = true while etcd's leader is {etcd_leader:?}"
        );
        tokio::time::timeout(Duration::from_secs(2), leadership.lost())
            .await
            .expect("a leadership without a key is lost at once");
    }
}
