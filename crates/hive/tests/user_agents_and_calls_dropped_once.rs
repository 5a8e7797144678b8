//! Every agent, and every call future a round starts, is dropped exactly once: rounds running on
//! several tasks are aborted half way and the hive dropped, with calls answered, hung, timed out
//! and no longer waited for, light and heavy (counted with atomics, as kameo's tests count stops).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Contest, Hive, ProposalOf, ResourceCost,
    Snapshot, State, Vote,
};

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u8;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

#[derive(Default)]
struct Counts {
    calls_started: AtomicUsize,
    calls_dropped: AtomicUsize,
}

/// Held by a call's future across its awaits.
struct CallGuard(Arc<Counts>);

impl CallGuard {
    fn new(counts: &Arc<Counts>) -> Self {
        counts.calls_started.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(counts))
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.calls_dropped.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Prompt,
    HangPropose,
    HangVote,
    SlowVote,
}

struct Member {
    mode: Mode,
    heavy: bool,
    key: u8,
    counts: Arc<Counts>,
    /// This agent's own drop count: must end at exactly 1.
    drops: Arc<AtomicUsize>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl Agent<Sum> for Member {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        let _guard = CallGuard::new(&self.counts);
        tokio::task::yield_now().await;
        if let Mode::HangPropose = self.mode {
            std::future::pending::<()>().await;
        }
        Ok(Some(ctx.proposal(1).writes([self.key])))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
        contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        let _guard = CallGuard::new(&self.counts);
        match self.mode {
            Mode::HangVote => std::future::pending::<()>().await,
            Mode::SlowVote => tokio::time::sleep(Duration::from_millis(5)).await,
            _ => tokio::task::yield_now().await,
        }
        Ok(contest.preferred().map_or(Vote::Abstain, Vote::For))
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}");
}

fn populate(hive: &Hive<Sum>, agents: usize, counts: &Arc<Counts>) -> Vec<Arc<AtomicUsize>> {
    let modes = [
        Mode::Prompt,
        Mode::HangPropose,
        Mode::HangVote,
        Mode::SlowVote,
    ];
    (0..agents)
        .map(|i| {
            let drops = Arc::new(AtomicUsize::new(0));
            hive.spawn(Member {
                mode: modes[i % modes.len()],
                heavy: i % 3 == 0,
                key: (i % 4) as u8,
                counts: Arc::clone(counts),
                drops: Arc::clone(&drops),
            });
            drops
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aborted_rounds_and_a_dropped_hive_drop_every_agent_and_call_exactly_once() {
    let counts = Arc::new(Counts::default());
    let hive = Hive::builder(Sum::default())
        .policy(ConsensusPolicy::majority())
        .agent_timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let drops = populate(&hive, 40, &counts);

    // Complete rounds first (timeouts, settled ballots dropping hung voters), then rounds aborted
    // half way.
    for _ in 0..2 {
        let decision = tokio::time::timeout(Duration::from_secs(10), hive.decide())
            .await
            .expect("a round must end")
            .expect("a round decides");
        assert!(decision.version > 0 || decision.accepted.is_empty());
    }
    let mut rounds = Vec::new();
    for _ in 0..6 {
        let hive = hive.clone();
        rounds.push(tokio::spawn(async move { hive.decide().await }));
    }
    // Let the rounds get going: wait until their calls have started.
    let before = counts.calls_started.load(Ordering::SeqCst);
    wait_until("the spawned rounds start calls", || {
        counts.calls_started.load(Ordering::SeqCst) >= before + 40
    })
    .await;
    for round in &rounds {
        round.abort();
    }
    for round in rounds {
        let _ = round.await;
    }
    drop(hive);

    wait_until(
        "every agent is dropped once the hive and its rounds are gone",
        || drops.iter().all(|d| d.load(Ordering::SeqCst) >= 1),
    )
    .await;
    wait_until("every call future is dropped", || {
        counts.calls_dropped.load(Ordering::SeqCst) == counts.calls_started.load(Ordering::SeqCst)
    })
    .await;
    // Nothing is dropped twice.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for (i, d) in drops.iter().enumerate() {
        assert_eq!(d.load(Ordering::SeqCst), 1, "agent {i} dropped once");
    }
    assert_eq!(
        counts.calls_dropped.load(Ordering::SeqCst),
        counts.calls_started.load(Ordering::SeqCst),
        "every call future dropped exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_round_leaves_no_call_future_alive() {
    let counts = Arc::new(Counts::default());
    let hive = Hive::builder(Sum::default())
        .policy(ConsensusPolicy::majority())
        .agent_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let _drops = populate(&hive, 24, &counts);
    for round in 0..3 {
        tokio::time::timeout(Duration::from_secs(10), hive.decide())
            .await
            .expect("a round must end")
            .expect("a round decides");
        // Heavy calls are aborted tasks: their futures go when the runtime runs the abort.
        wait_until(
            &format!("round {round}: every call future is dropped once the round has returned"),
            || {
                counts.calls_dropped.load(Ordering::SeqCst)
                    == counts.calls_started.load(Ordering::SeqCst)
            },
        )
        .await;
    }
}
