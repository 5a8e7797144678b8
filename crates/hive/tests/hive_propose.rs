//! The propose phase's calls: those that answer at once share one heap block for their futures,
//! those still pending keep running; every member's answer or failure is counted exactly once
//! whatever mix of agent types, answers and failures a round holds.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{Agent, AgentContext, AgentError, FailureKind, Hive, ProposalId, Snapshot};
use support::{Behaviour, Ledger, LedgerProposal, Writer};

/// An agent whose `propose` future is much larger than a [`Writer`]'s (it holds a buffer across
/// an await), so that it needs another block.
struct Wide {
    id: u64,
    yields: bool,
    dropped: Arc<AtomicUsize>,
}

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Agent<Ledger> for Wide {
    async fn propose(
        &self,
        _: &AgentContext,
        _: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        let buffer = [self.id as u8; 512];
        let held = Counted(Arc::clone(&self.dropped));
        if self.yields {
            tokio::task::yield_now().await;
        }
        drop(held);
        std::hint::black_box(&buffer);
        Ok(Some(support::add(self.id, 1_000 + self.id, 1)))
    }
}

#[tokio::test(start_paused = true)]
async fn a_round_mixing_agent_types_instant_pending_and_failing_calls_counts_each_answer_once() {
    let hive = Hive::new(Ledger::default());
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut expected = Vec::new();
    for n in 0..60u64 {
        match n % 6 {
            0 | 1 => {
                hive.spawn(Writer::new(n, n));
                expected.push(ProposalId(n));
            }
            2 => {
                hive.spawn(Wide {
                    id: n,
                    yields: n % 4 == 0,
                    dropped: Arc::clone(&dropped),
                });
                expected.push(ProposalId(n));
            }
            3 => {
                hive.spawn(Writer::new(n, n).proposing(Behaviour::Slow(Duration::from_millis(5))));
                expected.push(ProposalId(n));
            }
            4 => {
                hive.spawn(Writer::new(n, n).proposing(Behaviour::Panic));
            }
            _ => {
                hive.spawn(Writer::new(n, n).proposing(Behaviour::Fail));
            }
        }
    }
    for _ in 0..3 {
        let decision = hive.decide().await.unwrap();
        let mut accepted = decision.accepted.clone();
        accepted.sort_unstable();
        assert_eq!(accepted, expected);
        let panics = decision
            .failures
            .iter()
            .filter(|failure| matches!(failure.kind, FailureKind::Panicked { .. }))
            .count();
        let errors = decision
            .failures
            .iter()
            .filter(|failure| matches!(failure.kind, FailureKind::Errored { .. }))
            .count();
        assert_eq!((panics, errors, decision.failures.len()), (10, 10, 20));
    }
    // Every `Wide` call ran to its end exactly once per round.
    assert_eq!(dropped.load(Ordering::SeqCst), 3 * 10);
}
