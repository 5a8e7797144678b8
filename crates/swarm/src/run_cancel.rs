//! The run's own cancellation: a flag the run sets when it stops early, and a
//! [`CancellationToken`] made only when a stage asks for one.
//!
//! A `CancellationToken` is a heap node behind a mutex: making one, and dropping it (which locks
//! that mutex to detach the node), cost a run about as much as three no-op stages, and most runs
//! never hand the token out. Stages read the flag ([`StageContext::is_cancelled`]); the token is
//! made at the first [`StageContext::cancellation`] and cancelled with the flag.
//!
//! [`StageContext::is_cancelled`]: crate::StageContext::is_cancelled
//! [`StageContext::cancellation`]: crate::StageContext::cancellation

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;

/// Whether a run was stopped early, and its token if a stage asked for it.
///
/// # Progress
///
/// `is_cancelled` is one load. `token` and `cancel` lock the token's mutex when there is a token.
#[derive(Debug, Default)]
pub(crate) struct RunCancel {
    stopped: AtomicBool,
    token: OnceLock<CancellationToken>,
}

impl RunCancel {
    /// Not cancelled, no token yet.
    pub(crate) const fn new() -> Self {
        Self {
            stopped: AtomicBool::new(false),
            token: OnceLock::new(),
        }
    }

    /// Whether the run stopped early.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// The run's token (made at the first call): cancelled when the run stops early, at once if it
    /// already has.
    pub(crate) fn token(&self) -> CancellationToken {
        let token = self.token.get_or_init(CancellationToken::new);
        // Pairs with the fence in `cancel`: either this load sees the flag, or `cancel` sees the
        // token made above (the two fences are ordered one way or the other), so a token handed
        // out is never left uncancelled by a stop.
        fence(Ordering::SeqCst);
        if self.stopped.load(Ordering::Relaxed) {
            token.cancel();
        }
        token.clone()
    }

    /// Stops the run: sets the flag and cancels the token, if one was made.
    pub(crate) fn cancel(&self) {
        self.stopped.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        if let Some(token) = self.token.get() {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_taken_before_the_stop_is_cancelled_by_it() {
        let cancel = RunCancel::new();
        let token = cancel.token();
        assert!(!token.is_cancelled() && !cancel.is_cancelled());
        cancel.cancel();
        assert!(token.is_cancelled() && cancel.is_cancelled());
    }

    #[test]
    fn a_token_taken_after_the_stop_is_already_cancelled() {
        let cancel = RunCancel::new();
        cancel.cancel();
        assert!(cancel.is_cancelled());
        assert!(cancel.token().is_cancelled());
    }

    #[test]
    fn a_token_taken_while_another_thread_stops_the_run_is_cancelled() {
        for _ in 0..1_000 {
            let cancel = std::sync::Arc::new(RunCancel::new());
            let stopper = {
                let cancel = cancel.clone();
                std::thread::spawn(move || cancel.cancel())
            };
            let token = cancel.token();
            stopper.join().expect("the stopping thread does not panic");
            assert!(token.is_cancelled());
        }
    }
}
