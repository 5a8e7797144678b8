//! What a round decided: accepted and rejected proposals, ballots, and the agents that failed.

use std::fmt;
use std::time::Duration;

use crate::agent::{AgentError, AgentId};
use crate::ballot::{BallotChoices, Tally, VoterChoice, VoterRecord};
use crate::context::label;
use crate::lockfree::{ConflictKind, ProposalId};
use crate::state::State;
use crate::supervision::Supervised;

/// How a round settles a group of conflicting proposals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ResolutionStrategy {
    /// A [`Ballot`](crate::Ballot) among the hive's voting agents, under the hive's
    /// [`ConsensusPolicy`](crate::ConsensusPolicy).
    #[default]
    Vote,
    /// The highest priority wins; equal priorities go to the lowest proposal id.
    HighestPriority,
    /// The proposal that reached the round first wins.
    FirstProposed,
    /// Every proposal in a conflict is rejected.
    RejectAll,
}

/// Why a proposal was not applied.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum RejectReason {
    /// Another proposal won the vote on a key they share.
    LostVote {
        /// The winner of the vote (which, like [`RejectReason::ConflictWith`]'s winner, may have
        /// lost a group on another key).
        winner: ProposalId,
    },
    /// The vote on a key it shares did not reach the quorum.
    NoQuorum,
    /// The vote on a key it shares ended in a tie (with [`TieBreak::NoDecision`](crate::TieBreak)).
    Tie,
    /// The vote on a key it shares reached the quorum but no candidate reached the threshold.
    Undecided,
    /// Another proposal won a conflict settled by priority or arrival order.
    ///
    /// Each conflict group is settled on its own, and a proposal in several groups is accepted
    /// only if it wins every one: the winner named here may itself have lost a group on another
    /// key, and then neither is applied (see [`Decision::is_accepted`]).
    ConflictWith {
        /// The winner of the conflict on the key they share.
        winner: ProposalId,
    },
    /// It conflicted with another proposal under [`ResolutionStrategy::RejectAll`].
    Contested,
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::LostVote { winner } => {
                write!(f, "lost the vote to proposal {}", label(*winner))
            }
            RejectReason::NoQuorum => f.write_str("the vote did not reach its quorum"),
            RejectReason::Tie => f.write_str("the vote ended in a tie"),
            RejectReason::Undecided => f.write_str("no candidate reached the threshold"),
            RejectReason::ConflictWith { winner } => {
                write!(f, "lost a conflict to proposal {}", label(*winner))
            }
            RejectReason::Contested => f.write_str("conflicting proposals are all rejected"),
        }
    }
}

/// Which call an agent failed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Phase {
    /// `Agent::propose`.
    Propose,
    /// `Agent::vote`.
    Vote,
}

/// How an agent failed.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum FailureKind {
    /// The call did not finish within the hive's `agent_timeout`.
    TimedOut,
    /// The call panicked.
    Panicked {
        /// The panic message, when it was a string.
        message: String,
    },
    /// The call returned an error.
    Errored {
        /// The error.
        error: AgentError,
    },
    /// The call was cancelled before it finished (the runtime is shutting down).
    Cancelled,
    /// The agent proposed an id another agent's proposal of the round already has; the proposal
    /// was dropped.
    DuplicateProposal {
        /// The id.
        id: ProposalId,
        /// The agent whose proposal holds the id.
        holder: AgentId,
    },
    /// The agent voted for a proposal that is not a candidate in the contest; the vote was dropped.
    InvalidVote {
        /// The proposal voted for.
        candidate: ProposalId,
    },
    /// A batch vote ([`Agent::vote_all`](crate::Agent::vote_all)) answered with a number of votes
    /// other than the number of contests asked about.
    WrongVoteCount {
        /// Contests asked about.
        contests: usize,
        /// Votes answered.
        votes: usize,
    },
}

/// One agent's failure in a round.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AgentFailure {
    /// The agent.
    pub agent: AgentId,
    /// The call.
    pub phase: Phase,
    /// What went wrong.
    pub kind: FailureKind,
}

