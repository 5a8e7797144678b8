//! The two helpers the hive and the swarm build their rounds on, used as a crate above would:
//! `LazyCancel` (a token handed out while another thread cancels is never left uncancelled; a
//! parent's cancellation reaches it; its own cancellation leaves the parent alone) and
//! `start_in_spare` (futures of any size and alignment, alternating layouts, pending ones finishing
//! later, panics in poll and in drop: every value dropped exactly once).

use std::future::{pending, poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};
use std::thread;

use hivekit_runtime::{start_in_spare, First, LazyCancel, Spare};
use tokio_util::sync::CancellationToken;

#[test]
fn a_token_asked_for_while_another_thread_cancels_is_always_cancelled() {
    for _ in 0..500 {
        let cancel = Arc::new(LazyCancel::new());
        let start = Arc::new(Barrier::new(2));
        let asker = {
            let (cancel, start) = (Arc::clone(&cancel), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                cancel.token().clone()
            })
        };
        start.wait();
        cancel.cancel();
        let token = asker.join().unwrap();
        assert!(
            token.is_cancelled(),
            "a token handed out was left uncancelled"
        );
        assert!(cancel.is_cancelled());
    }
}

#[test]
fn a_parent_cancels_its_lazy_child_and_the_child_leaves_the_parent_alone() {
    let parent = CancellationToken::new();
    let before = LazyCancel::child_of(parent.clone());
    let early = before.token().clone();
    let after = LazyCancel::child_of(parent.clone());
    parent.cancel();
    assert!(before.is_cancelled() && early.is_cancelled());
    assert!(after.is_cancelled());
    assert!(
        after.token().is_cancelled(),
        "a token made after the parent's cancellation"
    );

    let parent = CancellationToken::new();
    let child = LazyCancel::child_of(parent.clone());
    let token = child.token().clone();
    child.cancel();
    assert!(token.is_cancelled() && child.is_cancelled());
    assert!(
        !parent.is_cancelled(),
        "a child's cancel leaves its parent alone"
    );
}

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future of a chosen alignment that answers its value after `polls` pending polls.
#[repr(align(4096))]
struct PageAligned {
    polls: u32,
    value: u64,
    _held: Counted,
}

impl Future for PageAligned {
    type Output = u64;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        assert_eq!(
            &*self as *const Self as usize % 4096,
            0,
            "misaligned future"
        );
        if self.polls == 0 {
            return Poll::Ready(self.value);
        }
        self.polls -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Panics when polled, or when dropped.
struct Explodes {
    in_poll: bool,
    _held: Counted,
}

impl Future for Explodes {
    type Output = u64;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<u64> {
        if self.in_poll {
            panic!("poll exploded");
        }
        Poll::Ready(9)
    }
}

impl Drop for Explodes {
    fn drop(&mut self) {
        if !self.in_poll && !std::thread::panicking() {
            panic!("drop exploded");
        }
    }
}

#[test]
fn futures_of_any_layout_run_in_one_spare_and_every_value_is_dropped_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let made = AtomicUsize::new(0);
    let counted = || {
        made.fetch_add(1, Ordering::SeqCst);
        Counted(Arc::clone(&drops))
    };
    let mut spare = Spare::new();
    let mut pending_calls = Vec::new();
    let mut answers = Vec::new();
    pollster::block_on(poll_fn(|cx| {
        for round in 0..20_u64 {
            // A small future, a page-aligned one, a zero-sized one: the block changes layout.
            let small = {
                let held = counted();
                async move {
                    let _held = held;
                    round
                }
            };
            match start_in_spare(small, &mut spare, cx) {
                Ok(First::Ready(value)) => answers.push(value),
                other => panic!("a ready async block: {:?}", other.is_ok()),
            }
            let aligned = PageAligned {
                polls: (round % 3) as u32,
                value: 100 + round,
                _held: counted(),
            };
            match start_in_spare(aligned, &mut spare, cx) {
                Ok(First::Ready(value)) => answers.push(value),
                Ok(First::Pending(call)) => pending_calls.push(call),
                Err(_) => panic!("no panic expected"),
            }
            match start_in_spare(std::future::ready(1000 + round), &mut spare, cx) {
                Ok(First::Ready(value)) => answers.push(value),
                _ => panic!("a ready zero-sized future"),
            }
            let zero_sized_pending = pending::<u64>();
            assert!(matches!(
                start_in_spare(zero_sized_pending, &mut spare, cx),
                Ok(First::Pending(_))
            ));
            let in_poll = Explodes {
                in_poll: true,
                _held: counted(),
            };
            assert!(start_in_spare(in_poll, &mut spare, cx).is_err());
            let in_drop = Explodes {
                in_poll: false,
                _held: counted(),
            };
            assert!(matches!(
                start_in_spare(in_drop, &mut spare, cx),
                Ok(First::Ready(9))
            ));
        }
        Poll::Ready(())
    }));
    // The pending calls finish as ordinary boxed futures.
    for call in pending_calls.drain(..) {
        answers.push(pollster::block_on(call));
    }
    drop(spare);
    answers.sort_unstable();
    let mut expected: Vec<u64> = (0..20).chain(100..120).chain(1000..1020).collect();
    expected.sort_unstable();
    assert_eq!(answers, expected);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        made.load(Ordering::SeqCst),
        "every value dropped exactly once"
    );
}
