//! Settling the conflicts among a round's proposals: by ballot or by the hive's resolution rule.

use crate::ballot::Tally;
use crate::decision::{RejectReason, ResolutionStrategy};
use crate::error::HiveError;
use crate::events::HiveEvent;
use crate::lockfree::{
    self, detect_conflicts, resolve_conflicts, ConflictGroup, ProposalId, Resolution,
};
use crate::state::State;

use crate::round::vote::Proposed;
use crate::round::{PositionOf, Proposals, Round, Settled};

impl<S: State> Round<'_, S> {
    /// Detects the conflicts among the proposals and settles each group.
    pub(super) async fn settle(
        &mut self,
        proposed: &Proposals<S>,
    ) -> Result<Settled<S::Key>, HiveError> {
        let Proposals {
            proposals,
            proposers,
            position: positions,
        } = proposed;
        let report = detect_conflicts(proposals)?;
        // Empty, with the capacity an earlier round left it.
        let mut rejected = std::mem::take(&mut self.buffers.rejected);
        rejected.resize(proposals.len(), None);
        let mut settled = Settled {
            rejected,
            // One record per group under a vote: sized once, not grown record by record (each
            // regrowth past a kibibyte makes glibc consolidate every small block freed so far).
            ballots: match self.config().resolution {
                ResolutionStrategy::Vote => Vec::with_capacity(report.groups.len()),
                _ => Vec::new(),
            },
            conflicts: report.groups.len(),
            votes_counted: 0,
            votes_cancelled: 0,
        };
        if report.groups.is_empty() {
            return Ok(settled);
        }
        // Each group's members are looked up about twice (its contest, its outcome).
        let lookups = 2 * report
            .groups
            .iter()
            .map(|group| group.members.len())
            .sum::<usize>();
        let position = positions.of(proposals, lookups);
        for group in &report.groups {
            tracing::debug!(key = ?group.key, kind = %group.kind, candidates = group.members.len(), "conflict found");
            self.emit(|| HiveEvent::ConflictFound {
                round: self.number,
                key: group.key.clone(),
                kind: group.kind,
                candidates: group.members.clone(),
            });
        }
        let rejected = &mut settled.rejected;
        match self.config().resolution {
            ResolutionStrategy::Vote => {
                let failed_before = self.failures.len();
                let records = self
                    .hold_ballots(
                        &report.groups,
                        Proposed {
                            proposals,
                            position,
                            proposers,
                        },
                    )
                    .await;
                self.report_failures(failed_before);
                for (group, record) in report.groups.iter().zip(records) {
                    tracing::debug!(key = ?record.key, tally = %record.tally, votes = record.votes, "ballot settled");
                    self.emit(|| HiveEvent::BallotSettled {
                        round: self.number,
                        key: record.key.clone(),
                        tally: record.tally.clone(),
                        votes: record.votes,
                    });
                    settled.votes_counted += record.votes;
                    settled.votes_cancelled += record.cancelled;
                    match record.tally.winner() {
                        Some(winner) => settle(
                            group,
                            winner,
                            RejectReason::LostVote { winner },
                            position,
                            rejected,
                        ),
                        None => {
                            let reason = match record.tally {
                                Tally::NoQuorum { .. } => RejectReason::NoQuorum,
                                Tally::Tie { .. } => RejectReason::Tie,
                                _ => RejectReason::Undecided,
                            };
                            reject_all(group, &reason, position, rejected);
                        }
                    }
                    settled.ballots.push(record);
                }
            }
            ResolutionStrategy::HighestPriority
            | ResolutionStrategy::FirstProposed
            | ResolutionStrategy::RejectAll => {
                let policy = match self.config().resolution {
                    ResolutionStrategy::HighestPriority => Resolution::HighestPriority,
                    ResolutionStrategy::FirstProposed => Resolution::FirstSubmitted,
                    _ => Resolution::RejectAll,
                };
                let priority_of = |id: ProposalId| proposals[position.at(id)].priority;
                for (id, reason) in resolve_conflicts(&report.groups, policy, priority_of) {
                    let reason = match reason {
                        lockfree::RejectReason::LostTo { winner, .. } => {
                            RejectReason::ConflictWith { winner }
                        }
                        _ => RejectReason::Contested,
                    };
                    rejected[position.at(id)].get_or_insert(reason);
                }
            }
        }
        Ok(settled)
    }
}

/// Rejects every member of `group` that conflicts with `winner` on the group's key (lockfree's
/// resolution rule, [`ConflictGroup::losers_to`]): all of them if the winner writes the key, the
/// other writers if it only reads it.
fn settle<K, P>(
    group: &ConflictGroup<K>,
    winner: ProposalId,
    reason: RejectReason,
    position: PositionOf<'_, K, P>,
    rejected: &mut [Option<RejectReason>],
) {
    for member in group.losers_to(winner) {
        rejected[position.at(member)].get_or_insert_with(|| reason.clone());
    }
}

fn reject_all<K, P>(
    group: &ConflictGroup<K>,
    reason: &RejectReason,
    position: PositionOf<'_, K, P>,
    rejected: &mut [Option<RejectReason>],
) {
    for member in &group.members {
        let slot = &mut rejected[position.at(*member)];
        if slot.is_none() {
            *slot = Some(reason.clone());
        }
    }
}
