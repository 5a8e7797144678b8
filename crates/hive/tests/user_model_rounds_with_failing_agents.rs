//! A model-based property test of whole rounds with failing agents: random hives of 1 to 8 agents
//! (light or heavy), each agent's behaviour drawn per round and per phase (answer, return an error,
//! panic, never answer, answer late within its timeout, or, in the vote, vote for a
//! non-candidate), a random supervision policy, resolution strategy and `max_in_flight`, several
//! rounds in sequence on tokio's paused clock. After every round the hive is checked against a
//! sequential model: the decision's failures (agent, phase, kind) and supervision records, the
//! events of the round, `HiveStats`, who is a member and who is quarantined until when, the
//! memory's version, which agents were asked, and the restart hook's calls.
//!
//! Voters that answer abstain, under a plurality policy with the smallest quorum and no tie
//! break: every ballot stays open until each voter has answered or failed (one more vote for a
//! candidate would decide it), so the round waits for every vote call and the model knows every
//! failure. (Early settlement is covered by `user_voting_settlement_oracle.rs`.)

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentFailure, AgentId, ConsensusPolicy, Contest, FailureKind,
    Hive, HiveError, HiveEvent, HiveEventSink, HiveStats, Phase, ProposalId, ProposalOf,
    ResolutionStrategy, ResourceCost, Snapshot, Supervised, Supervision, SupervisionAction,
    Threshold, TieBreak, Vote,
};
use parking_lot::Mutex;
use proptest::prelude::*;
use support::{Add, Ledger};

const AGENT_TIMEOUT: Duration = Duration::from_millis(100);
/// How late a late answer comes, by index: all within `AGENT_TIMEOUT`.
const LATE: [Duration; 3] = [
    Duration::from_millis(1),
    Duration::from_millis(50),
    Duration::from_millis(99),
];
/// What an invalid vote votes for: never a candidate (hive-assigned ids are above 2^52).
const BOGUS: ProposalId = ProposalId(999);
/// The marker of this file's panics, which the quiet panic hook does not print.
const PANIC_MARKER: &str = "model panic in";

/// What an agent does in one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    Answer,
    Error,
    Panic,
    Hang,
    Late(usize),
    /// Votes for a proposal that is not a candidate (an invalid answer); in `propose`, as
    /// `Answer`.
    Invalid,
}

/// An agent's behaviour in one round.
#[derive(Debug, Clone, Copy)]
struct Turn {
    propose: Act,
    /// The key its proposal writes, if it proposes.
    key: Option<u64>,
    vote: Act,
}

/// `script[round - 1][agent index]`.
type Script = Vec<Vec<Turn>>;
/// Every call an agent received: (round, agent index, phase).
type Calls = Arc<Mutex<Vec<(u64, usize, Phase)>>>;
/// What the restart hook saw: the round's record, whether the agent was still a member, and its
/// quarantine as `Hive::quarantined_until` reported it then.
type HookCalls = Arc<Mutex<Vec<(Supervised, bool, Option<u64>)>>>;
type Events = Arc<Mutex<Vec<HiveEvent<u64>>>>;

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Propose => "propose",
        Phase::Vote => "vote",
    }
}

fn error_text(phase: Phase) -> String {
    format!("model error in {}", phase_name(phase))
}

fn panic_text(phase: Phase) -> String {
    format!("{PANIC_MARKER} {}", phase_name(phase))
}

async fn perform(act: Act, phase: Phase) -> Result<(), AgentError> {
    match act {
        Act::Answer | Act::Invalid => Ok(()),
        Act::Error => Err(AgentError::msg(error_text(phase))),
        Act::Panic => panic!("{}", panic_text(phase)),
        Act::Hang => std::future::pending().await,
        Act::Late(index) => {
            tokio::time::sleep(LATE[index]).await;
            Ok(())
        }
    }
}

struct Scripted {
    index: usize,
    heavy: bool,
    script: Arc<Script>,
    calls: Calls,
}

