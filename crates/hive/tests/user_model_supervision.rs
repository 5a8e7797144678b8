//! Model-based property test of supervision and stats: a hive of 2-8 agents (some heavy) under a
//! random supervision policy runs 5-20 sequential rounds in which every agent, per round, succeeds,
//! errs, panics, hangs (times out on a paused clock) or answers invalidly (a duplicate proposal id,
//! a vote for a non-candidate) in the propose and the vote phase, with agents removed and added
//! between rounds and a restart hook that may spawn replacements. Some rounds are cancelled by
//! their token (before they start, or at 500 ms) or have their future dropped at 500 ms: the
//! failures of the phases that ended by then are counted and supervised, nobody's record cleared.
//! A sequential model written from the docs predicts, after every round: who is asked, the
//! decision's failures and supervision records, the accepted and rejected proposals,
//! `Hive::stats`, the events, the restart hook's calls, membership and `Hive::quarantined_until`.
//!
//! Ballots use a unanimous threshold with a tiny quorum and every valid vote backs the same
//! candidate (the lowest id), so no ballot can settle before every voter answered: every vote call
//! is made and ends, which keeps the failures deterministic.
//!
//! `HUNT_CASES=5000 cargo test -p hivekit-hive --test user_model_supervision` runs more cases.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentFailure, AgentId, CancellationToken, ConsensusPolicy,
    Contest, DecideOptions, FailureKind, Hive, HiveError, HiveEvent, HiveEventSink, HiveStats,
    Phase, ProposalId, RejectReason, ResolutionStrategy, ResourceCost, Snapshot, Supervised,
    Supervision, SupervisionAction, Threshold, Vote,
};
use parking_lot::Mutex;
use proptest::prelude::*;
use support::{add, Ledger, LedgerProposal};

