//! Key-occurrence counts that overflow `usize` (zero-sized keys, no memory) must give a typed error, not a panic or hang.

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use hivekit_lockfree::{
    aggregate, detect_conflicts, Aggregator, Proposal, ProposalError, Resolution, Sum,
};

/// Runs `f` on its own thread; `Err` with the panic message, or a timeout message.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".to_string())
        });
        let _ = tx.send(result);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(message)) => Err(format!("panicked: {message}")),
        Err(_) => Err("did not return within 20 s (hang)".to_string()),
    }
}

fn is_too_many_keys(result: &Result<(), ProposalError>) -> bool {
    matches!(result, Err(ProposalError::TooManyKeys { .. }))
}

#[test]
fn detect_conflicts_refuses_one_proposal_with_more_than_the_key_limit() {
    let outcome = bounded(|| {
        let proposals = vec![Proposal::new(1, ()).writes(support::zst_keys(1 << 32))];
        detect_conflicts(&proposals).map(|_| ())
    });
    let outcome = outcome.expect("detect_conflicts must return");
    assert!(is_too_many_keys(&outcome), "got {outcome:?}");
}

#[test]
fn detect_conflicts_refuses_key_counts_that_overflow_usize() {
    // Two proposals whose key counts sum past usize::MAX: documented as TooManyKeys (beyond
    // 2^32 - 2 key occurrences); an unchecked sum panics (debug) or wraps (release).
    let outcome = bounded(|| {
        let half = usize::MAX / 2 + 1;
        let proposals = vec![
            Proposal::new(1, ()).writes(support::zst_keys(half)),
            Proposal::new(2, ()).reads(support::zst_keys(half)),
        ];
        detect_conflicts(&proposals).map(|_| ())
    });
    let outcome = outcome.expect("detect_conflicts must return a typed error");
    assert!(is_too_many_keys(&outcome), "got {outcome:?}");
}

#[test]
fn aggregate_refuses_key_counts_that_overflow_usize() {
    let outcome = bounded(|| {
        let half = usize::MAX / 2 + 1;
        let proposals = vec![
            Proposal::new(1, Sum(1_u64)).writes(support::zst_keys(half)),
            Proposal::new(2, Sum(2_u64)).writes(support::zst_keys(half)),
        ];
        aggregate(proposals, Resolution::HighestPriority).map(|_| ())
    });
    let outcome = outcome.expect("aggregate must return a typed error");
    assert!(is_too_many_keys(&outcome), "got {outcome:?}");
}

#[test]
fn aggregator_submit_refuses_one_proposal_whose_reads_and_writes_overflow_usize() {
    let outcome = bounded(|| {
        let aggregator: Aggregator<(), Sum<u64>> = Aggregator::new();
        let proposal = Proposal::new(1, Sum(1_u64))
            .writes(support::zst_keys(usize::MAX))
            .reads(support::zst_keys(1));
        let result = aggregator.submit(proposal);
        (result, aggregator.len())
    });
    let (result, len) = outcome.expect("submit must return a typed error");
    assert!(is_too_many_keys(&result), "got {result:?}");
    assert_eq!(len, 0, "a refused proposal is not counted");
}

#[test]
fn aggregator_submit_refuses_a_proposal_over_its_shard_budget_and_stays_usable() {
    let outcome = bounded(|| {
        let aggregator: Aggregator<(), Sum<u64>> = Aggregator::new();
        let huge = Proposal::new(1, Sum(1_u64)).writes(support::zst_keys(1 << 32));
        let refused = aggregator.submit(huge);
        // The refused id is not taken: it may be submitted again with few keys.
        let again = aggregator.submit(Proposal::new(1, Sum(5_u64)).writes(support::zst_keys(1)));
        let other = aggregator.submit(Proposal::new(2, Sum(7_u64)).reads(support::zst_keys(1)));
        let outcome = aggregator.finish(Resolution::HighestPriority);
        (
            refused,
            again,
            other,
            outcome.accepted.len(),
            outcome.rejected.len(),
        )
    });
    let (refused, again, other, accepted, rejected) = outcome.expect("must return");
    assert!(is_too_many_keys(&refused), "got {refused:?}");
    assert_eq!(again, Ok(()));
    assert_eq!(other, Ok(()));
    assert_eq!((accepted, rejected), (1, 1));
}
