//! A `FuturesUnordered` made at its first push.
//!
//! An empty `FuturesUnordered` is two heap blocks (its ready queue and the queue's stub task),
//! allocated when it is made and freed when it is dropped. A run keeps two sets (stages that must
//! wait, stages backing off) that most runs of quick stages never use: made on demand, they cost
//! such a run nothing.

use std::future::Future;
use std::task::{Context, Poll};

use futures::stream::FuturesUnordered;
use futures::StreamExt;

/// A set of futures polled together, allocated at its first push.
pub(super) struct LazySet<F>(Option<FuturesUnordered<F>>);

impl<F: Future> LazySet<F> {
    /// An empty set, with nothing allocated.
    pub(super) const fn new() -> Self {
        Self(None)
    }

    /// Adds `future` to the set (making the set if it is the first).
    pub(super) fn push(&mut self, future: F) {
        self.0
            .get_or_insert_with(FuturesUnordered::new)
            .push(future);
    }

    /// Whether the set holds no future.
    pub(super) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(FuturesUnordered::is_empty)
    }

    /// The output of a future of the set that finished; `Ready(None)` when the set is empty.
    pub(super) fn poll_next_unpin(&mut self, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        match &mut self.0 {
            Some(set) => set.poll_next_unpin(cx),
            None => Poll::Ready(None),
        }
    }

    /// Takes every future out of the set, leaving it empty.
    pub(super) fn take(&mut self) -> impl Iterator<Item = F>
    where
        F: Unpin,
    {
        self.0.take().into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use std::future::ready;
    use std::task::Waker;

    use super::*;

    #[test]
    fn an_unused_set_is_empty_and_polls_as_ended() {
        let mut set = LazySet::<std::future::Ready<u32>>::new();
        assert!(set.is_empty());
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(set.poll_next_unpin(&mut cx), Poll::Ready(None));
        assert_eq!(set.take().count(), 0);
    }

    #[test]
    fn pushed_futures_are_polled_and_taken_out() {
        let mut set = LazySet::new();
        set.push(ready(1));
        set.push(ready(2));
        assert!(!set.is_empty());
        let mut cx = Context::from_waker(Waker::noop());
        let mut outputs = Vec::new();
        while let Poll::Ready(Some(output)) = set.poll_next_unpin(&mut cx) {
            outputs.push(output);
        }
        outputs.sort_unstable();
        assert_eq!(outputs, [1, 2]);
        assert!(set.is_empty());
        set.push(ready(3));
        assert_eq!(set.take().count(), 1);
        assert!(set.is_empty());
    }
}
