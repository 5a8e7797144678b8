//! The collective memory seen from plain threads, as a synchronous service would use it: rounds
//! driven by `hivekit_runtime::execute` on several OS threads at once commit one version each,
//! readers on other threads only ever see whole versions (never a state half applied, never a
//! version going back), and the history holds what it keeps in order with the right decisions.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use hivekit_hive::{Agent, AgentContext, AgentError, Hive, ProposalOf, Snapshot, State};

/// Two sums that every change moves together, and the number of changes applied.
#[derive(Clone, Default, Debug)]
struct Pair {
    a: u64,
    b: u64,
    changes: u64,
    seen: Vec<u64>,
}

impl State for Pair {
    type Key = ();
    type Change = u64;
    fn apply(&mut self, delta: &u64) {
        self.a += delta;
        self.seen.push(*delta);
        self.b += delta;
        self.changes += 1;
    }
}

/// Proposes the delta `version + 1` on the one key.
struct Bumper;

impl Agent<Pair> for Bumper {
    async fn propose(
        &self,
        ctx: &AgentContext,
        view: &Snapshot<Pair>,
    ) -> Result<Option<ProposalOf<Pair>>, AgentError> {
        Ok(Some(ctx.proposal(view.version() + 1).writes([()])))
    }
}

#[test]
fn rounds_from_several_threads_commit_one_version_each_and_readers_see_whole_versions() {
    const WRITERS: usize = 3;
    const ROUNDS: usize = 40;
    const READERS: usize = 2;
    let hive = Arc::new(Hive::builder(Pair::default()).history(8).build().unwrap());
    hive.spawn(Bumper);
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(WRITERS + READERS));

    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (hive, done, start) = (Arc::clone(&hive), Arc::clone(&done), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                let mut last = 0;
                let mut loads = 0_u64;
                while !done.load(Ordering::Acquire) || loads == 0 {
                    let view = hive.memory().load();
                    assert_eq!(
                        view.a,
                        view.b,
                        "a state half applied at v{}",
                        view.version()
                    );
                    assert_eq!(view.changes, view.version(), "one change per version");
                    assert_eq!(view.seen.len() as u64, view.changes);
                    assert!(view.version() >= last, "version went back");
                    assert!(hive.memory().version() >= view.version());
                    last = view.version();
                    loads += 1;
                }
                loads
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (hive, start) = (Arc::clone(&hive), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                (0..ROUNDS)
                    .map(|_| {
                        let decision =
                            hivekit_runtime::execute(hive.decide()).expect("the round decides");
                        assert_eq!(decision.accepted.len(), 1);
                        (decision.round, decision.version)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut rounds = BTreeSet::new();
    let mut versions = BTreeSet::new();
    for writer in writers {
        for (round, version) in writer.join().expect("writer") {
            assert!(rounds.insert(round), "round {round} twice");
            assert!(versions.insert(version), "version {version} twice");
        }
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        assert!(reader.join().expect("reader") > 0);
    }
    let total = (WRITERS * ROUNDS) as u64;
    assert_eq!(rounds, (1..=total).collect());
    assert_eq!(versions, (1..=total).collect());
    let state = hive.memory().load();
    assert_eq!(state.version(), total);
    assert_eq!(state.changes, total);
    assert_eq!(state.a, state.b);

    // What the history keeps is in version order, each with the decision that made it.
    let history = hive.memory().history();
    assert!(
        !history.is_empty() && history.len() <= 8,
        "{}",
        history.len()
    );
    for pair in history.windows(2) {
        assert!(pair[0].snapshot.version() < pair[1].snapshot.version());
    }
    for entry in &history {
        assert_eq!(entry.decision.version, entry.snapshot.version());
        assert_eq!(entry.snapshot.changes, entry.snapshot.version());
        assert_eq!(entry.snapshot.a, entry.snapshot.b);
    }
    assert_eq!(
        history.last().map(|entry| entry.snapshot.version()),
        Some(total),
        "the last commit is the newest kept"
    );
}