impl Scripted {
    fn turn(&self, ctx: &AgentContext, phase: Phase) -> Turn {
        let round = ctx.round();
        self.calls.lock().push((round, self.index, phase));
        self.script[round as usize - 1][self.index]
    }
}

impl Agent<Ledger> for Scripted {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        let turn = self.turn(ctx, Phase::Propose);
        perform(turn.propose, Phase::Propose).await?;
        Ok(turn.key.map(|key| {
            ctx.proposal(Add {
                id: ctx.proposal_id(),
                key,
                delta: 1,
            })
            .writes([key])
        }))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        _contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        let turn = self.turn(ctx, Phase::Vote);
        perform(turn.vote, Phase::Vote).await?;
        Ok(if turn.vote == Act::Invalid {
            Vote::For(BOGUS)
        } else {
            Vote::Abstain
        })
    }

    fn cost(&self) -> ResourceCost {
        support::cost(self.heavy)
    }
}

/// One generated case.
#[derive(Debug, Clone)]
struct Case {
    heavy: Vec<bool>,
    script: Script,
    supervision: Option<Supervision>,
    resolution: ResolutionStrategy,
    max_in_flight: Option<usize>,
}

fn act_strategy(vote: bool) -> impl Strategy<Value = Act> {
    let invalid = if vote { 1 } else { 0 };
    prop_oneof![
        5 => Just(Act::Answer),
        1 => Just(Act::Error),
        1 => Just(Act::Panic),
        1 => Just(Act::Hang),
        1 => (0..LATE.len()).prop_map(Act::Late),
        invalid => Just(Act::Invalid),
    ]
}

fn turn_strategy() -> impl Strategy<Value = Turn> {
    (
        act_strategy(false),
        prop::option::weighted(0.8, 0u64..3),
        act_strategy(true),
    )
        .prop_map(|(propose, key, vote)| Turn { propose, key, vote })
}

fn supervision_strategy() -> impl Strategy<Value = Option<Supervision>> {
    prop_oneof![
        1 => Just(None),
        2 => (0u32..=3, 0u32..=3).prop_map(|(max, rounds)| Some(Supervision::quarantine(max, rounds))),
        1 => (0u32..=3).prop_map(|max| Some(Supervision::remove(max))),
    ]
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (1usize..=8, 1usize..=6).prop_flat_map(|(agents, rounds)| {
        (
            prop::collection::vec(any::<bool>(), agents),
            prop::collection::vec(prop::collection::vec(turn_strategy(), agents), rounds),
            supervision_strategy(),
            prop_oneof![
                3 => Just(ResolutionStrategy::Vote),
                1 => Just(ResolutionStrategy::HighestPriority),
                1 => Just(ResolutionStrategy::RejectAll),
            ],
            prop_oneof![Just(None), (1usize..=3).prop_map(Some)],
        )
            .prop_map(
                |(heavy, script, supervision, resolution, max_in_flight)| Case {
                    heavy,
                    script,
                    supervision,
                    resolution,
                    max_in_flight,
                },
            )
    })
}

/// An agent's record in the model.
#[derive(Debug, Clone, Default)]
struct Health {
    strikes: u32,
    /// Sits out every round up to this one (0: none).
    quarantined_until: u64,
    removed: bool,
}

/// The sequential reference: what one round must do, from the documented rules alone.
#[derive(Debug, Default)]
struct Model {
    health: Vec<Health>,
    version: u64,
    stats: HiveStats,
}

/// What the model expects of one round.
#[derive(Debug)]
struct Expected {
    /// `None`: `decide` returns `HiveError::NoAgents`.
    asked: Option<Vec<usize>>,
    failures: Vec<(usize, Phase, FailureKind)>,
    supervised: Vec<(usize, u32, SupervisionAction, Option<u64>, FailureKind)>,
    proposals: usize,
    /// Agent indices whose proposals are accepted.
    accepted: Vec<usize>,
    contests: usize,
    /// Votes counted per ballot.
    votes: usize,
    version: u64,
    commits: bool,
}

