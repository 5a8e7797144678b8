//! A synchronous program (no runtime of its own) using the etcd hive through hivekit-runtime's
//! `execute` bridge, from several plain threads: open, commit, follow, membership and election, and
//! dropping each outside any runtime.

mod support;

use std::time::{Duration, Instant};

use hivekit_etcd::{Election, EtcdMemory, Membership, Whole};
use hivekit_hive::{AgentId, Memory};
use hivekit_runtime::execute;
use support::{add, commit, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

fn bounded<T>(what: &str, limit: Duration, future: impl std::future::Future<Output = T>) -> T {
    execute(async {
        tokio::time::timeout(limit, future)
            .await
            .unwrap_or_else(|_| panic!("{what} took longer than {limit:?}"))
    })
}

#[test]
fn a_plain_thread_program_shares_one_memory_and_membership_through_execute() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "sync-bridge");
    let limit = Duration::from_secs(10);

    let writer = bounded(
        "open",
        limit,
        LedgerMemory::open(config.clone(), Ledger::default()),
    )
    .unwrap();
    let reader = bounded(
        "open",
        limit,
        LedgerMemory::open(config.clone(), Ledger::default()),
    )
    .unwrap();

    // Commits from several plain threads at once, each through execute.
    let writer = std::sync::Arc::new(writer);
    let threads: Vec<_> = (0..3_u64)
        .map(|index| {
            let writer = std::sync::Arc::clone(&writer);
            std::thread::spawn(move || {
                for step in 0..10_u64 {
                    let id = (index + 1) * 100 + step;
                    let base = writer.snapshot().version();
                    bounded(
                        "commit",
                        Duration::from_secs(10),
                        commit(&*writer, u128::from(id), base, &[add(id, index, 1)], index),
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(writer.snapshot().version(), 30);
    // The reader follows on its own (its follower runs on the global runtime).
    let followed = bounded("follow", limit, async {
        let mut snapshot = reader.snapshot();
        while snapshot.version() < 30 {
            snapshot = reader.changed(snapshot.version()).await.unwrap();
        }
        snapshot
    });
    assert_eq!(followed.applied, 30);
    for key in 0..3 {
        assert_eq!(followed.counters.get(&key), Some(&10));
    }

    // Membership: join, register, and drop outside any runtime: the agents go at once.
    let client = writer.client().clone();
    let membership = bounded(
        "join",
        limit,
        Membership::join(
            client.clone(),
            &config,
            "sync-process",
            Duration::from_secs(30),
        ),
    )
    .unwrap();
    bounded("register", limit, membership.register(AgentId(1), "worker")).unwrap();
    let listed = bounded("list", limit, Membership::list(&client, &config)).unwrap();
    assert_eq!(listed.len(), 1);
    drop(membership);
    let started = Instant::now();
    loop {
        let listed = bounded("list", limit, Membership::list(&client, &config)).unwrap();
        if listed.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a dropped membership's agents stayed listed: {listed:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Election: win, drop outside any runtime, and the next candidate is elected at once.
    let election = Election::new(client.clone(), &config, "sync-election").unwrap();
    let first = bounded(
        "campaign",
        limit,
        election.campaign("first", Duration::from_secs(30)),
    )
    .unwrap();
    assert!(first.is_leader());
    let waiting = {
        let election = election.clone();
        std::thread::spawn(move || {
            bounded(
                "second campaign",
                Duration::from_secs(10),
                election.campaign("second", Duration::from_secs(30)),
            )
            .map(|leadership| leadership.candidate().to_string())
        })
    };
    // The second candidate stands in the queue before the leader's handle is dropped, so that
    // the drop is what elects it.
    let candidates = format!("{}election/sync-election/", config.prefix());
    let started = Instant::now();
    loop {
        let standing = bounded(
            "candidates",
            limit,
            client.clone().get(
                candidates.clone(),
                Some(etcd_client::GetOptions::new().with_prefix()),
            ),
        )
        .unwrap();
        if standing.kvs().len() == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the second candidate never stood"
        );
        std::thread::yield_now();
    }
    drop(first);
    let second = waiting.join().unwrap().unwrap();
    assert_eq!(second, "second");
    drop(writer);
    drop(reader);
}
