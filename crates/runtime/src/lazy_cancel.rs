//! A cancellation flag whose [`CancellationToken`] is made only when someone asks for one
//! ([`LazyCancel`]).
//!
//! A `CancellationToken` is a heap node behind a mutex: making one, and dropping it (which locks
//! that mutex to detach the node), costs more than a light hive round's agent calls or a few no-op
//! pipeline stages, and most rounds and runs never hand a token out. Their calls read the flag; the
//! token is made at the first [`LazyCancel::token`] and cancelled with the flag.

use std::fmt;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;

/// Whether an operation (a round, a run) was cancelled, and its token if anyone asked for one.
///
/// With a parent token ([`LazyCancel::child_of`]) it is also cancelled when the parent is, and
/// the token it makes is the parent's child.
///
/// # Progress
///
/// [`is_cancelled`](Self::is_cancelled) is one load without a parent and before a token is
/// handed out (with either, it also asks them: a token's holder may cancel it, and asking locks
/// that token's mutex). [`token`](Self::token) and [`cancel`](Self::cancel) lock the token's mutex
/// when there is a token.
///
/// # Examples
///
/// ```
/// use hivekit_runtime::LazyCancel;
///
/// let round = LazyCancel::new();
/// assert!(!round.is_cancelled());
/// let token = round.token().clone(); // made now, on first use
/// round.cancel();
/// assert!(round.is_cancelled() && token.is_cancelled());
///
/// // A token asked for after the cancellation is cancelled already.
/// let late = LazyCancel::new();
/// late.cancel();
/// assert!(late.token().is_cancelled());
/// ```
#[derive(Default)]
pub struct LazyCancel {
    cancelled: AtomicBool,
    parent: Option<CancellationToken>,
    token: OnceLock<CancellationToken>,
}

impl LazyCancel {
    /// Not cancelled, no token yet.
    pub const fn new() -> Self {
        Self {
            cancelled: AtomicBool::new(false),
            parent: None,
            token: OnceLock::new(),
        }
    }

    /// Not cancelled yet, and cancelled when `parent` is; the token it makes is `parent`'s child.
    pub const fn child_of(parent: CancellationToken) -> Self {
        Self {
            cancelled: AtomicBool::new(false),
            parent: Some(parent),
            token: OnceLock::new(),
        }
    }

    /// Whether [`cancel`](Self::cancel) was called, the parent was cancelled, or the token handed
    /// out was cancelled by whoever holds it.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
            || self
                .parent
                .as_ref()
                .is_some_and(CancellationToken::is_cancelled)
            || self
                .token
                .get()
                .is_some_and(CancellationToken::is_cancelled)
    }

    /// The token (made at the first call): cancelled by [`cancel`](Self::cancel), at once if that
    /// already happened, and by the parent.
    pub fn token(&self) -> &CancellationToken {
        let token = self.token.get_or_init(|| {
            self.parent
                .as_ref()
                .map_or_else(CancellationToken::new, CancellationToken::child_token)
        });
        // Pairs with the fence in `cancel`: either this load sees the flag, or `cancel` sees the
        // token made above (the two fences are ordered one way or the other), so a token handed
        // out is never left uncancelled by a cancel (cancelling twice is harmless).
        fence(Ordering::SeqCst);
        if self.cancelled.load(Ordering::Relaxed) {
            token.cancel();
        }
        token
    }

    /// Cancels: sets the flag and cancels the token, if one was made. The parent is left alone.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        if let Some(token) = self.token.get() {
            token.cancel();
        }
    }
}

impl fmt::Debug for LazyCancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyCancel")
            .field("cancelled", &self.is_cancelled())
            .field("has_parent", &self.parent.is_some())
            .field("has_token", &self.token.get().is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_token_taken_before_the_cancel_is_cancelled_by_it() {
        let cancel = LazyCancel::new();
        let token = cancel.token().clone();
        assert!(!token.is_cancelled() && !cancel.is_cancelled());
        cancel.cancel();
        assert!(token.is_cancelled() && cancel.is_cancelled());
    }

    #[test]
    fn a_token_taken_after_the_cancel_is_already_cancelled() {
        let cancel = LazyCancel::new();
        cancel.cancel();
        assert!(cancel.is_cancelled());
        assert!(cancel.token().is_cancelled());
    }

    #[test]
    fn a_token_taken_while_another_thread_cancels_is_cancelled() {
        for _ in 0..1_000 {
            let cancel = Arc::new(LazyCancel::new());
            let canceller = {
                let cancel = cancel.clone();
                std::thread::spawn(move || cancel.cancel())
            };
            let token = cancel.token().clone();
            canceller
                .join()
                .expect("the cancelling thread does not panic");
            assert!(token.is_cancelled());
        }
    }

    #[test]
    fn the_parent_cancels_the_flag_and_the_token_but_not_the_other_way() {
        let parent = CancellationToken::new();
        let before = LazyCancel::child_of(parent.clone());
        let token = before.token().clone();
        let after = LazyCancel::child_of(parent.clone());
        parent.cancel();
        assert!(before.is_cancelled() && token.is_cancelled());
        assert!(after.is_cancelled() && after.token().is_cancelled());

        let parent = CancellationToken::new();
        let child = LazyCancel::child_of(parent.clone());
        let token = child.token().clone();
        child.cancel();
        assert!(token.is_cancelled() && !parent.is_cancelled());
    }
}