fn failure_of(act: Act, phase: Phase) -> Option<FailureKind> {
    match act {
        Act::Answer | Act::Late(_) => None,
        Act::Error => Some(FailureKind::Errored {
            error: AgentError::msg(error_text(phase)),
        }),
        Act::Panic => Some(FailureKind::Panicked {
            message: panic_text(phase),
        }),
        Act::Hang => Some(FailureKind::TimedOut),
        Act::Invalid => match phase {
            Phase::Propose => None,
            Phase::Vote => Some(FailureKind::InvalidVote { candidate: BOGUS }),
        },
    }
}

/// True for the failures supervision counts (`Supervision`'s docs).
fn counted(kind: &FailureKind) -> bool {
    matches!(
        kind,
        FailureKind::TimedOut | FailureKind::Panicked { .. } | FailureKind::Errored { .. }
    )
}

fn count_in(stats: &mut HiveStats, kind: &FailureKind) {
    match kind {
        FailureKind::TimedOut | FailureKind::Cancelled => stats.timeouts += 1,
        FailureKind::Panicked { .. } => stats.panics += 1,
        FailureKind::Errored { .. } => stats.errors += 1,
        _ => stats.invalid += 1,
    }
}

impl Model {
    fn new(agents: usize) -> Self {
        Model {
            health: vec![Health::default(); agents],
            ..Model::default()
        }
    }

    fn round(
        &mut self,
        number: u64,
        turns: &[Turn],
        resolution: ResolutionStrategy,
        supervision: Option<Supervision>,
    ) -> Expected {
        self.stats.rounds += 1;
        let asked: Vec<usize> = (0..turns.len())
            .filter(|&index| {
                let health = &self.health[index];
                !health.removed && health.quarantined_until < number
            })
            .collect();
        let mut expected = Expected {
            asked: None,
            failures: Vec::new(),
            supervised: Vec::new(),
            proposals: 0,
            accepted: Vec::new(),
            contests: 0,
            votes: 0,
            version: self.version,
            commits: false,
        };
        if asked.is_empty() {
            return expected;
        }
        // Propose: the proposers, in member order (hive-assigned ids increase with it).
        let mut proposers: Vec<(usize, u64)> = Vec::new();
        for &index in &asked {
            let turn = turns[index];
            match failure_of(turn.propose, Phase::Propose) {
                Some(kind) => expected.failures.push((index, Phase::Propose, kind)),
                None => proposers.extend(turn.key.map(|key| (index, key))),
            }
        }
        let mut by_key: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for &(index, key) in &proposers {
            by_key.entry(key).or_default().push(index);
        }
        expected.proposals = proposers.len();
        expected.contests = by_key.values().filter(|group| group.len() > 1).count();
        for group in by_key.values() {
            match (group.len(), resolution) {
                (1, _) => expected.accepted.push(group[0]),
                // Equal priorities: the lowest id, the first member.
                (_, ResolutionStrategy::HighestPriority) => expected.accepted.push(group[0]),
                // Under a vote, abstentions decide nothing; under `RejectAll` nobody wins.
                _ => {}
            }
        }
        expected.accepted.sort_unstable();
        if resolution == ResolutionStrategy::Vote && expected.contests > 0 {
            // Every member votes on every contest, whatever it did in `propose`.
            for &index in &asked {
                let act = turns[index].vote;
                match failure_of(act, Phase::Vote) {
                    Some(kind) => {
                        for _ in 0..expected.contests {
                            expected.failures.push((index, Phase::Vote, kind.clone()));
                        }
                    }
                    None => expected.votes += 1,
                }
            }
        }
        for (_, _, kind) in &expected.failures {
            count_in(&mut self.stats, kind);
        }
        self.stats.proposals += expected.proposals as u64;
        self.stats.accepted += expected.accepted.len() as u64;
        self.stats.rejected += (expected.proposals - expected.accepted.len()) as u64;
        self.stats.conflicts += expected.contests as u64;
        if resolution == ResolutionStrategy::Vote {
            self.stats.votes += (expected.votes * expected.contests) as u64;
        }
        if !expected.accepted.is_empty() {
            self.version += 1;
            self.stats.commits += 1;
            expected.commits = true;
        }
        expected.version = self.version;
        if let Some(policy) = supervision {
            let limit = policy.max_failures.max(1);
            for &index in &asked {
                // The last counted failure of the round, in the decision's order (propose, then
                // vote).
                let last = expected
                    .failures
                    .iter()
                    .rev()
                    .find(|(agent, _, kind)| *agent == index && counted(kind))
                    .map(|(_, _, kind)| kind.clone());
                let health = &mut self.health[index];
                let Some(last) = last else {
                    health.strikes = 0;
                    continue;
                };
                health.strikes += 1;
                if health.strikes < limit {
                    continue;
                }
                let failures = health.strikes;
                health.strikes = 0;
                let until = match policy.action {
                    SupervisionAction::Quarantine { rounds } => {
                        health.quarantined_until = number + u64::from(rounds);
                        self.stats.quarantines += 1;
                        Some(health.quarantined_until)
                    }
                    SupervisionAction::Remove => {
                        health.removed = true;
                        self.stats.removals += 1;
                        None
                    }
                };
                expected
                    .supervised
                    .push((index, failures, policy.action, until, last));
            }
        }
        expected.asked = Some(asked);
        expected
    }
}

