//! Review of `LazyCancel::is_cancelled` now also reading the token it handed out ("Whether
//! `cancel` was called, the parent was cancelled, or the token handed out was cancelled by
//! whoever holds it", crates/runtime/src/lazy_cancel.rs:68-69), with the older promises it must
//! keep: the parent is never cancelled by the child, a token asked for later is the same token,
//! and racing cancels from every side leave everything cancelled.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hivekit_runtime::LazyCancel;
use tokio_util::sync::CancellationToken;

#[test]
fn a_holder_cancelling_the_handed_out_token_is_seen_and_leaves_the_parent_alone() {
    let parent = CancellationToken::new();
    let lazy = LazyCancel::child_of(parent.clone());
    let token = lazy.token().clone();
    assert!(!lazy.is_cancelled());
    token.cancel();
    assert!(lazy.is_cancelled());
    assert!(
        lazy.token().is_cancelled(),
        "the token asked for again is the same, cancelled"
    );
    assert!(
        !parent.is_cancelled(),
        "the holder's cancel reached the parent"
    );
    assert!(format!("{lazy:?}").contains("cancelled: true"), "{lazy:?}");
    // Cancelling again from the owner's side is harmless.
    lazy.cancel();
    assert!(lazy.is_cancelled() && !parent.is_cancelled());
}

#[test]
fn a_token_cancelled_on_another_thread_is_seen_by_is_cancelled() {
    for _ in 0..200 {
        let lazy = Arc::new(LazyCancel::new());
        let token = lazy.token().clone();
        let canceller = std::thread::spawn(move || token.cancel());
        canceller.join().unwrap();
        assert!(lazy.is_cancelled());
    }
}

/// The owner cancels, a holder cancels, another thread asks for the token and polls
/// `is_cancelled`, all at once: afterwards everyone agrees it is cancelled.
#[test]
fn racing_cancels_from_the_owner_the_holder_and_the_parent_all_end_cancelled() {
    for round in 0..300 {
        let parent = CancellationToken::new();
        let lazy = Arc::new(LazyCancel::child_of(parent.clone()));
        let early = lazy.token().clone();
        let barrier = Arc::new(Barrier::new(4));
        let threads = [0, 1, 2, 3].map(|who| {
            let (lazy, early, parent, barrier) =
                (lazy.clone(), early.clone(), parent.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                match (who, round % 3) {
                    (0, _) => lazy.cancel(),
                    (1, 0) => early.cancel(),
                    (1, 1) => parent.cancel(),
                    (1, _) => {}
                    (2, _) => {
                        let late = lazy.token().clone();
                        let deadline = Instant::now() + Duration::from_secs(5);
                        while !late.is_cancelled() {
                            assert!(
                                Instant::now() < deadline,
                                "a token asked for late stays live"
                            );
                            std::hint::spin_loop();
                        }
                    }
                    _ => {
                        let deadline = Instant::now() + Duration::from_secs(5);
                        while !lazy.is_cancelled() {
                            assert!(Instant::now() < deadline, "is_cancelled never turned true");
                            std::hint::spin_loop();
                        }
                    }
                }
            })
        });
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(lazy.is_cancelled() && early.is_cancelled() && lazy.token().is_cancelled());
        assert_eq!(parent.is_cancelled(), round % 3 == 1, "round {round}");
    }
}
