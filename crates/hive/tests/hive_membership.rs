//! Membership and concurrency: agents joining and leaving while rounds run, concurrent rounds on one
//! hive, large hives.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{AgentContext, ConcurrencyLimit, Hive, ProposalId};
use support::{Behaviour, Incrementer, Ledger, Writer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_rounds_lose_no_committed_change() {
    for heavy in [false, true] {
        let hive = Hive::new(Ledger::default());
        let ids = Arc::new(AtomicU64::new(0));
        hive.spawn_many(16, |_| Incrementer {
            ids: Arc::clone(&ids),
            heavy,
        });
        let rounds: Vec<_> = (0..8)
            .map(|_| {
                let hive = hive.clone();
                tokio::spawn(async move { hive.decide().await })
            })
            .collect();
        let mut accepted = Vec::new();
        let mut versions = HashSet::new();
        for round in rounds {
            let decision = round.await.unwrap().unwrap();
            assert_eq!(decision.accepted.len(), 16);
            assert!(
                versions.insert(decision.version),
                "two rounds committed the same version"
            );
            accepted.extend(decision.accepted);
        }
        let memory = hive.memory().load();
        assert_eq!(memory.version(), 8);
        // Every accepted change is in the final state exactly once.
        let mut logged = memory.log.clone();
        logged.sort();
        accepted.sort();
        assert_eq!(logged, accepted);
        assert_eq!(memory.counters.values().sum::<i64>(), 8 * 16);
        let stats = hive.stats();
        assert_eq!((stats.rounds, stats.commits, stats.accepted), (8, 8, 128));
    }
}

#[tokio::test(start_paused = true)]
async fn agents_join_and_leave_while_a_round_runs() {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (proposals, votes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let leaving = hive.spawn(
        Writer::new(1, 1)
            .proposing(Behaviour::Slow(Duration::from_secs(1)))
            .counting(&proposals, &votes),
    );
    hive.spawn(Writer::new(2, 2).proposing(Behaviour::Slow(Duration::from_secs(1))));
    let round = hive.decide();
    let membership = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Mid-round: one member leaves, one joins.
        assert!(hive.remove(leaving));
        hive.spawn(Writer::new(3, 3))
    };
    let (decision, joined) = tokio::join!(round, membership);
    let decision = decision.unwrap();
    // The running round asks the agents that were members when it started.
    assert_eq!(decision.agents, 2);
    let mut accepted = decision.accepted.clone();
    accepted.sort();
    assert_eq!(accepted, [ProposalId(1), ProposalId(2)]);
    assert_eq!(proposals.load(Ordering::SeqCst), 1);
    // The next round sees the new membership.
    assert!(hive.contains(joined) && !hive.contains(leaving));
    let next = hive.decide().await.unwrap();
    assert_eq!(next.agents, 2);
    assert!(next.failures.iter().all(|failure| failure.agent != leaving));
    assert_eq!(proposals.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawning_and_removing_from_threads_while_rounds_run() {
    let hive = Hive::new(Ledger::default());
    let ids = Arc::new(AtomicU64::new(0));
    hive.spawn(Incrementer {
        ids: Arc::clone(&ids),
        heavy: false,
    });
    let churn = {
        let hive = hive.clone();
        let ids = Arc::clone(&ids);
        std::thread::spawn(move || {
            let mut kept = 0;
            for round in 0..200 {
                let id = hive.spawn(Incrementer {
                    ids: Arc::clone(&ids),
                    heavy: false,
                });
                if round % 2 == 0 {
                    assert!(hive.remove(id));
                } else {
                    kept += 1;
                }
            }
            kept
        })
    };
    let mut accepted = 0;
    for _ in 0..20 {
        accepted += hive.decide().await.unwrap().accepted.len();
    }
    let kept = tokio::task::spawn_blocking(move || churn.join().unwrap())
        .await
        .unwrap();
    assert_eq!(hive.len(), 1 + kept);
    let memory = hive.memory().load();
    assert_eq!(memory.log.len(), accepted);
    assert_eq!(memory.counters.values().sum::<i64>(), accepted as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_agents_spawn_cheaply_and_decide() {
    let hive = Hive::new(Ledger::default());
    let ids = Arc::new(AtomicU64::new(0));
    let spawned = hive.spawn_many(10_000, |_| Incrementer {
        ids: Arc::clone(&ids),
        heavy: false,
    });
    assert_eq!(hive.len(), 10_000);
    let unique: HashSet<_> = spawned.iter().collect();
    assert_eq!(unique.len(), 10_000);
    assert_eq!(hive.agents(), spawned);
    // Large hives are split into chunks polled on every worker: every agent is still asked once.
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.agents, 10_000);
    assert_eq!(decision.accepted.len(), 10_000);
    assert_eq!(ids.load(Ordering::SeqCst), 10_000);
    assert_eq!(hive.memory().load().log.len(), 10_000);
    for id in &spawned[..5_000] {
        assert!(hive.remove(*id));
    }
    assert_eq!(hive.len(), 5_000);
}

/// Sleeps on its first call only, so that a first round is overtaken by a second.
struct SlowFirst {
    calls: AtomicU64,
}

impl hivekit_hive::Agent<Ledger> for SlowFirst {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &hivekit_hive::Snapshot<Ledger>,
    ) -> Result<Option<support::LedgerProposal>, hivekit_hive::AgentError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if call == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(Some(support::add(call, 7, 1)))
    }
}

#[tokio::test(start_paused = true)]
async fn a_round_overtaken_by_another_rebases_its_changes() {
    let hive = Hive::new(Ledger::default());
    hive.spawn(SlowFirst {
        calls: AtomicU64::new(0),
    });
    let (first, second) = tokio::join!(hive.decide(), async {
        tokio::task::yield_now().await;
        hive.decide().await
    });
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(!second.rebased);
    assert_eq!((second.base_version, second.version), (0, 1));
    // The first round saw version 0 but committed after the second: its change is applied on top.
    assert!(first.rebased);
    assert_eq!((first.base_version, first.version), (0, 2));
    let memory = hive.memory().load();
    assert_eq!(memory.counters[&7], 2);
    assert_eq!(memory.log, [ProposalId(1), ProposalId(0)]);
    assert_eq!(hive.stats().rebases, 1);
}

/// Counts how many of its kind are inside `propose` at once.
struct Gauge {
    id: u64,
    current: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl hivekit_hive::Agent<Ledger> for Gauge {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _: &hivekit_hive::Snapshot<Ledger>,
    ) -> Result<Option<support::LedgerProposal>, hivekit_hive::AgentError> {
        let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        self.current.fetch_sub(1, Ordering::SeqCst);
        Ok(Some(support::add(self.id, self.id, 1)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_holds_when_a_large_hive_is_split_over_workers() {
    for bound in [1, 4, 64] {
        let hive = Hive::builder(Ledger::default())
            .max_in_flight(ConcurrencyLimit::new(bound).unwrap())
            .build()
            .unwrap();
        let (current, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        hive.spawn_many(2_000, |index| Gauge {
            id: index as u64,
            current: Arc::clone(&current),
            peak: Arc::clone(&peak),
        });
        let decision = hive.decide().await.unwrap();
        assert_eq!(decision.accepted.len(), 2_000);
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            peak <= bound,
            "{peak} calls in flight with a bound of {bound}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballots_split_over_workers_settle_every_contest() {
    use support::{Choice, Writer};
    // 300 agents on 30 keys: 30 contests of 10, 9000 (contest, voter) pairs, split over both
    // workers. A few voters fail, the rest back the preferred candidate.
    let hive = Hive::new(Ledger::default());
    for id in 0..300u64 {
        let writer = Writer::new(id, id % 30);
        let writer = if id % 50 == 7 {
            writer.voting(Behaviour::Fail)
        } else {
            writer.choosing(Choice::Preferred)
        };
        hive.spawn(writer);
    }
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.ballots.len(), 30);
    let mut keys: Vec<u64> = decision.ballots.iter().map(|ballot| ballot.key).collect();
    keys.sort_unstable();
    assert_eq!(keys, (0..30).collect::<Vec<_>>());
    for ballot in &decision.ballots {
        let winner = ballot.tally.winner().expect("every contest is decided");
        // The preferred candidate: equal priorities, so the lowest id, which is the key itself.
        assert_eq!(winner, ProposalId(ballot.key));
        // Settled early: about half the voters decide it, the rest are never asked.
        assert!(ballot.votes >= 100, "{} votes", ballot.votes);
        assert!(ballot.cancelled > 0 && ballot.votes + ballot.cancelled <= 300);
    }
    let mut accepted = decision.accepted.clone();
    accepted.sort();
    assert_eq!(accepted, (0..30).map(ProposalId).collect::<Vec<_>>());
    assert_eq!(decision.rejected.len(), 270);
    assert_eq!(hive.memory().load().log.len(), 30);
}