/// The ballot held on one contested key.
#[derive(Clone)]
pub struct BallotRecord<K> {
    /// The contested key.
    pub key: K,
    /// How the candidates conflicted.
    pub kind: ConflictKind,
    /// The candidates.
    pub candidates: Vec<ProposalId>,
    /// The outcome.
    pub tally: Tally,
    /// Voters whose vote was counted (abstentions included).
    pub votes: usize,
    /// Voters the round stopped waiting for because the outcome could no longer change.
    pub cancelled: usize,
    /// Every voter's choice, as the ballot kept them (`None`: the ballot could not be held, for
    /// example without voters).
    pub(crate) choices: Option<BallotChoices>,
}

impl<K: fmt::Debug> fmt::Debug for BallotRecord<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BallotRecord")
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("candidates", &self.candidates)
            .field("tally", &self.tally)
            .field("votes", &self.votes)
            .field("cancelled", &self.cancelled)
            .field("voters", &self.voters().collect::<Vec<_>>())
            .finish()
    }
}

impl<K> BallotRecord<K> {
    /// Every voter's choice and weight, in the electorate's order (lowest agent id first): who
    /// voted for whom, who abstained, who failed and who was not waited for.
    pub fn voters(&self) -> impl Iterator<Item = VoterRecord> + '_ {
        self.choices
            .iter()
            .flat_map(|choices| choices.records(&self.candidates))
    }

    /// What `voter` did in this ballot, if it was a voter.
    pub fn choice_of(&self, voter: AgentId) -> Option<VoterChoice> {
        self.voters()
            .find(|record| record.voter == voter)
            .map(|record| record.choice)
    }
}

impl<K: fmt::Debug> fmt::Display for BallotRecord<K> {
    /// One line: the key, the candidates and the outcome; with `{:#}`, one more line per voter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ballot on {:?} ({}) between ", self.key, self.kind)?;
        for (index, candidate) in self.candidates.iter().enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            write!(f, "{separator}{}", label(*candidate))?;
        }
        write!(f, ": {}; {} votes", self.tally, self.votes)?;
        if self.cancelled > 0 {
            write!(f, ", {} not waited for", self.cancelled)?;
        }
        if f.alternate() {
            for voter in self.voters() {
                write!(f, "\n    {voter}")?;
            }
        }
        Ok(())
    }
}

/// The outcome of one round, [`Hive::decide`](crate::Hive::decide).
///
/// `Display` writes one line per item (accepted and rejected proposals with their proposers,
/// ballots, failures, supervision); `{:#}` adds every voter's choice under its ballot. With the `serde` feature
/// a decision serializes both ways (its id as 32 hex digits).
#[derive(Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(bound(
        serialize = "S::Key: serde::Serialize",
        deserialize = "S::Key: serde::Deserialize<'de>"
    ))
)]
pub struct Decision<S: State> {
    /// Identifies the decision across processes: the id its commit carried to the memory
    /// ([`CommitRequest::decision_id`](crate::CommitRequest)).
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::hex_id"))]
    pub id: u128,
    /// The round's number in this hive, from 1.
    pub round: u64,
    /// The memory version the agents saw.
    pub base_version: u64,
    /// The memory version holding this round's changes (equal to `base_version` when nothing was
    /// accepted).
    pub version: u64,
    /// True when another round committed after this one took its snapshot, so the accepted changes
    /// were applied on top of that newer state instead (see `Hive::decide`).
    pub rebased: bool,
    /// Agents asked to propose.
    pub agents: usize,
    /// Proposals received.
    pub proposals: usize,
    /// Who proposed what: every proposal received (accepted or not), with its proposer, in arrival
    /// order.
    pub proposers: Vec<(ProposalId, AgentId)>,
    /// Accepted proposals, by id, in the order they were applied.
    pub accepted: Vec<ProposalId>,
    /// Rejected proposals, with the first reason found for each.
    pub rejected: Vec<(ProposalId, RejectReason)>,
    /// The ballot of every contested key (strategy [`ResolutionStrategy::Vote`]).
    pub ballots: Vec<BallotRecord<S::Key>>,
    /// Agents that timed out, panicked, erred or answered invalidly.
    pub failures: Vec<AgentFailure>,
    /// Agents that supervision quarantined or removed after this round
    /// ([`HiveBuilder::supervision`](crate::HiveBuilder::supervision)).
    #[cfg_attr(feature = "serde", serde(default))]
    pub supervised: Vec<Supervised>,
    /// How long the round took, on tokio's clock (so a test with paused time sees the simulated
    /// time: a round that waited for a timeout reports exactly that timeout).
    pub elapsed: Duration,
}

