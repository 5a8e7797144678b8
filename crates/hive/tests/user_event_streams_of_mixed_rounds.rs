//! Rounds over a mix of failing, hanging, heavy, batch, role-excluded and interest-limited agents: every event stream, decision, stats delta and ballot electorate agree.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, ConsensusPolicy, Contest, Decision, FailureKind,
    Hive, HiveEvent, HiveEventSink, HiveStats, Interest, ProposalOf, ResourceCost, Role, Snapshot,
    Vote,
};
use parking_lot::Mutex;
use support::{Add, Ledger};
use tokio::sync::mpsc::UnboundedReceiver;

const BOUND: Duration = Duration::from_secs(60);
const AGENTS: u64 = 40;
const KEYS: u64 = 4;

/// (round, agent, contest key) for every contest an agent was asked to vote on.
type Asked = Arc<Mutex<Vec<(u64, AgentId, u64)>>>;

struct Mixed {
    i: u64,
    asked: Asked,
}

impl Mixed {
    fn hangs_voting(&self) -> bool {
        self.i % 5 == 2
    }
}

impl Agent<Ledger> for Mixed {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        tokio::task::yield_now().await;
        if self.i % 7 == 3 {
            return Err(AgentError::msg("refuses to propose"));
        }
        if self.i % 11 == 5 {
            panic!("proposer {} exploded", self.i);
        }
        if self.i % 3 == 0 {
            return Ok(None);
        }
        let key = self.i % KEYS;
        let id = ctx.proposal_id();
        Ok(Some(ctx.proposal(Add { id, key, delta: 1 }).writes([key])))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        self.asked
            .lock()
            .push((ctx.round(), ctx.agent(), contest.key));
        if self.hangs_voting() {
            std::future::pending::<()>().await;
        }
        tokio::task::yield_now().await;
        let pick = (self.i as usize) % contest.candidates.len();
        Ok(Vote::For(contest.candidates[pick].id))
    }

    fn batch_votes(&self) -> bool {
        self.i % 4 == 3
    }

    async fn vote_all(
        &self,
        ctx: &AgentContext,
        view: &Snapshot<Ledger>,
        contests: &[&Contest<Ledger>],
    ) -> Result<Vec<Vote>, AgentError> {
        let mut votes = Vec::new();
        for contest in contests {
            votes.push(self.vote(ctx, view, contest).await?);
        }
        if self.i % 8 == 7 {
            votes.push(Vote::Abstain); // one too many
        }
        Ok(votes)
    }

    fn role(&self) -> Role {
        if self.i % 9 == 4 {
            Role::Validator
        } else if self.i % 2 == 0 {
            Role::Analyzer
        } else {
            Role::Resolver
        }
    }

    fn cost(&self) -> ResourceCost {
        if self.i % 6 == 1 {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }

    fn interest(&self) -> Interest<u64> {
        match self.i % 10 {
            6 => Interest::Keys(vec![0, 1]),
            8 => Interest::Matching,
            _ => Interest::All,
        }
    }

    fn interested(&self, contest: &Contest<Ledger>) -> bool {
        contest.key % 2 == 0
    }
}

fn wants(i: u64, key: u64) -> bool {
    match i % 10 {
        6 => key <= 1,
        8 => key % 2 == 0,
        _ => true,
    }
}

fn drain(events: &mut UnboundedReceiver<HiveEvent<u64>>) -> Vec<HiveEvent<u64>> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        out.push(event);
    }
    out
}

