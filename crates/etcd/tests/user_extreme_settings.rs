//! Settings at their extremes: zero timeouts, lease TTLs of `Duration::MAX` and of a year, and a
//! leader key deleted behind the leader's back.

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::{Election, EtcdError, EtcdMemory, Membership, Whole};
use hivekit_hive::{AgentId, Memory};
use support::{add, commit, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_timeouts_are_typed_errors_not_hangs_or_panics() {
    let server = etcd();
    let zero_request =
        config(vec![server.endpoint()], "zero-request").request_timeout(Duration::ZERO);
    let started = Instant::now();
    let opened = tokio::time::timeout(
        Duration::from_secs(5),
        LedgerMemory::open(zero_request, Ledger::default()),
    )
    .await
    .expect("open answered");
    // Either it gives up at once, typed, or (connect probe under the connect timeout) opens.
    if let Err(error) = &opened {
        assert!(
            matches!(
                error,
                EtcdError::Timeout { .. } | EtcdError::Unreachable { .. }
            ),
            "{error}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    let zero_commit = config(vec![server.endpoint()], "zero-commit").commit_timeout(Duration::ZERO);
    let memory = LedgerMemory::open(zero_commit, Ledger::default())
        .await
        .unwrap();
    let error = tokio::time::timeout(
        Duration::from_secs(5),
        commit(&memory, 1, 0, &[add(1, 1, 1)], 1),
    )
    .await
    .expect("the commit answered")
    .unwrap_err();
    assert!(!error.may_have_committed(), "{error}");
    assert_eq!(memory.snapshot().version(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_ttl_of_duration_max_is_a_typed_error_and_a_long_one_works() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "ttl-max");
    let client = config.connect().await.unwrap();
    let error = Membership::join(client.clone(), &config, "forever", Duration::MAX)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("lease"), "{error}");
    let election = Election::new(client.clone(), &config, "rounds").unwrap();
    assert!(election.campaign("forever", Duration::MAX).await.is_err());

    let year = Duration::from_secs(365 * 24 * 3600);
    let membership = Membership::join(client, &config, "long", year)
        .await
        .unwrap();
    membership.register(AgentId(1), "scout").await.unwrap();
    assert!(membership.is_alive());
    assert_eq!(membership.ttl(), year);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_key_is_deleted_behind_its_back_knows_at_once_and_the_next_is_elected() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "key-deleted");
    let ttl = Duration::from_secs(10);
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    let leadership = election.campaign("alpha", ttl).await.unwrap();
    let contender = election.clone();
    let next = tokio::spawn(async move { contender.campaign("beta", ttl).await });
    let mut client = config.connect().await.unwrap();
    // An operator removes the leader's key (etcdctl del).
    let leader_key = client
        .get(
            format!("{}election/rounds/", config.prefix()),
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_sort(
                        etcd_client::SortTarget::Create,
                        etcd_client::SortOrder::Ascend,
                    )
                    .with_limit(1),
            ),
        )
        .await
        .unwrap()
        .kvs()[0]
        .key()
        .to_vec();
    client.delete(leader_key, None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), leadership.lost())
        .await
        .expect("the leader noticed its key went");
    assert!(!leadership.is_leader());
    let next = tokio::time::timeout(Duration::from_secs(3), next)
        .await
        .expect("the next candidate was elected")
        .unwrap()
        .unwrap();
    assert!(next.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_lease_an_operator_revokes_knows_within_a_renewal_and_refuses_to_register() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "lease-revoked");
    let ttl = Duration::from_secs(3);
    let membership = Membership::join(config.connect().await.unwrap(), &config, "proc", ttl)
        .await
        .unwrap();
    membership.register(AgentId(1), "scout").await.unwrap();
    let mut client = config.connect().await.unwrap();
    let member_key = format!("{}members/proc/1", config.prefix());
    let lease = client.get(member_key, None).await.unwrap().kvs()[0].lease();
    // etcdctl lease revoke
    client.lease_revoke(lease).await.unwrap();
    assert!(Membership::list(&client, &config).await.unwrap().is_empty());
    let revoked = Instant::now();
    // Renewals go every third of the TTL; the next one finds the lease gone.
    tokio::time::timeout(ttl / 3 + Duration::from_secs(1), membership.lost())
        .await
        .unwrap_or_else(|_| panic!("still alive {:?} after the revoke", revoked.elapsed()));
    assert!(!membership.is_alive());
    let error = membership.register(AgentId(2), "late").await.unwrap_err();
    assert!(matches!(error, EtcdError::LeaseLost { .. }), "{error}");
    assert!(Membership::list(&client, &config).await.unwrap().is_empty());
}
