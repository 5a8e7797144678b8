//! Kameo's restart-policy tests (`max_restarts_exceeded_stops_restarting`,
//! `one_for_one_only_restarts_failed_child`, `one_for_one_multiple_independent_failures`,
//! `transient_no_restart_on_normal_exit`) ported to hive supervision: a quarantine is the hive's
//! restart (the agent sits out, then rejoins with a clean record), removal is "never restart", and
//! the restart hook is the supervisor's own code. The hive has no restart limit of its own; the
//! hook must be able to add one by removing the agent from inside the round. Supervision is one
//! for one: a failing agent's siblings are neither supervised nor skipped. What is not the agent's
//! fault (proposing nothing, losing a vote, a vote the round stopped waiting for, a call cut short
//! by the caller's cancellation) never counts. Finally the hook calls back into its hive with a
//! nested round, on a multi-thread and on a current-thread runtime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, CancellationToken, Contest, DecideOptions, Hive,
    HiveError, Priority, ProposalOf, RejectReason, Snapshot, State, Supervision, SupervisionAction,
    Vote,
};
use parking_lot::Mutex;

const BOUND: Duration = Duration::from_secs(10);

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Fails (an error) in the rounds `fails` says, else adds 1 on its own key; counts the rounds it
/// was asked in.
struct Flaky {
    key: u64,
    fails: fn(u64) -> bool,
    asked: Arc<Mutex<Vec<u64>>>,
}

impl Agent<Sum> for Flaky {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        self.asked.lock().push(ctx.round());
        if (self.fails)(ctx.round()) {
            return Err(AgentError::msg("scripted failure"));
        }
        Ok(Some(ctx.proposal(1).writes([self.key])))
    }
}

fn flaky(key: u64, fails: fn(u64) -> bool) -> (Flaky, Arc<Mutex<Vec<u64>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let agent = Flaky {
        key,
        fails,
        asked: Arc::clone(&asked),
    };
    (agent, asked)
}

#[tokio::test]
async fn a_restart_hook_can_cap_restarts_by_removing_the_agent_at_its_third_quarantine() {
    const MAX_RESTARTS: usize = 2;
    let restarts: Arc<Mutex<HashMap<AgentId, usize>>> = Arc::default();
    let removed_by_hook = Arc::new(Mutex::new(Vec::new()));
    let hive = Hive::builder(Sum::default())
        .supervision(Supervision::quarantine(1, 1))
        .on_restart({
            let restarts = Arc::clone(&restarts);
            let removed_by_hook = Arc::clone(&removed_by_hook);
            move |hive, record| {
                let mut restarts = restarts.lock();
                let count = restarts.entry(record.agent).or_default();
                *count += 1;
                if *count > MAX_RESTARTS {
                    // Past the limit: never restart (kameo stops the child for good).
                    assert!(hive.remove(record.agent), "the hook removes a member");
                    assert!(!hive.contains(record.agent));
                    assert_eq!(hive.quarantined_until(record.agent), None);
                    removed_by_hook.lock().push(record.agent);
                }
            }
        })
        .build()
        .unwrap();
    let (crasher, crasher_asked) = flaky(1, |_| true);
    let crasher = hive.spawn(crasher);
    let (steady, steady_asked) = flaky(2, |_| false);
    hive.spawn(steady);

    let mut quarantined_in = Vec::new();
    for round in 1..=9u64 {
        let decision = tokio::time::timeout(BOUND, hive.decide())
            .await
            .expect("the round ends")
            .expect("the round decides");
        assert_eq!(decision.round, round);
        for record in &decision.supervised {
            assert_eq!(record.agent, crasher);
            assert_eq!(record.action, SupervisionAction::Quarantine { rounds: 1 });
            quarantined_in.push(round);
        }
    }
    // Asked in rounds 1, 3 and 5 (sitting out 2 and 4), removed by the hook in round 5.
    assert_eq!(quarantined_in, vec![1, 3, 5]);
    assert_eq!(*crasher_asked.lock(), vec![1, 3, 5]);
    assert_eq!(*removed_by_hook.lock(), vec![crasher]);
    assert_eq!(
        steady_asked.lock().len(),
        9,
        "the sibling is asked every round"
    );
    assert!(!hive.contains(crasher));
    let stats = hive.stats();
    assert_eq!(stats.quarantines, 3);
    assert_eq!(
        stats.removals, 0,
        "a removal by the hook is not supervision's"
    );
    assert_eq!(hive.memory().load().0, 9);
}

