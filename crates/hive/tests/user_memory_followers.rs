//! Followers of the collective memory (`HiveMemory::changed`), as a dashboard or a cache waits for
//! new versions: several followers on other tasks and threads see versions only grow, never miss
//! the last one (no lost wake-up, however the commits interleave with their waits), and a
//! follower already behind returns at once.

use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{Agent, AgentContext, AgentError, Hive, ProposalOf, Snapshot, State};

const BOUND: Duration = Duration::from_secs(10);
const ROUNDS: u64 = 200;

#[derive(Clone, Default, Debug)]
struct Count(u64);

impl State for Count {
    type Key = ();
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

struct Bump;

impl Agent<Count> for Bump {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        Ok(Some(ctx.proposal(1).writes([()])))
    }
}

/// Follows until `last`, checking each snapshot; returns how many it saw.
async fn follow(hive: Arc<Hive<Count>>, last: u64) -> u64 {
    let mut seen = 0;
    let mut version = 0;
    while version < last {
        let snapshot = hive.memory().changed(version).await.expect("local memory");
        assert!(
            snapshot.version() > version,
            "changed({version}) gave {}",
            snapshot.version()
        );
        assert_eq!(snapshot.0, snapshot.version(), "one change per version");
        version = snapshot.version();
        seen += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_see_growing_versions_and_never_miss_the_last_commit() {
    let hive = Arc::new(Hive::builder(Count::default()).build().unwrap());
    hive.spawn(Bump);
    let followers: Vec<_> = (0..3)
        .map(|_| tokio::spawn(follow(Arc::clone(&hive), ROUNDS)))
        .collect();
    // One more follower on a plain thread, through the sync bridge.
    let on_thread = {
        let hive = Arc::clone(&hive);
        std::thread::spawn(move || hivekit_runtime::execute(follow(hive, ROUNDS)))
    };
    let writer = {
        let hive = Arc::clone(&hive);
        tokio::spawn(async move {
            for _ in 0..ROUNDS {
                hive.decide().await.unwrap();
                if hive.memory().version() % 7 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    tokio::time::timeout(BOUND, writer)
        .await
        .expect("the rounds end")
        .unwrap();
    for follower in followers {
        let seen = tokio::time::timeout(BOUND, follower)
            .await
            .expect("a follower missed the last commit")
            .unwrap();
        assert!((1..=ROUNDS).contains(&seen));
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(on_thread.join());
    });
    let seen = tokio::task::spawn_blocking(move || receiver.recv_timeout(BOUND))
        .await
        .unwrap()
        .expect("the thread follower missed the last commit")
        .expect("the thread follower panicked");
    assert!((1..=ROUNDS).contains(&seen));

    // Behind already: returns at once with the current version.
    let now = tokio::time::timeout(Duration::from_secs(1), hive.memory().changed(3))
        .await
        .expect("at once")
        .unwrap();
    assert_eq!(now.version(), ROUNDS);
}
