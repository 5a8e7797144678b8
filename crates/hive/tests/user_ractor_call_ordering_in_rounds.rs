//! Ractor's and kameo's ordering guarantees (a message is handled after the ones sent before it;
//! a supervisor hears of a failure after it happened), ported to a round's calls and events: a
//! round's events come in the order things happened, and its phases do not overlap. No propose
//! call starts before `RoundStarted` or ends after `ProposalsIn`; no vote call on a key starts
//! before `ProposalsIn` and that key's `ConflictFound`; every counted vote ended before its
//! ballot's `BallotSettled`; the terminal event is the round's last event; and rounds held one
//! after another never interleave their calls. Light and heavy agents, with and without
//! `max_in_flight`, on a multi-thread runtime, each case over several rounds.

use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Contest, Decision, Hive, HiveEvent, HiveEventSink,
    ProposalOf, ResourceCost, Snapshot, State, Vote, VoterChoice,
};
use parking_lot::Mutex;

const BOUND: Duration = Duration::from_secs(10);
const KEYS: u64 = 3;

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// One thing that happened, in the order the shared log saw it.
#[derive(Debug, Clone)]
enum Entry {
    Event(HiveEvent<u64>),
    ProposeStart(u64, AgentId),
    ProposeEnd(u64, AgentId),
    VoteStart(u64, AgentId, u64),
    VoteEnd(u64, AgentId, u64),
}

type Log = Arc<Mutex<Vec<Entry>>>;

/// Proposes on key `index % KEYS` (or fails), votes for the preferred candidate after a pause.
struct Caller {
    index: u64,
    heavy: bool,
    log: Log,
}

