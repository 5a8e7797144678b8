//! etcd stopped under a user: every call answers with a typed error within its timeout (no hang),
//! and once etcd is back the same handles work again and followers catch up.

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::{Election, EtcdError, EtcdMemory, Membership, Whole};
use hivekit_hive::{AgentId, Memory, MemoryError};
use support::{add, commit, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

const REQUEST: Duration = Duration::from_millis(500);

/// Bounds `future` by `limit`, failing the test with `what` when it hangs; returns its output and
/// how long it took.
async fn bounded<T>(
    what: &str,
    limit: Duration,
    future: impl std::future::Future<Output = T>,
) -> (T, Duration) {
    let started = Instant::now();
    let output = tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what} still waiting after {limit:?}"));
    (output, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_membership_and_elections_fail_typed_within_the_request_timeout_while_etcd_is_down() {
    let mut server = etcd();
    let config = config(vec![server.endpoint()], "down")
        .request_timeout(REQUEST)
        .commit_timeout(Duration::from_secs(2));
    let memory = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    commit(&memory, 1, 0, &[add(1, 1, 1)], 1).await.unwrap();
    let client = memory.client().clone();
    let membership = Membership::join(client.clone(), &config, "proc", Duration::from_secs(5))
        .await
        .unwrap();
    let election = Election::new(client.clone(), &config, "rounds").unwrap();

    tokio::task::block_in_place(|| server.kill());
    let limit = REQUEST * 3;
    let (history, took) = bounded("history", limit, memory.history(1, 1)).await;
    assert!(history.is_err(), "history read with etcd down: {history:?}");
    assert!(took < limit, "{took:?}");
    let (resolved, _) = bounded("resolve", limit, memory.resolve(77)).await;
    assert!(resolved.is_err(), "resolve with etcd down: {resolved:?}");
    let (registered, _) =
        bounded("register", limit, membership.register(AgentId(1), "scout")).await;
    assert!(registered.is_err(), "register with etcd down");
    let (listed, _) = bounded("members", limit, membership.members()).await;
    assert!(listed.is_err(), "members with etcd down");
    let (leader, _) = bounded("leader", limit, election.leader()).await;
    assert!(leader.is_err(), "leader with etcd down: {leader:?}");
    let (campaign, _) = bounded(
        "campaign",
        limit,
        election.campaign("alpha", Duration::from_secs(5)),
    )
    .await;
    assert!(campaign.is_err(), "campaign with etcd down");
    // The local copy stays readable.
    assert_eq!(memory.snapshot().version(), 1);
    assert_eq!(memory.snapshot().applied, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_while_etcd_is_down_fails_typed_within_the_commit_timeout_and_commits_nothing() {
    let mut server = etcd();
    let config = config(vec![server.endpoint()], "down-commit")
        .request_timeout(REQUEST)
        .commit_timeout(Duration::from_secs(2));
    let memory = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    commit(&memory, 1, 0, &[add(1, 1, 1)], 1).await.unwrap();

    tokio::task::block_in_place(|| server.kill());
    let (outcome, took) = bounded(
        "commit",
        Duration::from_secs(4),
        commit(&memory, 2, 1, &[add(2, 1, 1)], 1),
    )
    .await;
    let error = outcome.unwrap_err();
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Whether the error is definite depends on when the client notices that the killed server's
    // connection closed: a reconnection refused is a definite failure, but a request written into
    // the connection as it closes is reported as of unknown outcome ("operation was canceled":
    // the client cannot tell whether the server read it before it died, and claiming it did not
    // land would be a lost update if it had). Either way it is typed, and nothing landed: the
    // history below says so once etcd is back.
    assert!(
        matches!(
            error,
            MemoryError::Unavailable { .. }
                | MemoryError::Backend { .. }
                | MemoryError::OutcomeUnknown { .. }
        ),
        "{error}"
    );
    assert_eq!(memory.snapshot().version(), 1);

    tokio::task::block_in_place(|| server.restart().unwrap());
    let committed = commit(&memory, 3, 1, &[add(3, 1, 1)], 1).await.unwrap();
    assert_eq!(committed.version, 2);
    let history = memory.history(1, 2).await.unwrap();
    let decisions: Vec<_> = history
        .iter()
        .map(|entry| (entry.version, entry.changes[0].proposal))
        .collect();
    assert_eq!(decisions, [(1, 1), (2, 3)], "decision 2 never landed");
    assert_eq!(memory.resolve(2).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_resumes_after_etcd_restarts_and_sees_every_version_in_order() {
    let mut server = etcd();
    let config = config(vec![server.endpoint()], "resume");
    let writer = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let follower = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    commit(&writer, 1, 0, &[add(1, 1, 1)], 1).await.unwrap();
    let seen = bounded("first version", Duration::from_secs(5), follower.changed(0))
        .await
        .0
        .unwrap();
    assert_eq!(seen.version(), 1);

    tokio::task::block_in_place(|| {
        server.kill();
        server.restart().unwrap();
    });
    for id in 2..=5 {
        commit(&writer, u128::from(id), id - 1, &[add(id, 1, 1)], 1)
            .await
            .unwrap();
    }
    let caught_up = bounded(
        "catching up after the restart",
        Duration::from_secs(10),
        async {
            let mut snapshot = follower.snapshot();
            while snapshot.version() < 5 {
                snapshot = follower.changed(snapshot.version()).await.unwrap();
            }
            snapshot
        },
    )
    .await
    .0;
    assert_eq!(caught_up.applied, 5);
    assert_eq!(caught_up.counters.get(&1), Some(&5));
    let history = follower.history(1, 5).await.unwrap();
    let versions: Vec<_> = history.iter().map(|entry| entry.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    // The follower committing on top of what it followed lands as version 6, not a rebase.
    let committed = commit(&follower, 6, 5, &[add(6, 2, 1)], 2).await.unwrap();
    assert_eq!((committed.version, committed.rebased), (6, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_survives_an_etcd_restart_shorter_than_its_ttl() {
    let mut server = etcd();
    let config = config(vec![server.endpoint()], "member-restart");
    let ttl = Duration::from_secs(4);
    let membership = Membership::join(config.connect().await.unwrap(), &config, "proc", ttl)
        .await
        .unwrap();
    membership.register(AgentId(1), "scout").await.unwrap();
    tokio::task::block_in_place(|| {
        server.kill();
        server.restart().unwrap();
    });
    // Past the point where a renewal missed during the outage would have let it lapse.
    let lapsed = tokio::time::timeout(ttl + Duration::from_secs(1), membership.lost()).await;
    assert!(lapsed.is_err(), "the membership was given up");
    assert!(membership.is_alive());
    let members = membership.members().await.unwrap();
    assert_eq!(members.len(), 1, "the agent is still listed");
    membership.register(AgentId(2), "scout").await.unwrap();
    assert_eq!(membership.members().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_against_a_stopped_etcd_is_unreachable_within_the_connect_timeout() {
    let mut server = etcd();
    let config =
        config(vec![server.endpoint()], "open-down").connect_timeout(Duration::from_millis(500));
    tokio::task::block_in_place(|| server.kill());
    let (opened, took) = bounded(
        "open",
        Duration::from_secs(3),
        LedgerMemory::open(config.clone(), Ledger::default()),
    )
    .await;
    let error = opened.unwrap_err();
    assert!(matches!(error, EtcdError::Unreachable { .. }), "{error}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_keeps_its_leadership_through_an_etcd_restart_shorter_than_its_ttl() {
    let mut server = etcd();
    let config = config(vec![server.endpoint()], "leader-restart");
    let ttl = Duration::from_secs(4);
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    let leadership = election.campaign("alpha", ttl).await.unwrap();
    let contender = election.clone();
    let waiting = tokio::spawn(async move { contender.campaign("beta", ttl).await });
    tokio::task::block_in_place(|| {
        server.kill();
        server.restart().unwrap();
    });
    let lapsed = tokio::time::timeout(ttl + Duration::from_secs(1), leadership.lost()).await;
    assert!(lapsed.is_err(), "the leadership was given up");
    assert!(leadership.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("alpha"));
    if waiting.is_finished() {
        // A campaign waiting when etcd went away may end with an error (the caller campaigns
        // again); it must not have won while the leader held on.
        let outcome = waiting.await.unwrap();
        assert!(outcome.is_err(), "a second leader was elected: {outcome:?}");
        leadership.resign().await.unwrap();
        assert_eq!(election.leader().await.unwrap(), None);
        return;
    }
    leadership.resign().await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(3), waiting)
        .await
        .expect("the waiting candidate, still campaigning after the restart, was elected")
        .unwrap()
        .unwrap();
    assert!(next.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_etcd_gives_typed_errors_in_bounded_time_and_an_unknown_commit_resolves_after_it_thaws(
) {
    let server = etcd();
    let config = config(vec![server.endpoint()], "frozen")
        .request_timeout(REQUEST)
        .commit_timeout(Duration::from_secs(2));
    let memory = LedgerMemory::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    commit(&memory, 1, 0, &[add(1, 1, 1)], 1).await.unwrap();

    server.freeze();
    let (history, took) = bounded("history", REQUEST * 3, memory.history(1, 1)).await;
    let error = history.unwrap_err();
    assert!(matches!(error, EtcdError::Timeout { .. }), "{error}");
    assert!(took >= REQUEST / 2, "{took:?}");
    let (outcome, _) = bounded(
        "commit",
        Duration::from_secs(4),
        commit(&memory, 2, 1, &[add(2, 1, 1)], 1),
    )
    .await;
    let error = outcome.unwrap_err();
    // Sent and never answered: it may have landed.
    assert!(error.may_have_committed(), "{error}");
    server.thaw();

    let (resolved, _) = bounded("resolve", Duration::from_secs(5), memory.resolve(2)).await;
    let resolved = resolved.unwrap();
    let (next, _) = bounded(
        "next commit",
        Duration::from_secs(5),
        commit(&memory, 3, 1, &[add(3, 1, 1)], 1),
    )
    .await;
    let next = next.unwrap();
    let history = memory.history(1, 10).await.unwrap();
    let decisions: Vec<(u64, u64)> = history
        .iter()
        .map(|entry| (entry.version, entry.changes[0].proposal))
        .collect();
    match resolved {
        Some(version) => {
            assert_eq!(version, 2);
            assert_eq!(decisions, [(1, 1), (2, 2), (3, 3)]);
            assert_eq!(next.version, 3);
        }
        None => {
            assert_eq!(decisions, [(1, 1), (2, 3)]);
            assert_eq!(next.version, 2);
        }
    }
}
