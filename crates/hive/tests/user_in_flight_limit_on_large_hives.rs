//! `max_in_flight` on a large hive (hundreds of agents, split over the worker threads): "at most
//! this many agent calls run at once in a round", counted inside the agents, in both phases, and
//! every agent is still asked exactly once.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{Agent, AgentContext, AgentError, Contest, Hive, Snapshot, Vote};
use support::{add, Ledger, LedgerProposal};

struct Counters {
    now: AtomicUsize,
    most: AtomicUsize,
    proposes: AtomicUsize,
    votes: AtomicUsize,
}

struct Out<'a>(&'a AtomicUsize);
impl Drop for Out<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Counters {
    async fn busy(&self, slow: bool) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        let _out = Out(&self.now);
        self.most.fetch_max(now, Ordering::SeqCst);
        if slow {
            tokio::time::sleep(Duration::from_millis(1)).await;
        } else {
            // Some busy work so the round judges a split worth it.
            let mut x = 0_u64;
            for i in 0..20_000_u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            tokio::task::yield_now().await;
        }
    }
}

struct Worker {
    counters: Arc<Counters>,
    slow: bool,
    contest: bool,
}

impl Agent<Ledger> for Worker {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.counters.proposes.fetch_add(1, Ordering::SeqCst);
        self.counters.busy(self.slow).await;
        if self.contest {
            Ok(Some(add(ctx.proposal_id().0, 0, 1)))
        } else {
            Ok(Some(add(ctx.proposal_id().0, ctx.agent().0, 1)))
        }
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        self.counters.votes.fetch_add(1, Ordering::SeqCst);
        self.counters.busy(self.slow).await;
        Ok(contest.preferred().map_or(Vote::Abstain, Vote::For))
    }
}

async fn run(agents: usize, limit: usize, slow: bool, contest: bool) {
    let hive = Hive::builder(Ledger::default())
        .max_in_flight(std::num::NonZeroUsize::new(limit).unwrap())
        .build()
        .unwrap();
    let counters = Arc::new(Counters {
        now: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
        proposes: AtomicUsize::new(0),
        votes: AtomicUsize::new(0),
    });
    hive.spawn_many(agents, |_| Worker {
        counters: Arc::clone(&counters),
        slow,
        contest,
    });
    let decision = tokio::time::timeout(Duration::from_secs(12), hive.decide())
        .await
        .expect("the round ends")
        .unwrap();
    assert!(
        decision.failures.is_empty(),
        "{:?}",
        decision.failures.first()
    );
    assert_eq!(counters.proposes.load(Ordering::SeqCst), agents);
    let most = counters.most.load(Ordering::SeqCst);
    assert!(
        most <= limit,
        "agents {agents} limit {limit} slow {slow} contest {contest}: {most} calls ran at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_hive_of_slow_agents_never_exceeds_max_in_flight_when_proposing() {
    for limit in [3_usize, 5, 8] {
        run(800, limit, true, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_hive_of_busy_agents_never_exceeds_max_in_flight_when_proposing() {
    for limit in [3_usize, 5, 8] {
        run(800, limit, false, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_contested_hive_never_exceeds_max_in_flight_when_voting() {
    for limit in [3_usize, 7] {
        run(600, limit, true, true).await;
    }
}

#[test]
fn a_large_hive_decided_from_a_plain_thread_never_exceeds_max_in_flight() {
    for limit in [3_usize, 5] {
        hivekit_runtime::execute(run(800, limit, false, false));
        hivekit_runtime::execute(run(800, limit, true, false));
    }
}