impl Agent<Sum> for Caller {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        self.log
            .lock()
            .push(Entry::ProposeStart(ctx.round(), ctx.agent()));
        tokio::time::sleep(Duration::from_millis(self.index % 3)).await;
        self.log
            .lock()
            .push(Entry::ProposeEnd(ctx.round(), ctx.agent()));
        if self.index % 5 == 4 {
            return Err(AgentError::msg("scripted failure"));
        }
        Ok(Some(ctx.proposal(1).writes([self.index % KEYS])))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
        contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        self.log
            .lock()
            .push(Entry::VoteStart(ctx.round(), ctx.agent(), contest.key));
        tokio::time::sleep(Duration::from_millis(1 + self.index % 4)).await;
        tokio::task::yield_now().await;
        self.log
            .lock()
            .push(Entry::VoteEnd(ctx.round(), ctx.agent(), contest.key));
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

/// The position of the first entry matching `find`.
fn position(log: &[Entry], find: impl Fn(&Entry) -> bool) -> Option<usize> {
    log.iter().position(find)
}

fn check_round(log: &[Entry], decision: &Decision<Sum>, strict_tail: bool, case: &str) {
    let round = decision.round;
    let case = format!("{case}, round {round}");
    let event = |find: &dyn Fn(&HiveEvent<u64>) -> bool| {
        position(
            log,
            |entry| matches!(entry, Entry::Event(event) if event.round() == round && find(event)),
        )
    };
    let started = event(&|e| matches!(e, HiveEvent::RoundStarted { .. })).expect("RoundStarted");
    let proposals_in = event(&|e| matches!(e, HiveEvent::ProposalsIn { .. })).expect("ProposalsIn");
    let terminal = event(&|e| {
        matches!(
            e,
            HiveEvent::Committed { .. } | HiveEvent::NothingToCommit { .. }
        )
    })
    .expect("a terminal event");
    for (index, entry) in log.iter().enumerate() {
        match entry {
            Entry::Event(event) if event.round() == round => {
                assert!(
                    (started..=terminal).contains(&index),
                    "{case}: {event:?} at {index} outside {started}..={terminal}"
                );
            }
            Entry::ProposeStart(r, agent) | Entry::ProposeEnd(r, agent) if *r == round => {
                assert!(
                    started < index && index < proposals_in,
                    "{case}: {entry:?} of {agent} at {index} outside the propose phase {started}..{proposals_in}"
                );
            }
            Entry::VoteStart(r, agent, key) if *r == round => {
                let conflict =
                    event(&|e| matches!(e, HiveEvent::ConflictFound { key: k, .. } if k == key))
                        .unwrap_or_else(|| panic!("{case}: a vote on {key} without a conflict"));
                assert!(
                    index > proposals_in && index > conflict,
                    "{case}: {agent} asked to vote on {key} at {index}, before ProposalsIn ({proposals_in}) or ConflictFound ({conflict})"
                );
                if strict_tail {
                    assert!(
                        index < terminal,
                        "{case}: a light vote call after the round ended"
                    );
                }
            }
            _ => {}
        }
    }
    for ballot in &decision.ballots {
        let settled =
            event(&|e| matches!(e, HiveEvent::BallotSettled { key, .. } if *key == ballot.key))
                .unwrap_or_else(|| panic!("{case}: no BallotSettled on {}", ballot.key));
        for record in ballot.voters() {
            if matches!(record.choice, VoterChoice::For(_) | VoterChoice::Abstain) {
                let ended = position(log, |entry| {
                    matches!(entry, Entry::VoteEnd(r, agent, key)
                        if *r == round && *agent == record.voter && *key == ballot.key)
                })
                .unwrap_or_else(|| {
                    panic!(
                        "{case}: a counted vote of {} that never ended",
                        record.voter
                    )
                });
                assert!(
                    ended < settled,
                    "{case}: {}'s counted vote on {} ended at {ended}, after its ballot settled at {settled}",
                    record.voter,
                    ballot.key
                );
            }
        }
    }
}

async fn run_case(agents: u64, heavy_every: Option<u64>, limit: Option<usize>) {
    let case = format!("{agents} agents, heavy every {heavy_every:?}, {limit:?}");
    let log: Log = Arc::default();
    let mut builder = Hive::builder(Sum::default());
    if let Some(limit) = limit {
        builder = builder.max_in_flight(limit);
    }
    let hive = builder
        .events(HiveEventSink::callback({
            let log = Arc::clone(&log);
            move |event| log.lock().push(Entry::Event(event))
        }))
        .build()
        .unwrap();
    for index in 0..agents {
        hive.spawn(Caller {
            index,
            heavy: heavy_every.is_some_and(|every| index % every == 0),
            log: Arc::clone(&log),
        });
    }
    let mut decisions = Vec::new();
    for _ in 0..3 {
        let decision = tokio::time::timeout(BOUND, hive.decide())
            .await
            .expect("the round ends")
            .expect("the round decides");
        assert_eq!(decision.ballots.len() as u64, KEYS, "{case}: {decision}");
        decisions.push(decision);
    }
    let log = log.lock().clone();
    let light = heavy_every.is_none();
    for decision in &decisions {
        check_round(&log, decision, light, &case);
    }
    if light {
        // Rounds held one after another never interleave their calls or events.
        let rounds: Vec<u64> = log
            .iter()
            .map(|entry| match entry {
                Entry::Event(event) => event.round(),
                Entry::ProposeStart(r, _)
                | Entry::ProposeEnd(r, _)
                | Entry::VoteStart(r, _, _)
                | Entry::VoteEnd(r, _, _) => *r,
            })
            .collect();
        assert!(
            rounds.windows(2).all(|pair| pair[0] <= pair[1]),
            "{case}: rounds interleaved: {rounds:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn light_agents_see_phases_in_order_and_events_after_what_they_report() {
    run_case(12, None, None).await;
    run_case(40, None, Some(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_light_and_heavy_agents_see_phases_in_order_and_events_after_what_they_report() {
    run_case(12, Some(2), None).await;
    run_case(30, Some(3), Some(4)).await;
    run_case(9, Some(1), Some(2)).await;
}