#[tokio::test]
async fn supervision_is_one_for_one_and_counts_failed_rounds_in_a_row_per_agent() {
    let hive = Hive::builder(Sum::default())
        .supervision(Supervision::quarantine(2, 1))
        .build()
        .unwrap();
    // Fails every round it is asked in.
    let (always, always_asked) = flaky(1, |_| true);
    let always = hive.spawn(always);
    // Fails every other round: never two in a row.
    let (odd, odd_asked) = flaky(2, |round| round % 2 == 1);
    let odd = hive.spawn(odd);
    let (never, never_asked) = flaky(3, |_| false);
    let never = hive.spawn(never);

    let mut supervised = Vec::new();
    for round in 1..=8u64 {
        let decision = hive.decide().await.expect("the round decides");
        let expected_agents = if round == 3 || round == 6 { 2 } else { 3 };
        assert_eq!(
            decision.agents, expected_agents,
            "round {round}: {decision}"
        );
        for record in decision.supervised {
            supervised.push((round, record.agent, record.failures));
        }
    }
    assert_eq!(
        supervised,
        vec![(2, always, 2), (5, always, 2), (8, always, 2)],
        "only the agent failing twice in a row is quarantined ({odd} and {never} never)"
    );
    assert_eq!(*always_asked.lock(), vec![1, 2, 4, 5, 7, 8]);
    assert_eq!(*odd_asked.lock(), (1..=8).collect::<Vec<_>>());
    assert_eq!(*never_asked.lock(), (1..=8).collect::<Vec<_>>());
    assert_eq!(hive.stats().quarantines, 3);
}

/// Proposes `change` on key 0 at `priority` (or nothing), and votes as told.
struct Member {
    proposes: Option<(u64, Priority)>,
    vote: VoteHow,
}

#[derive(Clone, Copy)]
enum VoteHow {
    Preferred,
    Hang,
}

impl Agent<Sum> for Member {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        Ok(self
            .proposes
            .map(|(change, priority)| ctx.proposal(change).writes([0]).priority(priority)))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
        contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        match self.vote {
            VoteHow::Preferred => Ok(contest.preferred().map_or(Vote::Abstain, Vote::For)),
            VoteHow::Hang => std::future::pending().await,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn what_is_not_the_agents_fault_never_counts_towards_a_quarantine() {
    let hive = Hive::builder(Sum::default())
        .supervision(Supervision::quarantine(1, 100))
        .agent_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let winner = hive.spawn(Member {
        proposes: Some((10, Priority::High)),
        vote: VoteHow::Preferred,
    });
    let loser = hive.spawn(Member {
        proposes: Some((1, Priority::Low)),
        vote: VoteHow::Preferred,
    });
    let idle = hive.spawn(Member {
        proposes: None,
        vote: VoteHow::Preferred,
    });
    // Its vote is never needed: two of four votes for the lower id settle the ballot without it
    // (the other two could at most tie, and a tie goes to the lower id).
    let straggler = hive.spawn(Member {
        proposes: None,
        vote: VoteHow::Hang,
    });

    for round in 1..=5u64 {
        let decision = hive.decide().await.expect("the round decides");
        assert_eq!(decision.agents, 4, "round {round}: {decision}");
        assert_eq!(decision.proposer(decision.accepted[0]), Some(winner));
        let lost = decision.rejected[0].0;
        assert_eq!(decision.proposer(lost), Some(loser));
        assert!(matches!(
            decision.rejected[0].1,
            RejectReason::LostVote { .. }
        ));
        assert!(
            decision.ballots[0].cancelled >= 1,
            "the straggler is not waited for"
        );
        assert!(decision.failures.is_empty(), "round {round}: {decision}");
        assert!(decision.supervised.is_empty(), "round {round}: {decision}");
    }
    for agent in [winner, loser, idle, straggler] {
        assert_eq!(hive.quarantined_until(agent), None, "{agent}");
    }
    assert_eq!(hive.stats().quarantines, 0);
}

/// Never answers `propose`.
struct Hanger;

impl Agent<Sum> for Hanger {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn calls_cut_short_by_the_callers_cancellation_never_count_but_a_timeout_does() {
    let hive = Hive::builder(Sum::default())
        .supervision(Supervision::quarantine(1, 3))
        .agent_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let hanger = hive.spawn(Hanger);
    let (steady, _) = flaky(1, |_| false);
    hive.spawn(steady);

    for round in 1..=4u64 {
        let cancel = CancellationToken::new();
        let canceller = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                cancel.cancel();
            })
        };
        let outcome = hive
            .decide_with(DecideOptions::default().with_cancel(cancel))
            .await;
        assert_eq!(outcome.unwrap_err(), HiveError::Cancelled { round });
        canceller.await.unwrap();
        assert_eq!(hive.quarantined_until(hanger), None, "round {round}");
    }
    assert_eq!(hive.stats().quarantines, 0);
    assert_eq!(hive.stats().timeouts, 0);