impl<S: State> fmt::Debug for Decision<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("id", &format_args!("{:032x}", self.id))
            .field("round", &self.round)
            .field("base_version", &self.base_version)
            .field("version", &self.version)
            .field("rebased", &self.rebased)
            .field("agents", &self.agents)
            .field("proposals", &self.proposals)
            .field("proposers", &self.proposers)
            .field("accepted", &self.accepted)
            .field("rejected", &self.rejected)
            .field("ballots", &self.ballots)
            .field("failures", &self.failures)
            .field("supervised", &self.supervised)
            .field("elapsed", &self.elapsed)
            .finish()
    }
}

impl<S: State> Decision<S> {
    /// True when the proposal was accepted. A search of `accepted` (O(accepted)): to ask about
    /// many ids, collect `accepted` into a set once.
    pub fn is_accepted(&self, id: ProposalId) -> bool {
        self.accepted.contains(&id)
    }

    /// The agent that proposed `id`, if a proposal of the round has that id. A search of
    /// `proposers` (O(proposals)).
    pub fn proposer(&self, id: ProposalId) -> Option<AgentId> {
        self.proposers
            .iter()
            .find(|(proposal, _)| *proposal == id)
            .map(|(_, agent)| *agent)
    }

    /// The reason the proposal was rejected, if it was. A search of `rejected` (O(rejected)).
    pub fn rejection(&self, id: ProposalId) -> Option<&RejectReason> {
        self.rejected
            .iter()
            .find(|(rejected, _)| *rejected == id)
            .map(|(_, reason)| reason)
    }
}

impl<S: State> fmt::Display for Decision<S> {
    /// A header line, then one line per accepted and rejected proposal (with its proposer), per
    /// ballot and per failure; with `{:#}`, every voter's choice under its ballot.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "round {}: {} agents, {} proposals, {} accepted, {} rejected; version {}",
            self.round,
            self.agents,
            self.proposals,
            self.accepted.len(),
            self.rejected.len(),
            self.base_version,
        )?;
        if self.version != self.base_version {
            write!(f, " -> {}", self.version)?;
        }
        if self.rebased {
            f.write_str(" (rebased)")?;
        }
        write!(f, " in {:.3?}", self.elapsed)?;
        let by = |id: ProposalId| match self.proposer(id) {
            Some(agent) => format!(" from {agent}"),
            None => String::new(),
        };
        for &id in &self.accepted {
            write!(f, "\n  accepted {}{}", label(id), by(id))?;
        }
        for (id, reason) in &self.rejected {
            write!(f, "\n  rejected {}{}: {reason}", label(*id), by(*id))?;
        }
        for ballot in &self.ballots {
            if f.alternate() {
                write!(f, "\n  {ballot:#}")?;
            } else {
                write!(f, "\n  {ballot}")?;
            }
        }
        for failure in &self.failures {
            write!(f, "\n  failed: {failure}")?;
        }
        for record in &self.supervised {
            write!(f, "\n  supervised: {record}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Propose => "propose",
            Phase::Vote => "vote",
        })
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::TimedOut => f.write_str("timed out"),
            FailureKind::Panicked { message } => write!(f, "panicked: {message}"),
            FailureKind::Errored { error } => write!(f, "returned an error: {error}"),
            FailureKind::Cancelled => f.write_str("was cancelled (the runtime is shutting down)"),
            FailureKind::DuplicateProposal { id, holder } => write!(
                f,
                "proposed {}, an id {holder} already proposed",
                label(*id)
            ),
            FailureKind::WrongVoteCount { contests, votes } => write!(
                f,
                "answered {votes} votes for {contests} contests in a batch vote"
            ),
            FailureKind::InvalidVote { candidate } => {
                write!(
                    f,
                    "voted for {}, which is not a candidate",
                    label(*candidate)
                )
            }
        }
    }
}

impl fmt::Display for AgentFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} in {}", self.agent, self.kind, self.phase)
    }
}
