//! Committing a round: the accepted changes applied as one new version, the counters, the
//! decision.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::decision::Decision;
use crate::error::HiveError;
use crate::events::HiveEvent;
use crate::memory::{new_decision_id, AcceptedChange, CommitRequest};
use crate::state::State;

use crate::round::{Proposals, Round, RoundSpare, Settled};

impl<S: State> Round<'_, S> {
    /// Applies and commits the accepted changes, counts the round, and writes its decision.
    pub(super) async fn commit(
        self,
        (proposed, settled): (Proposals<S>, Settled<S::Key>),
    ) -> Result<Decision<S>, HiveError> {
        let Proposals {
            proposals,
            proposers,
            ..
        } = &proposed;
        let mut accepted = Vec::with_capacity(proposals.len());
        let mut rejections = Vec::new();
        let mut rejected = settled.rejected;
        for (index, (proposal, rejection)) in proposals.iter().zip(rejected.drain(..)).enumerate() {
            match rejection {
                None => accepted.push(AcceptedChange {
                    proposal,
                    proposer: Some(self.members[proposers[index]].id),
                }),
                Some(reason) => rejections.push((proposal.id, reason)),
            }
        }
        let base_version = self.view.version();
        let id = new_decision_id();
        let memory = &self.hive.inner.memory;
        // The committed version, for the history: read at once, before another round's commit
        // overtakes it (read after the events, it was most versions under concurrent rounds).
        let mut committed_view = None;
        let (version, rebased) = if accepted.is_empty() {
            (base_version, false)
        } else {
            let request = CommitRequest {
                decision_id: id,
                round: self.number,
                base: base_version,
                accepted: &accepted,
            };
            let committed = match memory.commit(&self.view, request).await {
                Ok(committed) => {
                    if memory.depth() > 0 {
                        committed_view = Some(memory.load());
                    }
                    committed
                }
                Err(error) => {
                    if error.may_have_committed() {
                        // Not retried here: a retry would commit the decision a second time.
                        tracing::warn!(%error, decision = id, "commit outcome unknown; it may have applied");
                    } else {
                        tracing::warn!(%error, "commit failed; nothing applied");
                    }
                    return Err(self.end_failed(error.into()));
                }
            };
            (committed.version, committed.rebased)
        };
        let counters = &self.hive.inner.counters;
        let add = |counter: &AtomicU64, value: usize| {
            if value > 0 {
                counter.fetch_add(value as u64, Ordering::Relaxed);
            }
        };
        add(&counters.commits, usize::from(!accepted.is_empty()));
        add(&counters.rebases, usize::from(rebased));
        add(&counters.proposals, proposals.len());
        add(&counters.accepted, accepted.len());
        add(&counters.rejected, rejections.len());
        add(&counters.conflicts, settled.conflicts);
        add(&counters.votes, settled.votes_counted);
        add(&counters.cancelled_votes, settled.votes_cancelled);
        let supervised = self.supervise();
        // Last, after supervision's events: every round's events end with exactly one of
        // `Committed`, `NothingToCommit` and `RoundFailed` (a panic after it adds none).
        self.unended.ended();
        if accepted.is_empty() {
            tracing::info!(proposals = proposals.len(), "nothing to commit");
            self.emit(|| HiveEvent::NothingToCommit { round: self.number });
        } else {
            tracing::info!(version, accepted = accepted.len(), rebased, "committed");
            self.emit(|| HiveEvent::Committed {
                round: self.number,
                version,
                accepted: accepted.len(),
                rebased,
            });
        }

        let decision = Decision {
            id,
            round: self.number,
            base_version,
            version,
            rebased,
            agents: self.members.len(),
            proposals: proposals.len(),
            proposers: proposals
                .iter()
                .zip(proposers)
                .map(|(proposal, &member)| (proposal.id, self.members[member].id))
                .collect(),
            accepted: accepted.iter().map(|change| change.proposal.id).collect(),
            rejected: rejections,
            ballots: settled.ballots,
            failures: self.failures,
            supervised,
            elapsed: self.started.elapsed(),
        };
        if let Some(view) = committed_view {
            memory.remember(view, &decision);
        }
        drop(accepted);
        let mut buffers = self.buffers;
        buffers.proposals = proposed.proposals;
        buffers.proposers = proposed.proposers;
        buffers.rejected = rejected;
        RoundSpare::leave(
            self.hive,
            &self.roster,
            self.members,
            buffers,
            self.electorates,
        );
        Ok(decision)
    }

    /// Ends a round that returns `error` instead of a decision after its phases ended (conflict
    /// detection refused the proposals, or its commit was refused or failed): its agents'
    /// failures still count, in the stats and for supervision (their events were sent, and
    /// supervision counts a round in which an agent failed), and the round's events end with
    /// [`HiveEvent::RoundFailed`].
    #[cold]
    #[inline(never)]
    pub(super) fn end_failed(&self, error: HiveError) -> HiveError {
        self.supervise();
        self.unended.ended();
        self.emit(|| HiveEvent::RoundFailed {
            round: self.number,
            error: error.to_string(),
        });
        error
    }

    /// Ends a round its token cancelled, as a round whose future is dropped ends: only the
    /// failures it reported go to supervision, and nobody's record is cleared (a phase cut short
    /// may hold failures it has not reported, and members whose calls it cut short did not get
    /// a round to fail or not in). Its events end with [`HiveEvent::RoundFailed`].
    #[cold]
    #[inline(never)]
    pub(super) fn end_cancelled(&self, error: HiveError) -> HiveError {
        self.unsupervised.hand_over();
        self.unended.ended();
        self.emit(|| HiveEvent::RoundFailed {
            round: self.number,
            error: error.to_string(),
        });
        error
    }
}