    // Left to run, the hanging call times out: that one counts.
    let decision = hive.decide().await.expect("the round decides");
    assert_eq!(decision.failures.len(), 1, "{decision}");
    assert_eq!(decision.supervised.len(), 1, "{decision}");
    assert_eq!(hive.quarantined_until(hanger), Some(decision.round + 3));
}

/// What the nested round of a hook gave.
type Nested = Arc<Mutex<Vec<Result<u64, String>>>>;

/// A hive whose restart hook runs one nested round of its own hive, from the hook.
fn hive_with_a_nesting_hook(nested: &Nested) -> Hive<Sum> {
    let nested = Arc::clone(nested);
    Hive::builder(Sum::default())
        .supervision(Supervision::quarantine(1, 1))
        .on_restart(move |hive, _record| {
            if !nested.lock().is_empty() {
                return;
            }
            let outcome = hivekit_runtime::try_execute(hive.decide())
                .map_err(|error| error.to_string())
                .and_then(|decided| {
                    decided
                        .map(|decision| decision.round)
                        .map_err(|error| error.to_string())
                });
            nested.lock().push(outcome);
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_hook_running_a_nested_round_on_a_worker_does_not_deadlock() {
    let nested: Nested = Arc::default();
    let hive = hive_with_a_nesting_hook(&nested);
    let (crasher, _) = flaky(1, |_| true);
    let crasher = hive.spawn(crasher);
    let (steady, steady_asked) = flaky(2, |_| false);
    hive.spawn(steady);

    let outer = {
        let hive = hive.clone();
        tokio::spawn(async move { hive.decide().await })
    };
    let decision = tokio::time::timeout(BOUND, outer)
        .await
        .expect("the outer round ends")
        .expect("the task does not panic")
        .expect("the outer round decides");
    assert_eq!(decision.round, 1);
    assert_eq!(decision.supervised.len(), 1);
    assert_eq!(decision.supervised[0].agent, crasher);
    // The nested round ran inside the hook: numbered after the outer one, without the
    // quarantined agent, on top of the outer round's commit.
    assert_eq!(*nested.lock(), vec![Ok(2)]);
    assert_eq!(*steady_asked.lock(), vec![1, 2]);
    assert_eq!(hive.memory().load().0, 2);
    assert_eq!(hive.memory().version(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_restart_hook_that_cannot_block_on_a_current_thread_runtime_is_told_so_and_the_round_decides(
) {
    let nested: Nested = Arc::default();
    let hive = hive_with_a_nesting_hook(&nested);
    let (crasher, _) = flaky(1, |_| true);
    hive.spawn(crasher);
    let (steady, _) = flaky(2, |_| false);
    hive.spawn(steady);

    let decision = tokio::time::timeout(BOUND, hive.decide())
        .await
        .expect("the round ends")
        .expect("the round decides");
    assert_eq!(decision.supervised.len(), 1);
    let outcome = nested.lock().clone();
    assert_eq!(outcome.len(), 1);
    assert!(
        outcome[0].is_err(),
        "try_execute refuses to block: {outcome:?}"
    );
    assert_eq!(hive.memory().version(), 1);
    let next = hive.decide().await.expect("the next round decides");
    assert_eq!(next.round, 2);
}

#[tokio::test]
async fn counts_kept_in_a_hook_match_the_stats_and_the_decisions_under_rapid_restarts() {
    let hooks = Arc::new(AtomicUsize::new(0));
    let hive = Hive::builder(Sum::default())
        .supervision(Supervision::quarantine(2, 0))
        .on_restart({
            let hooks = Arc::clone(&hooks);
            move |_, _| {
                hooks.fetch_add(1, Ordering::SeqCst);
            }
        })
        .build()
        .unwrap();
    // Rapid successive restarts: a quarantine of zero rounds, every second failed round.
    for key in 0..4 {
        let (agent, _) = flaky(key, |_| true);
        hive.spawn(agent);
    }
    let (steady, _) = flaky(9, |_| false);
    hive.spawn(steady);
    let mut recorded = 0;
    for _ in 0..10 {
        let decision = hive.decide().await.expect("the round decides");
        assert_eq!(decision.agents, 5);
        recorded += decision.supervised.len();
    }
    assert_eq!(recorded, 4 * 5);
    assert_eq!(hooks.load(Ordering::SeqCst), recorded);
    assert_eq!(hive.stats().quarantines as usize, recorded);
}