/// Behaviours are looked up by `agent id % SLOTS`.
const SLOTS: usize = 16;
const TIMEOUT: Duration = Duration::from_secs(1);
const BOGUS: ProposalId = ProposalId(u64::MAX - 1);
const PANIC: &str = "scripted panic";
const ERROR: &str = "scripted error";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PAct {
    /// Proposes its own id on its key.
    Ok,
    /// Proposes nothing.
    Quiet,
    Err,
    Panic,
    /// Never answers: times out.
    Hang,
    /// After 1 ms, proposes the id of the round's anchor (the lowest member that proposes `Ok`)
    /// if the anchor's id is lower than its own (so that the anchor's call started first and
    /// answered first, even under `max_in_flight`): a duplicate. Else proposes its own id (valid).
    Dup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VAct {
    /// Votes for the lowest candidate.
    For,
    Abstain,
    Err,
    Panic,
    Hang,
    /// Votes for a proposal that is no candidate.
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyChoice {
    /// Shared key 0 or 1 (contested when two or more propose on it).
    Shared(u64),
    /// A key of its own: never contested.
    Own,
}

#[derive(Debug, Clone, Copy)]
struct Behave {
    propose: PAct,
    vote: VAct,
    key: KeyChoice,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Removes the live agent at this index (mod the number of agents).
    Remove(usize),
    Add,
}

#[derive(Debug, Clone)]
struct RoundScript {
    ops: Vec<Op>,
    cancel: Cancel,
    acts: Vec<Behave>,
}

#[derive(Debug, Clone)]
struct Case {
    agents: usize,
    heavy_mask: u16,
    policy: Option<Supervision>,
    /// `None`: no hook; `Some(respawn)`: a hook that spawns a replacement for a removed agent.
    hook: Option<bool>,
    vote: bool,
    max_in_flight: Option<usize>,
    rounds: Vec<RoundScript>,
}

fn proposal_id(round: u64, agent: u64) -> u64 {
    round * 1_000 + agent
}

fn key_of(choice: KeyChoice, agent: u64) -> u64 {
    match choice {
        KeyChoice::Shared(key) => key,
        KeyChoice::Own => 100 + agent,
    }
}

fn heavy(mask: u16, agent: u64) -> bool {
    mask >> (agent as usize % SLOTS) & 1 == 1
}

/// What the agents read for the current round.
#[derive(Default)]
struct Plan {
    acts: Vec<Behave>,
    anchor: Option<u64>,
}

struct Scripted {
    plan: Arc<Mutex<Plan>>,
    heavy: bool,
}

impl Scripted {
    fn behave(&self, ctx: &AgentContext) -> (Behave, Option<u64>) {
        let plan = self.plan.lock();
        (plan.acts[ctx.agent().0 as usize % SLOTS], plan.anchor)
    }
}

impl Agent<Ledger> for Scripted {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        let (behave, anchor) = self.behave(ctx);
        let me = ctx.agent().0;
        let round = ctx.round();
        let key = key_of(behave.key, me);
        match behave.propose {
            PAct::Ok => Ok(Some(add(proposal_id(round, me), key, 1))),
            PAct::Quiet => Ok(None),
            PAct::Err => Err(AgentError::msg(ERROR)),
            PAct::Panic => panic!("{PANIC}"),
            PAct::Hang => std::future::pending().await,
            PAct::Dup => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let id = proposal_id(round, anchor.filter(|&a| a < me).unwrap_or(me));
                Ok(Some(add(id, key, 1)))
            }
        }
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        let (behave, _) = self.behave(ctx);
        match behave.vote {
            VAct::For => Ok(Vote::For(
                contest.candidates.iter().map(|c| c.id).min().unwrap(),
            )),
            VAct::Abstain => Ok(Vote::Abstain),
            VAct::Err => Err(AgentError::msg(ERROR)),
            VAct::Panic => panic!("{PANIC}"),
            VAct::Hang => std::future::pending().await,
            VAct::Invalid => Ok(Vote::For(BOGUS)),
        }
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model.

#[derive(Debug, Clone, Default)]
struct ModelAgent {
    strikes: u32,
    /// Sits out every round up to this one.
    until: u64,
}

#[derive(Debug, Default)]
struct Model {
    policy: Option<Supervision>,
    hook: Option<bool>,
    vote: bool,
    agents: BTreeMap<u64, ModelAgent>,
    next_id: u64,
    round: u64,
    version: u64,
    stats: HiveStats,
    hook_calls: Vec<Supervised>,
}

/// What the model expects of one round.
#[derive(Debug)]
struct Expected {
    round: u64,
    members: Vec<u64>,
    /// `None`: the round fails with `NoAgents`, or is cancelled.
    outcome: Option<ExpectedDecision>,
    /// `Some`: the round is cancelled.
    cancelled: Option<ExpectedCancel>,
}

/// A conflict group: its key and its members.
type Group = (u64, Vec<ProposalId>);

/// A cancelled round.
#[derive(Debug, Default)]
struct ExpectedCancel {
    /// When the propose phase ended before the cancellation: its failures, the proposals, the
    /// conflict groups.
    propose: Option<(Vec<AgentFailure>, usize, Vec<Group>)>,
    supervised: Vec<Supervised>,
}

/// When a round's cancellation token fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancel {
    Never,
    /// Cancelled before `decide` is called.
    Before,
    /// At 500 ms of the round (paused clock).
    Midway,
    /// The round's future is dropped at 500 ms (modelled as `Midway`).
    Dropped,
}

#[derive(Debug)]
struct ExpectedDecision {
    proposals: Vec<(u64, u64, u64)>, // (id, proposer, key)
    accepted: Vec<ProposalId>,
    rejected: Vec<(ProposalId, RejectReason)>,
    propose_failures: Vec<AgentFailure>,
    vote_failures: Vec<AgentFailure>,
    /// (key, candidates, votes, winner)
    groups: Vec<(u64, Vec<ProposalId>, usize, Option<ProposalId>)>,
    supervised: Vec<Supervised>,
    base_version: u64,
    version: u64,
}

fn kind_of_propose(act: PAct) -> Option<FailureKind> {
    match act {
        PAct::Err => Some(FailureKind::Errored {
            error: AgentError::msg(ERROR),
        }),
        PAct::Panic => Some(FailureKind::Panicked {
            message: PANIC.to_string(),
        }),
        PAct::Hang => Some(FailureKind::TimedOut),
        _ => None,
    }
}

fn kind_of_vote(act: VAct) -> Option<FailureKind> {
    match act {
        VAct::Err => Some(FailureKind::Errored {
            error: AgentError::msg(ERROR),
        }),
        VAct::Panic => Some(FailureKind::Panicked {
            message: PANIC.to_string(),
        }),
        VAct::Hang => Some(FailureKind::TimedOut),
        VAct::Invalid => Some(FailureKind::InvalidVote { candidate: BOGUS }),
        _ => None,
    }
}

/// Supervision counts timeouts, panics and errors (docs of `Supervision`).
fn counted(kind: &FailureKind) -> bool {
    matches!(
        kind,
        FailureKind::TimedOut | FailureKind::Panicked { .. } | FailureKind::Errored { .. }
    )
}

fn count_stat(stats: &mut HiveStats, kind: &FailureKind) {
    match kind {
        FailureKind::TimedOut | FailureKind::Cancelled => stats.timeouts += 1,
        FailureKind::Panicked { .. } => stats.panics += 1,
        FailureKind::Errored { .. } => stats.errors += 1,
        _ => stats.invalid += 1,
    }
}

impl Model {
    fn spawn(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.agents.insert(id, ModelAgent::default());
        id
    }

    /// Supervision after round `round` of `members` with these `failures` (in order); `clear`:
    /// members without a counted failure have their record cleared (not in a cancelled round).
    fn supervise(
        &mut self,
        round: u64,
        members: &[u64],
        failures: &[AgentFailure],
        clear: bool,
    ) -> Vec<Supervised> {
        let mut supervised = Vec::new();
        let Some(policy) = self.policy else {
            return supervised;
        };
        let limit = policy.max_failures.max(1);
        for &id in members {
            // The agent's last counted failure: propose first, then votes.
            let last = failures
                .iter()
                .rfind(|f| f.agent == AgentId(id) && counted(&f.kind))
                .map(|f| f.kind.clone());
            let Some(agent) = self.agents.get_mut(&id) else {
                continue;
            };
            let Some(last) = last else {
                if clear {
                    agent.strikes = 0;
                }
                continue;
            };
            agent.strikes += 1;
            if agent.strikes < limit {
                continue;
            }
            let failures = agent.strikes;
            agent.strikes = 0;
            let until_round = match policy.action {
                SupervisionAction::Quarantine { rounds } => {
                    agent.until = round + u64::from(rounds);
                    Some(agent.until)
                }
                SupervisionAction::Remove => None,
            };
            supervised.push(Supervised {
                agent: AgentId(id),
                failures,
                action: policy.action,
                until_round,
                last,
            });
        }
        for record in &supervised {
            match record.action {
                SupervisionAction::Quarantine { .. } => self.stats.quarantines += 1,
                SupervisionAction::Remove => {
                    self.stats.removals += 1;
                    self.agents.remove(&record.agent.0);
                }
            }
        }
        for record in &supervised {
            if let Some(respawn) = self.hook {
                self.hook_calls.push(record.clone());
                if respawn && record.action == SupervisionAction::Remove {
                    self.spawn();
                }
            }
        }
        supervised
    }

    /// Runs one round over `acts`, cancelled as `cancel` says.
    fn round(&mut self, acts: &[Behave], cancel: Cancel) -> Expected {
        self.round += 1;
        let round = self.round;
        self.stats.rounds += 1;
        let members: Vec<u64> = self
            .agents
            .iter()
            .filter(|(_, agent)| self.policy.is_none() || agent.until < round)
            .map(|(&id, _)| id)
            .collect();
        if members.is_empty() {
            return Expected {
                round,
                members,
                outcome: None,
                cancelled: None,
            };
        }
        if cancel == Cancel::Before {
            // Cancelled before any call ends: nothing reported, nobody's record touched.
            return Expected {
                round,
                members,
                outcome: None,
                cancelled: Some(ExpectedCancel::default()),
            };
        }
        let behave = |id: u64| acts[id as usize % SLOTS];
        let anchor = members
            .iter()
            .copied()
            .find(|&id| behave(id).propose == PAct::Ok);
        // Propose.
        let mut proposals = Vec::new();
        let mut propose_failures = Vec::new();
        for &id in &members {
            let b = behave(id);
            let key = key_of(b.key, id);
            match b.propose {
                PAct::Ok => proposals.push((proposal_id(round, id), id, key)),
                PAct::Quiet => {}
                PAct::Dup => match anchor.filter(|&a| a < id) {
                    Some(holder) => propose_failures.push(AgentFailure {
                        agent: AgentId(id),
                        phase: Phase::Propose,
                        kind: FailureKind::DuplicateProposal {
                            id: ProposalId(proposal_id(round, holder)),
                            holder: AgentId(holder),
                        },
                    }),
                    None => proposals.push((proposal_id(round, id), id, key)),
                },
                act => propose_failures.push(AgentFailure {
                    agent: AgentId(id),
                    phase: Phase::Propose,
                    kind: kind_of_propose(act).unwrap(),
                }),
            }
        }
        // Conflicts: proposals sharing key 0 or 1.
        let mut by_key: BTreeMap<u64, Vec<ProposalId>> = BTreeMap::new();
        for &(id, _, key) in &proposals {
            by_key.entry(key).or_default().push(ProposalId(id));
        }
        let contested: Vec<(u64, Vec<ProposalId>)> = by_key
            .iter()
            .filter(|(_, c)| c.len() >= 2)
            .map(|(&key, c)| {
                let mut c = c.clone();
                c.sort();
                (key, c)
            })
            .collect();
        if matches!(cancel, Cancel::Midway | Cancel::Dropped) {
            // The token fires at 500 ms: a phase with a hanging call (1 s) is still running then;
            // every other phase ended within a few milliseconds.
            let propose_hangs = members.iter().any(|&id| behave(id).propose == PAct::Hang);
            let vote_hangs = self.vote
                && !contested.is_empty()
                && members.iter().any(|&id| behave(id).vote == VAct::Hang);
            if propose_hangs {
                return Expected {
                    round,
                    members,
                    outcome: None,
                    cancelled: Some(ExpectedCancel::default()),
                };
            }
            if vote_hangs {
                // The propose phase's failures were reported: counted, and handed to
                // supervision, which clears nobody's record.
                for failure in &propose_failures {
                    count_stat(&mut self.stats, &failure.kind);
                }
                let supervised = self.supervise(round, &members, &propose_failures, false);
                return Expected {
                    round,
                    members,
                    outcome: None,
                    cancelled: Some(ExpectedCancel {
                        propose: Some((propose_failures, proposals.len(), contested)),
                        supervised,
                    }),
                };
            }
        }
        let mut rejected = Vec::new();
        let mut groups = Vec::new();
        let mut vote_failures = Vec::new();
        for (&key, candidates) in by_key.iter().filter(|(_, c)| c.len() >= 2) {
            let mut candidates = candidates.clone();
            candidates.sort();
            let lowest = candidates[0];
            if self.vote {
                let mut fors = 0;
                let mut votes = 0;
                for &voter in &members {
                    match behave(voter).vote {
                        VAct::For => {
                            fors += 1;
                            votes += 1;
                        }
                        VAct::Abstain => votes += 1,
                        act => vote_failures.push(AgentFailure {
                            agent: AgentId(voter),
                            phase: Phase::Vote,
                            kind: kind_of_vote(act).unwrap(),
                        }),
                    }
                }
                let (winner, reason) = if fors > 0 {
                    (Some(lowest), RejectReason::LostVote { winner: lowest })
                } else if votes > 0 {
                    (None, RejectReason::Undecided)
                } else {
                    (None, RejectReason::NoQuorum)
                };
                for &candidate in &candidates {
                    if Some(candidate) != winner {
                        rejected.push((candidate, reason.clone()));
                    }
                }
                self.stats.votes += votes as u64;
                groups.push((key, candidates, votes, winner));
            } else {
                for &candidate in &candidates[1..] {
                    rejected.push((candidate, RejectReason::ConflictWith { winner: lowest }));
                }
                groups.push((key, candidates, 0, Some(lowest)));
            }
        }
        let mut accepted: Vec<ProposalId> = proposals
            .iter()
            .map(|&(id, _, _)| ProposalId(id))
            .filter(|id| !rejected.iter().any(|(r, _)| r == id))
            .collect();
        accepted.sort();
        rejected.sort_by_key(|(id, _)| *id);
        let base_version = self.version;
        if !accepted.is_empty() {
            self.version += 1;
            self.stats.commits += 1;
        }
        self.stats.proposals += proposals.len() as u64;
        self.stats.accepted += accepted.len() as u64;
        self.stats.rejected += rejected.len() as u64;
        self.stats.conflicts += groups.len() as u64;
        for failure in propose_failures.iter().chain(&vote_failures) {
            count_stat(&mut self.stats, &failure.kind);
        }
        let failures: Vec<AgentFailure> = propose_failures
            .iter()
            .chain(&vote_failures)
            .cloned()
            .collect();
        let supervised = self.supervise(round, &members, &failures, true);
        Expected {
            round,
            members,
            cancelled: None,
            outcome: Some(ExpectedDecision {
                proposals,
                accepted,
                rejected,
                propose_failures,
                vote_failures,
                groups,
                supervised,
                base_version,
                version: self.version,
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case against the hive.

fn sorted_failures(failures: &[AgentFailure]) -> Vec<String> {
    let mut keys: Vec<String> = failures.iter().map(|f| format!("{f:?}")).collect();
    keys.sort();
    keys
}

fn spawn_agent(hive: &Hive<Ledger>, plan: &Arc<Mutex<Plan>>, mask: u16, next: u64) -> AgentId {
    hive.spawn(Scripted {
        plan: Arc::clone(plan),
        heavy: heavy(mask, next),
    })
}

/// Checks one round's events against the model.
fn check_events(
    events: &[HiveEvent<u64>],
    expected: &Expected,
    vote: bool,
    decision_failures: Option<&[AgentFailure]>,
) -> Result<(), String> {
    let round = expected.round;
    let mut rest = events;
    macro_rules! fail {
        ($($t:tt)*) => { return Err(format!("round {round}: {}; events {events:#?}", format!($($t)*))) };
    }
    if events.iter().any(|e| e.round() != round) {
        fail!("an event of another round");
    }
    let Some(HiveEvent::RoundStarted { agents, .. }) = rest.first() else {
        fail!("no RoundStarted first");
    };
    if *agents != expected.members.len() {
        fail!(
            "RoundStarted with {agents} agents, expected {}",
            expected.members.len()
        );
    }
    rest = &rest[1..];
    let take_failures = |rest: &mut &[HiveEvent<u64>]| {
        let mut out = Vec::new();
        while let Some(HiveEvent::AgentFailed { failure, .. }) = rest.first() {
            out.push(failure.clone());
            *rest = &rest[1..];
        }
        out
    };
    let take_conflicts = |rest: &mut &[HiveEvent<u64>]| {
        let mut conflicts = Vec::new();
        while let Some(HiveEvent::ConflictFound {
            key, candidates, ..
        }) = rest.first()
        {
            let mut candidates = candidates.clone();
            candidates.sort();
            conflicts.push((*key, candidates));
            *rest = &rest[1..];
        }
        conflicts.sort();
        conflicts
    };
    let take_supervised = |rest: &mut &[HiveEvent<u64>]| {
        let mut supervised = Vec::new();
        while let Some(HiveEvent::AgentSupervised { record, .. }) = rest.first() {
            supervised.push(record.clone());
            *rest = &rest[1..];
        }
        supervised
    };
    if let Some(cancelled) = &expected.cancelled {
        if let Some((failures, count, groups)) = &cancelled.propose {
            let failed = take_failures(&mut rest);
            if sorted_failures(&failed) != sorted_failures(failures) {
                fail!("propose AgentFailed {failed:?}, expected {failures:?}");
            }
            let Some(HiveEvent::ProposalsIn { proposals, .. }) = rest.first() else {
                fail!("no ProposalsIn after the propose failures");
            };
            if proposals != count {
                fail!("ProposalsIn {proposals}, expected {count}");
            }
            rest = &rest[1..];
            let conflicts = take_conflicts(&mut rest);
            if &conflicts != groups {
                fail!("ConflictFound {conflicts:?}, expected {groups:?}");
            }
        }
        let supervised = take_supervised(&mut rest);
        if supervised != cancelled.supervised {
            fail!(
                "AgentSupervised {supervised:?}, expected {:?}",
                cancelled.supervised
            );
        }
        if !matches!(rest, [HiveEvent::RoundFailed { .. }]) {
            fail!("a cancelled round should end with RoundFailed");
        }
        return Ok(());
    }
    let Some(outcome) = &expected.outcome else {
        if !matches!(rest, [HiveEvent::RoundFailed { .. }]) {
            fail!("an empty round should end with RoundFailed only");
        }
        return Ok(());
    };
    let propose_failed = take_failures(&mut rest);
    if sorted_failures(&propose_failed) != sorted_failures(&outcome.propose_failures) {
        fail!(
            "propose AgentFailed {propose_failed:?}, expected {:?}",
            outcome.propose_failures
        );
    }
    let Some(HiveEvent::ProposalsIn { proposals, .. }) = rest.first() else {
        fail!("no ProposalsIn after the propose failures");
    };
    if *proposals != outcome.proposals.len() {
        fail!(
            "ProposalsIn {proposals}, expected {}",
            outcome.proposals.len()
        );
    }
    rest = &rest[1..];
    let conflicts = take_conflicts(&mut rest);
    let mut expected_conflicts: Vec<_> = outcome
        .groups
        .iter()
        .map(|(key, candidates, _, _)| (*key, candidates.clone()))
        .collect();
    expected_conflicts.sort();
    if conflicts != expected_conflicts {
        fail!("ConflictFound {conflicts:?}, expected {expected_conflicts:?}");
    }
    let vote_failed = take_failures(&mut rest);
    if sorted_failures(&vote_failed) != sorted_failures(&outcome.vote_failures) {
        fail!(
            "vote AgentFailed {vote_failed:?}, expected {:?}",
            outcome.vote_failures
        );
    }
    let mut ballots = Vec::new();
    while let Some(HiveEvent::BallotSettled {
        key, tally, votes, ..
    }) = rest.first()
    {
        ballots.push((*key, *votes, tally.winner()));
        rest = &rest[1..];
    }
    ballots.sort();
    let mut expected_ballots: Vec<_> = if vote {
        outcome
            .groups
            .iter()
            .map(|(key, _, votes, winner)| (*key, *votes, *winner))
            .collect()
    } else {
        Vec::new()
    };
    expected_ballots.sort();
    if ballots != expected_ballots {
        fail!("BallotSettled {ballots:?}, expected {expected_ballots:?}");
    }
    let supervised = take_supervised(&mut rest);
    if supervised != outcome.supervised {
        fail!(
            "AgentSupervised {supervised:?}, expected {:?}",
            outcome.supervised
        );
    }
    match rest {
        [HiveEvent::Committed {
            version, accepted, ..
        }] => {
            if outcome.accepted.is_empty()
                || *version != outcome.version
                || *accepted != outcome.accepted.len()
            {
                fail!("unexpected Committed");
            }
        }
        [HiveEvent::NothingToCommit { .. }] => {
            if !outcome.accepted.is_empty() {
                fail!("NothingToCommit, expected a commit");
            }
        }
        _ => fail!("the round's events do not end with one terminal event"),
    }
    // The AgentFailed events are the decision's failures, in order.
    if let Some(failures) = decision_failures {
        let sent: Vec<AgentFailure> = propose_failed.into_iter().chain(vote_failed).collect();
        if sent != failures {
            fail!("AgentFailed events {sent:?} differ from Decision::failures {failures:?}");
        }
    }
    Ok(())
}

fn run_case(case: &Case) -> Result<(), String> {
    support::quiet_panics(PANIC);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let plan: Arc<Mutex<Plan>> = Arc::default();
    let seen: Arc<Mutex<Vec<HiveEvent<u64>>>> = Arc::default();
    let hooked: Arc<Mutex<Vec<Supervised>>> = Arc::default();
    let sink = {
        let seen = Arc::clone(&seen);
        HiveEventSink::callback(move |event| seen.lock().push(event))
    };
    let policy = ConsensusPolicy::new(Threshold::Unanimous, f64::MIN_POSITIVE).unwrap();
    let mut builder = Hive::builder(Ledger::default())
        .policy(policy)
        .resolution(if case.vote {
            ResolutionStrategy::Vote
        } else {
            ResolutionStrategy::HighestPriority
        })
        .agent_timeout(TIMEOUT)
        .events(sink);
    if let Some(limit) = case.max_in_flight {
        builder = builder.max_in_flight(limit);
    }
    if let Some(policy) = case.policy {
        builder = builder.supervision(policy);
    }
    if let Some(respawn) = case.hook {
        let hooked = Arc::clone(&hooked);
        let plan = Arc::clone(&plan);
        let mask = case.heavy_mask;
        builder = builder.on_restart(move |hive, record| {
            hooked.lock().push(record.clone());
            if respawn && record.action == SupervisionAction::Remove {
                hive.spawn(Scripted {
                    plan: Arc::clone(&plan),
                    heavy: heavy(mask, record.agent.0),
                });
            }
        });
    }
    let hive = builder.build().unwrap();
    let mut model = Model {
        policy: case.policy,
        hook: case.hook,
        vote: case.vote,
        ..Model::default()
    };
    for _ in 0..case.agents {
        let id = model.spawn();
        let got = spawn_agent(&hive, &plan, case.heavy_mask, id);
        if got != AgentId(id) {
            return Err(format!("spawned {got}, model expected {id}"));
        }
    }
    for script in &case.rounds {
        for op in &script.ops {
            match *op {
                Op::Remove(index) => {
                    let live: Vec<u64> = model.agents.keys().copied().collect();
                    if live.is_empty() {
                        continue;
                    }
                    let id = live[index % live.len()];
                    model.agents.remove(&id);
                    if !hive.remove(AgentId(id)) {
                        return Err(format!("remove({id}) was not a member"));
                    }
                }
                Op::Add => {
                    let id = model.spawn();
                    let got = spawn_agent(&hive, &plan, case.heavy_mask, id);
                    if got != AgentId(id) {
                        return Err(format!("spawned {got}, model expected {id}"));
                    }
                }
            }
        }
        let expected = model.round(&script.acts, script.cancel);
        let round = expected.round;
        {
            let mut plan = plan.lock();
            plan.acts = script.acts.clone();
            plan.anchor = expected
                .members
                .iter()
                .copied()
                .find(|&id| script.acts[id as usize % SLOTS].propose == PAct::Ok);
        }
        let token = CancellationToken::new();
        let canceller = match script.cancel {
            Cancel::Never | Cancel::Dropped => None,
            Cancel::Before => {
                token.cancel();
                None
            }
            Cancel::Midway => {
                let token = token.clone();
                Some(runtime.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    token.cancel();
                }))
            }
        };
        let options = DecideOptions::default().with_cancel(token);
        let result = if script.cancel == Cancel::Dropped {
            // The round's future is dropped at 500 ms instead: the same as a cancellation.
            match runtime.block_on(tokio::time::timeout(
                Duration::from_millis(500),
                hive.decide_with(options),
            )) {
                Ok(result) => result,
                Err(_) => Err(HiveError::Cancelled { round }),
            }
        } else {
            runtime.block_on(hive.decide_with(options))
        };
        if let Some(canceller) = canceller {
            canceller.abort();
        }
        let events = std::mem::take(&mut *seen.lock());
        if expected.cancelled.is_some() {
            match result {
                Err(HiveError::Cancelled { round: r }) if r == round => {}
                other => {
                    return Err(format!(
                        "round {round}: expected Cancelled, got {:?}",
                        other.map(|d| d.to_string())
                    ))
                }
            }
            check_events(&events, &expected, case.vote, None)?;
        } else {
            match (&expected.outcome, result) {
                (None, Err(HiveError::NoAgents)) => {
                    check_events(&events, &expected, case.vote, None)?
                }
                (None, other) => {
                    return Err(format!(
                        "round {round}: expected NoAgents, got {:?}",
                        other.map(|d| d.to_string())
                    ))
                }
                (Some(_), Err(error)) => {
                    return Err(format!("round {round}: expected a decision, got {error}"))
                }
                (Some(outcome), Ok(decision)) => {
                    let ctx = || format!("round {round}: decision {decision}");
                    if decision.round != round {
                        return Err(format!("{}: round number", ctx()));
                    }
                    if decision.agents != expected.members.len() {
                        return Err(format!(
                            "{}: agents {} expected {} ({:?})",
                            ctx(),
                            decision.agents,
                            expected.members.len(),
                            expected.members
                        ));
                    }
                    if decision.proposals != outcome.proposals.len() {
                        return Err(format!(
                            "{}: proposals, expected {:?}",
                            ctx(),
                            outcome.proposals
                        ));
                    }
                    let mut accepted = decision.accepted.clone();
                    accepted.sort();
                    if accepted != outcome.accepted {
                        return Err(format!(
                            "{}: accepted, expected {:?}",
                            ctx(),
                            outcome.accepted
                        ));
                    }
                    let mut rejected = decision.rejected.clone();
                    rejected.sort_by_key(|(id, _)| *id);
                    if rejected != outcome.rejected {
                        return Err(format!(
                            "{}: rejected {rejected:?}, expected {:?}",
                            ctx(),
                            outcome.rejected
                        ));
                    }
                    let expected_failures: Vec<AgentFailure> = outcome
                        .propose_failures
                        .iter()
                        .chain(&outcome.vote_failures)
                        .cloned()
                        .collect();
                    if sorted_failures(&decision.failures) != sorted_failures(&expected_failures) {
                        return Err(format!(
                            "{}: failures {:?}, expected {:?}",
                            ctx(),
                            decision.failures,
                            expected_failures
                        ));
                    }
                    if decision.supervised != outcome.supervised {
                        return Err(format!(
                            "{}: supervised {:?}, expected {:?}",
                            ctx(),
                            decision.supervised,
                            outcome.supervised
                        ));
                    }
                    if (decision.base_version, decision.version)
                        != (outcome.base_version, outcome.version)
                    {
                        return Err(format!("{}: versions", ctx()));
                    }
                    for ballot in &decision.ballots {
                        if ballot.cancelled != 0 {
                            return Err(format!("{}: a ballot cancelled votes: {ballot:?}", ctx()));
                        }
                    }
                    check_events(&events, &expected, case.vote, Some(&decision.failures))?;
                }
            }
        }
        // After the round: stats, membership, quarantines, hook calls.
        let stats = hive.stats();
        if stats != model.stats {
            return Err(format!(
                "round {round}: stats {stats:?}\n expected {:?}",
                model.stats
            ));
        }
        let ids: Vec<u64> = hive.agents().iter().map(|id| id.0).collect();
        let model_ids: Vec<u64> = model.agents.keys().copied().collect();
        if ids != model_ids {
            return Err(format!(
                "round {round}: agents {ids:?}, expected {model_ids:?}"
            ));
        }
        for (&id, agent) in &model.agents {
            let want = (model.policy.is_some() && agent.until > round).then_some(agent.until);
            let got = hive.quarantined_until(AgentId(id));
            if got != want {
                return Err(format!(
                    "round {round}: quarantined_until({id}) = {got:?}, expected {want:?}"
                ));
            }
        }
        if *hooked.lock() != model.hook_calls {
            return Err(format!(
                "round {round}: hook calls {:?}, expected {:?}",
                hooked.lock(),
                model.hook_calls
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn behave_strategy() -> impl Strategy<Value = Behave> {
    let propose = prop_oneof![
        6 => Just(PAct::Ok),
        1 => Just(PAct::Quiet),
        2 => Just(PAct::Err),
        1 => Just(PAct::Panic),
        1 => Just(PAct::Hang),
        1 => Just(PAct::Dup),
    ];
    let vote = prop_oneof![
        6 => Just(VAct::For),
        1 => Just(VAct::Abstain),
        2 => Just(VAct::Err),
        1 => Just(VAct::Panic),
        1 => Just(VAct::Hang),
        1 => Just(VAct::Invalid),
    ];
    let key = prop_oneof![
        3 => Just(KeyChoice::Shared(0)),
        2 => Just(KeyChoice::Shared(1)),
        2 => Just(KeyChoice::Own),
    ];
    (propose, vote, key).prop_map(|(propose, vote, key)| Behave { propose, vote, key })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![any::<usize>().prop_map(Op::Remove), Just(Op::Add)]
}

fn round_strategy() -> impl Strategy<Value = RoundScript> {
    (
        prop_oneof![3 => Just(0usize), 1 => 1usize..=2],
        prop::collection::vec(op_strategy(), 2),
        prop::collection::vec(behave_strategy(), SLOTS),
        prop_oneof![8 => Just(Cancel::Never), 1 => Just(Cancel::Before), 2 => Just(Cancel::Midway), 2 => Just(Cancel::Dropped)],
    )
        .prop_map(|(n, ops, acts, cancel)| RoundScript {
            ops: ops.into_iter().take(n).collect(),
            cancel,
            acts,
        })
}

fn policy_strategy() -> impl Strategy<Value = Option<Supervision>> {
    prop_oneof![
        1 => Just(None),
        4 => (0u32..=3, 0u32..=3).prop_map(|(max, rounds)| Some(Supervision::quarantine(max, rounds))),
        2 => (0u32..=3).prop_map(|max| Some(Supervision::remove(max))),
    ]
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        2usize..=8,
        any::<u16>(),
        policy_strategy(),
        prop_oneof![Just(None), Just(Some(false)), Just(Some(true))],
        prop_oneof![3 => Just(true), 1 => Just(false)],
        prop_oneof![3 => Just(None), 1 => (1usize..=4).prop_map(Some)],
        prop::collection::vec(round_strategy(), 5..=20),
    )
        .prop_map(
            |(agents, heavy_mask, policy, hook, vote, max_in_flight, rounds)| Case {
                agents,
                heavy_mask,
                policy,
                hook,
                vote,
                max_in_flight,
                rounds,
            },
        )
}

fn cases() -> u32 {
    std::env::var("HUNT_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn supervision_and_stats_follow_the_sequential_model(case in case_strategy()) {
        if let Err(message) = run_case(&case) {
            prop_assert!(false, "{}", message);
        }
    }
}