fn check_round(
    decision: &Decision<Ledger>,
    events: &[HiveEvent<u64>],
    before: HiveStats,
    after: HiveStats,
) {
    let round = decision.round;
    assert!(events.iter().all(|e| e.round() == round), "{events:#?}");
    match events.first() {
        Some(HiveEvent::RoundStarted {
            agents, version, ..
        }) => {
            assert_eq!(*agents, decision.agents);
            assert_eq!(*version, decision.base_version);
        }
        other => panic!("round {round} began with {other:?}"),
    }
    let terminals: Vec<&HiveEvent<u64>> = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                HiveEvent::Committed { .. } | HiveEvent::NothingToCommit { .. }
            )
        })
        .collect();
    assert_eq!(terminals.len(), 1, "round {round}: {events:#?}");
    assert_eq!(Some(terminals[0]), events.last(), "terminal event is last");
    match terminals[0] {
        HiveEvent::Committed {
            version,
            accepted,
            rebased,
            ..
        } => {
            assert_eq!(*version, decision.version);
            assert_eq!(*accepted, decision.accepted.len());
            assert_eq!(*rebased, decision.rebased);
        }
        _ => assert!(decision.accepted.is_empty()),
    }
    let proposals_in: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            HiveEvent::ProposalsIn { proposals, .. } => Some(*proposals),
            _ => None,
        })
        .collect();
    assert_eq!(proposals_in, vec![decision.proposals]);
    let found: Vec<(u64, Vec<_>)> = events
        .iter()
        .filter_map(|e| match e {
            HiveEvent::ConflictFound {
                key, candidates, ..
            } => Some((*key, candidates.clone())),
            _ => None,
        })
        .collect();
    let ballots: Vec<(u64, Vec<_>)> = decision
        .ballots
        .iter()
        .map(|b| (b.key, b.candidates.clone()))
        .collect();
    assert_eq!(found, ballots, "ConflictFound vs ballots in round {round}");
    let settled: Vec<(u64, hivekit_hive::Tally, usize)> = events
        .iter()
        .filter_map(|e| match e {
            HiveEvent::BallotSettled {
                key, tally, votes, ..
            } => Some((*key, tally.clone(), *votes)),
            _ => None,
        })
        .collect();
    let records: Vec<(u64, hivekit_hive::Tally, usize)> = decision
        .ballots
        .iter()
        .map(|b| (b.key, b.tally.clone(), b.votes))
        .collect();
    assert_eq!(
        settled, records,
        "BallotSettled vs ballots in round {round}"
    );
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            HiveEvent::AgentFailed { failure, .. } => Some(failure.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed, decision.failures,
        "AgentFailed vs failures in round {round}"
    );

    let delta = |f: fn(&HiveStats) -> u64| f(&after) - f(&before);
    assert_eq!(delta(|s| s.rounds), 1);
    assert_eq!(delta(|s| s.proposals), decision.proposals as u64);
    assert_eq!(delta(|s| s.accepted), decision.accepted.len() as u64);
    assert_eq!(delta(|s| s.rejected), decision.rejected.len() as u64);
    assert_eq!(delta(|s| s.conflicts), decision.ballots.len() as u64);
    assert_eq!(
        delta(|s| s.votes),
        decision.ballots.iter().map(|b| b.votes as u64).sum::<u64>()
    );
    assert_eq!(
        delta(|s| s.cancelled_votes),
        decision
            .ballots
            .iter()
            .map(|b| b.cancelled as u64)
            .sum::<u64>()
    );
    let count = |pred: fn(&FailureKind) -> bool| {
        decision.failures.iter().filter(|f| pred(&f.kind)).count() as u64
    };
    assert_eq!(
        delta(|s| s.timeouts),
        count(|k| matches!(k, FailureKind::TimedOut | FailureKind::Cancelled))
    );
    assert_eq!(
        delta(|s| s.panics),
        count(|k| matches!(k, FailureKind::Panicked { .. }))
    );
    assert_eq!(
        delta(|s| s.errors),
        count(|k| matches!(k, FailureKind::Errored { .. }))
    );
    assert_eq!(
        delta(|s| s.invalid),
        count(|k| matches!(
            k,
            FailureKind::DuplicateProposal { .. }
                | FailureKind::InvalidVote { .. }
                | FailureKind::WrongVoteCount { .. }
        ))
    );
    assert_eq!(
        delta(|s| s.commits),
        u64::from(!decision.accepted.is_empty())
    );
}

async fn run(multi: bool) {
    let (sink, mut events) = HiveEventSink::channel();
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(1))
        .policy(ConsensusPolicy::majority().with_weighted(true))
        .voting_roles([Role::Analyzer, Role::Resolver])
        .max_in_flight(std::num::NonZeroUsize::new(if multi { 7 } else { 0 }))
        .events(sink)
        .build()
        .unwrap();
    let asked: Asked = Arc::default();
    let mut index: BTreeMap<AgentId, u64> = BTreeMap::new();
    for i in 0..AGENTS {
        let id = hive.spawn(Mixed {
            i,
            asked: Arc::clone(&asked),
        });
        index.insert(id, i);
    }
    assert_eq!(
        hive.agents_with_role(&Role::Validator),
        index
            .iter()
            .filter(|(_, i)| *i % 9 == 4)
            .map(|(id, _)| *id)
            .collect::<Vec<_>>()
    );
    for round in 1..=4u64 {
        // Weights change between rounds; the next ballots count the new ones.
        for (id, i) in &index {
            let weight = ((i + round) % 4) as f64 * 0.75;
            hive.set_weight(*id, weight).unwrap();
        }
        let before = hive.stats();
        let decision = tokio::time::timeout(BOUND, hive.decide())
            .await
            .expect("round hung")
            .unwrap();
        let after = hive.stats();
        let events = drain(&mut events);
        check_round(&decision, &events, before, after);
        assert!(
            !decision.ballots.is_empty(),
            "the mix is meant to have conflicts"
        );
        // Electorates: voting roles, interest and the current weights.
        for ballot in &decision.ballots {
            for record in ballot.voters() {
                let i = index[&record.voter];
                assert_ne!(
                    i % 9,
                    4,
                    "a Validator is in the electorate of {}",
                    ballot.key
                );
                assert!(
                    wants(i, ballot.key),
                    "agent {i} is not interested in key {} but is in its electorate",
                    ballot.key
                );
                assert_eq!(
                    record.weight,
                    hive.weight(record.voter).unwrap(),
                    "round {round}: the ballot on {} counted agent {i} with a stale weight",
                    ballot.key
                );
            }
        }
        // Calls: nobody outside the voting roles, nobody about a contest it does not want.
        for (r, agent, key) in asked.lock().iter().filter(|(r, ..)| *r == round) {
            let i = index[agent];
            assert_eq!(*r, round);
            assert_ne!(i % 9, 4, "Validator agent {i} was asked to vote on {key}");
            assert!(
                wants(i, *key),
                "agent {i} asked about key {key} it has no interest in"
            );
        }
        // Batch voters answering one vote too many are typed failures.
        for failure in &decision.failures {
            if let FailureKind::WrongVoteCount { contests, votes } = failure.kind {
                assert_eq!(votes, contests + 1);
                assert_eq!(index[&failure.agent] % 8, 7);
            }
        }
    }
    let total = hive.stats();
    assert_eq!(total.rounds, 4);
}

#[tokio::test(start_paused = true)]
async fn every_round_of_a_mixed_hive_reports_consistently_on_one_thread() {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_round_of_a_mixed_hive_reports_consistently_with_max_in_flight() {
    run(true).await;
}
