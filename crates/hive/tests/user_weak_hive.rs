//! `Hive::downgrade`: an agent holding a `WeakHive` can still call its hive during a round, and
//! no longer keeps the hive (and so itself) alive once every other handle is dropped, where an
//! agent holding a `Hive` leaks the hive with all its agents.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hivekit_hive::{Agent, AgentContext, AgentError, Hive, ProposalOf, Snapshot, State, WeakHive};

#[derive(Clone, Default)]
struct Counter(u64);

impl State for Counter {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Counts its drops; on its first proposal, recruits a helper through its own hive.
struct Recruiter {
    hive: WeakHive<Counter>,
    drops: Arc<AtomicUsize>,
    recruited: AtomicUsize,
}

impl Drop for Recruiter {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

impl Agent<Counter> for Recruiter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Counter>,
    ) -> Result<Option<ProposalOf<Counter>>, AgentError> {
        if self.recruited.fetch_add(1, Ordering::SeqCst) == 0 {
            let hive = self
                .hive
                .upgrade()
                .ok_or_else(|| AgentError::msg("hive gone"))?;
            hive.spawn(Recruiter {
                hive: self.hive.clone(),
                drops: self.drops.clone(),
                // The helper recruits nobody.
                recruited: AtomicUsize::new(1),
            });
        }
        Ok(Some(ctx.proposal(1)))
    }
}

#[test]
fn agents_holding_a_weak_hive_call_it_and_go_with_the_last_handle() {
    let drops = Arc::new(AtomicUsize::new(0));
    let hive = Hive::new(Counter::default());
    for _ in 0..3 {
        hive.spawn(Recruiter {
            hive: hive.downgrade(),
            drops: drops.clone(),
            recruited: AtomicUsize::new(0),
        });
    }
    let first = hivekit_runtime::execute(hive.decide()).unwrap();
    assert_eq!(first.accepted.len(), 3);
    assert_eq!(hive.len(), 6, "each agent recruited one helper");
    let second = hivekit_runtime::execute(hive.decide()).unwrap();
    assert_eq!(second.accepted.len(), 6);
    assert_eq!(hive.memory().load().0, 9);

    let weak = hive.downgrade();
    drop(hive);
    assert!(weak.upgrade().is_none());
    assert_eq!(
        drops.load(Ordering::SeqCst),
        6,
        "every agent was dropped with the hive"
    );
}