fn sorted_failures(
    failures: impl IntoIterator<Item = AgentFailure>,
    ids: &[AgentId],
) -> Vec<(usize, Phase, String)> {
    let mut out: Vec<(usize, Phase, String)> = failures
        .into_iter()
        .map(|failure| {
            let index = ids.iter().position(|id| *id == failure.agent).unwrap();
            (index, failure.phase, format!("{:?}", failure.kind))
        })
        .collect();
    out.sort_by(|a, b| (a.0, phase_name(a.1), &a.2).cmp(&(b.0, phase_name(b.1), &b.2)));
    out
}

fn is_terminal(event: &HiveEvent<u64>) -> bool {
    matches!(
        event,
        HiveEvent::Committed { .. }
            | HiveEvent::NothingToCommit { .. }
            | HiveEvent::RoundFailed { .. }
    )
}

/// Runs `case` on the current (paused) runtime and checks every round against the model.
async fn check_case(case: Case) -> Result<(), TestCaseError> {
    let events: Events = Arc::default();
    let hook_calls: HookCalls = Arc::default();
    let calls: Calls = Arc::default();
    let recorded = Arc::clone(&events);
    let mut builder = Hive::builder(Ledger::default())
        .events(HiveEventSink::callback(move |event| {
            recorded.lock().push(event)
        }))
        .agent_timeout(AGENT_TIMEOUT)
        .resolution(case.resolution)
        .policy(
            ConsensusPolicy::new(Threshold::Plurality, f64::MIN_POSITIVE)
                .unwrap()
                .with_tie_break(TieBreak::NoDecision),
        );
    if let Some(limit) = case.max_in_flight {
        builder = builder.max_in_flight(limit);
    }
    if let Some(policy) = case.supervision {
        let seen = Arc::clone(&hook_calls);
        builder = builder.supervision(policy).on_restart(move |hive, record| {
            seen.lock().push((
                record.clone(),
                hive.contains(record.agent),
                hive.quarantined_until(record.agent),
            ));
        });
    }
    let hive = builder.build().unwrap();
    let script = Arc::new(case.script.clone());
    let ids: Vec<AgentId> = case
        .heavy
        .iter()
        .enumerate()
        .map(|(index, &heavy)| {
            hive.spawn(Scripted {
                index,
                heavy,
                script: Arc::clone(&script),
                calls: Arc::clone(&calls),
            })
        })
        .collect();
    let mut model = Model::new(ids.len());

    for (offset, turns) in case.script.iter().enumerate() {
        let number = offset as u64 + 1;
        let expected = model.round(number, turns, case.resolution, case.supervision);
        let outcome = tokio::time::timeout(Duration::from_secs(3600), hive.decide())
            .await
            .map_err(|_| TestCaseError::fail(format!("round {number} never ended")))?;
        let round_events: Vec<HiveEvent<u64>> = events
            .lock()
            .iter()
            .filter(|event| event.round() == number)
            .cloned()
            .collect();
        let hooked: Vec<(Supervised, bool, Option<u64>)> = std::mem::take(&mut *hook_calls.lock());
        let round_calls: Vec<(usize, Phase)> = calls
            .lock()
            .iter()
            .filter(|(round, _, _)| *round == number)
            .map(|&(_, index, phase)| (index, phase))
            .collect();

        // Exactly one terminal event, the round's last.
        let terminals = round_events
            .iter()
            .filter(|event| is_terminal(event))
            .count();
        prop_assert_eq!(terminals, 1, "round {}: events {:?}", number, round_events);
        prop_assert!(is_terminal(round_events.last().unwrap()));

        let Some(asked) = &expected.asked else {
            prop_assert_eq!(outcome.as_ref().err(), Some(&HiveError::NoAgents));
            let shape = matches!(
                round_events.as_slice(),
                [
                    HiveEvent::RoundStarted { agents: 0, .. },
                    HiveEvent::RoundFailed { .. }
                ]
            );
            prop_assert!(shape, "round {}: events {:?}", number, round_events);
            prop_assert!(round_calls.is_empty());
            prop_assert!(hooked.is_empty());
            prop_assert_eq!(hive.stats(), model.stats);
            continue;
        };
        let decision = outcome
            .map_err(|error| TestCaseError::fail(format!("round {number} failed: {error}")))?;

        // Who was asked, and how often.
        prop_assert_eq!(decision.agents, asked.len());
        let mut proposed: Vec<usize> = round_calls
            .iter()
            .filter(|(_, phase)| *phase == Phase::Propose)
            .map(|&(index, _)| index)
            .collect();
        proposed.sort_unstable();
        prop_assert_eq!(&proposed, asked, "round {}: asked to propose", number);
        let voted = round_calls
            .iter()
            .filter(|(_, phase)| *phase == Phase::Vote)
            .count();
        let vote_calls = if case.resolution == ResolutionStrategy::Vote {
            asked.len() * expected.contests
        } else {
            0
        };
        prop_assert_eq!(voted, vote_calls, "round {}: vote calls", number);

        // The decision against the model.
        let want = sorted_failures(
            expected
                .failures
                .iter()
                .map(|(index, phase, kind)| AgentFailure {
                    agent: ids[*index],
                    phase: *phase,
                    kind: kind.clone(),
                }),
            &ids,
        );
        prop_assert_eq!(
            sorted_failures(decision.failures.clone(), &ids),
            want.clone(),
            "round {}: decision failures",
            number
        );
        let supervised: Vec<_> = expected
            .supervised
            .iter()
            .map(|(index, failures, action, until, last)| Supervised {
                agent: ids[*index],
                failures: *failures,
                action: *action,
                until_round: *until,
                last: last.clone(),
            })
            .collect();
        let mut got_supervised = decision.supervised.clone();
        got_supervised.sort_by_key(|record| record.agent);
        prop_assert_eq!(&got_supervised, &supervised, "round {}: supervised", number);
        prop_assert_eq!(decision.proposals, expected.proposals);
        let mut accepted: Vec<usize> = decision
            .accepted
            .iter()
            .map(|id| {
                let agent = decision.proposer(*id).unwrap();
                ids.iter().position(|known| *known == agent).unwrap()
            })
            .collect();
        accepted.sort_unstable();
        prop_assert_eq!(&accepted, &expected.accepted, "round {}: accepted", number);
        prop_assert_eq!(decision.version, expected.version);
        prop_assert_eq!(hive.memory().version(), model.version);
        prop_assert_eq!(hive.memory().load().log.len() as u64, model.stats.accepted);
        if case.resolution == ResolutionStrategy::Vote {
            prop_assert_eq!(decision.ballots.len(), expected.contests);
            for ballot in &decision.ballots {
                prop_assert_eq!(ballot.votes, expected.votes);
                prop_assert_eq!(ballot.cancelled, 0);
                prop_assert!(ballot.tally.winner().is_none());
            }
        }

        // The events: started, each failure once (propose phase before `ProposalsIn`, vote phase
        // after it), each supervision record after every failure, the terminal event last.
        let started = matches!(
            round_events.first(),
            Some(HiveEvent::RoundStarted { agents, version, .. })
                if *agents == asked.len() && *version + u64::from(expected.commits) == expected.version
        );
        prop_assert!(started, "round {}: events {:?}", number, round_events);
        let failed_events: Vec<(usize, &AgentFailure)> = round_events
            .iter()
            .enumerate()
            .filter_map(|(at, event)| match event {
                HiveEvent::AgentFailed { failure, .. } => Some((at, failure)),
                _ => None,
            })
            .collect();
        prop_assert_eq!(
            sorted_failures(
                failed_events.iter().map(|(_, failure)| (*failure).clone()),
                &ids
            ),
            want,
            "round {}: AgentFailed events",
            number
        );
        let proposals_in = round_events
            .iter()
            .position(|event| matches!(event, HiveEvent::ProposalsIn { .. }))
            .unwrap();
        let counted_in = matches!(
            round_events[proposals_in],
            HiveEvent::ProposalsIn { proposals, .. } if proposals == expected.proposals
        );
        prop_assert!(counted_in, "round {}: events {:?}", number, round_events);
        for (at, failure) in &failed_events {
            prop_assert_eq!(
                *at < proposals_in,
                failure.phase == Phase::Propose,
                "round {}: {:?} at {} ({:?})",
                number,
                failure,
                at,
                round_events
            );
        }
        let supervised_events: Vec<(usize, &Supervised)> = round_events
            .iter()
            .enumerate()
            .filter_map(|(at, event)| match event {
                HiveEvent::AgentSupervised { record, .. } => Some((at, record)),
                _ => None,
            })
            .collect();
        let mut records: Vec<Supervised> = supervised_events
            .iter()
            .map(|(_, record)| (*record).clone())
            .collect();
        records.sort_by_key(|record| record.agent);
        prop_assert_eq!(
            &records,
            &supervised,
            "round {}: AgentSupervised events",
            number
        );
        let last_failure = failed_events.last().map_or(0, |(at, _)| *at);
        for (at, _) in &supervised_events {
            prop_assert!(*at > last_failure && *at < round_events.len() - 1);
        }
        let ended = matches!(
            (round_events.last().unwrap(), expected.commits),
            (HiveEvent::Committed { .. }, true) | (HiveEvent::NothingToCommit { .. }, false)
        );
        prop_assert!(ended, "round {}: events {:?}", number, round_events);

        // The restart hook: once per record, after the action was taken.
        let mut hooked_records: Vec<Supervised> =
            hooked.iter().map(|(record, _, _)| record.clone()).collect();
        hooked_records.sort_by_key(|record| record.agent);
        prop_assert_eq!(
            &hooked_records,
            &supervised,
            "round {}: restart hook",
            number
        );
        for (record, member, until) in &hooked {
            match record.action {
                SupervisionAction::Remove => prop_assert!(!member),
                SupervisionAction::Quarantine { rounds } => {
                    prop_assert!(member);
                    let still = (rounds > 0).then_some(number + u64::from(rounds));
                    prop_assert_eq!(*until, still);
                }
            }
        }

        // The hive's records and counters.
        for (index, id) in ids.iter().enumerate() {
            let health = &model.health[index];
            prop_assert_eq!(
                hive.contains(*id),
                !health.removed,
                "agent {} membership",
                index
            );
            let until = (!health.removed && health.quarantined_until > number)
                .then_some(health.quarantined_until);
            prop_assert_eq!(
                hive.quarantined_until(*id),
                until,
                "agent {} quarantine",
                index
            );
        }
        prop_assert_eq!(hive.stats(), model.stats, "round {}: stats", number);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every round of a hive with failing agents ends as the sequential model says: its failures,
    /// supervision records, events, counters, memory version, members and restart hook calls.
    #[test]
    fn rounds_with_failing_agents_match_the_sequential_model(case in case_strategy()) {
        support::quiet_panics(PANIC_MARKER);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(check_case(case))?;
    }
}
