//! `HiveStats` as the sum of what the rounds' decisions report: rounds, commits, proposals,
//! accepted, rejected, conflicts, votes, cancelled votes and every kind of failure.

mod support;

use std::time::Duration;

use hivekit_hive::{Decision, FailureKind, Hive};
use support::{Behaviour, Choice, Ledger, Writer};

#[tokio::test(start_paused = true)]
async fn stats_are_the_sum_of_the_decisions() {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 7).choosing(Choice::For(1)));
    hive.spawn(Writer::new(2, 7).choosing(Choice::For(2)));
    hive.spawn(Writer::new(3, 8).voting(Behaviour::Panic));
    hive.spawn(Writer::new(4, 8).choosing(Choice::Bogus));
    hive.spawn(Writer::silent().proposing(Behaviour::Fail));
    hive.spawn(Writer::new(5, 9).proposing(Behaviour::Never));
    hive.spawn(Writer::new(1, 10)); // a duplicate id: invalid
    hive.spawn(Writer::silent().voting(Behaviour::Slow(Duration::from_secs(5))));

    let mut decisions: Vec<Decision<Ledger>> = Vec::new();
    for _ in 0..3 {
        decisions.push(
            tokio::time::timeout(Duration::from_secs(30), hive.decide())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let sum = |f: &dyn Fn(&Decision<Ledger>) -> usize| -> u64 {
        decisions.iter().map(|d| f(d) as u64).sum()
    };
    let failures = |matches: &dyn Fn(&FailureKind) -> bool| {
        sum(&|d| d.failures.iter().filter(|f| matches(&f.kind)).count())
    };
    let stats = hive.stats();
    assert_eq!(stats.rounds, 3);
    assert_eq!(
        stats.commits,
        sum(&|d| usize::from(d.version > d.base_version))
    );
    assert_eq!(stats.proposals, sum(&|d| d.proposals), "{stats:?}");
    assert_eq!(stats.accepted, sum(&|d| d.accepted.len()));
    assert_eq!(stats.rejected, sum(&|d| d.rejected.len()));
    assert_eq!(stats.conflicts, sum(&|d| d.ballots.len()));
    assert_eq!(
        stats.votes,
        sum(&|d| d.ballots.iter().map(|b| b.votes).sum())
    );
    assert_eq!(
        stats.cancelled_votes,
        sum(&|d| d.ballots.iter().map(|b| b.cancelled).sum())
    );
    assert_eq!(
        stats.timeouts,
        failures(&|k| matches!(k, FailureKind::TimedOut))
    );
    assert_eq!(
        stats.panics,
        failures(&|k| matches!(k, FailureKind::Panicked { .. }))
    );
    assert_eq!(
        stats.errors,
        failures(&|k| matches!(k, FailureKind::Errored { .. }))
    );
    assert_eq!(
        stats.invalid,
        failures(&|k| matches!(
            k,
            FailureKind::DuplicateProposal { .. }
                | FailureKind::InvalidVote { .. }
                | FailureKind::WrongVoteCount { .. }
        ))
    );
    // Every failure kind scripted above happened.
    assert!(
        stats.timeouts >= 3 && stats.panics >= 3 && stats.errors == 3,
        "{stats:?}"
    );
    assert!(stats.invalid >= 3, "{stats:?}");
}
