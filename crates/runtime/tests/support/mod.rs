//! Futures shared by the runtime integration tests.

#![allow(dead_code, unreachable_pub)] // each test file uses a different subset

use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Pending on its first poll; before returning `Pending` it has a helper thread mark it done and
/// wake the waker it was given, and it waits for that. Ready on any later poll, returning how many
/// polls it saw. The wake-up therefore reaches the first poll's waker, never a later one: a bridge
/// that waits for a wake-up before polling again would hang, one that re-polls at once completes.
#[derive(Debug, Default)]
pub struct WokenBeforePending {
    polls: u32,
    done: bool,
}

impl Future for WokenBeforePending {
    type Output = u32;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        self.polls += 1;
        if self.done {
            return Poll::Ready(self.polls);
        }
        let waker = cx.waker().clone();
        let (sent, received) = mpsc::channel();
        std::thread::spawn(move || {
            waker.wake();
            let _ = sent.send(());
        });
        let _ = received.recv();
        self.done = true;
        Poll::Pending
    }
}

/// Pending until another thread, started on the first poll, wakes the waker of the *latest* poll
/// it was told about; ready then, returning the number of polls. Checks that the waker `block_on`
/// installs is live.
#[derive(Debug, Default)]
pub struct WokenFromAnotherThread {
    polls: u32,
    state: Option<Arc<Mutex<WakeSlot>>>,
}

/// Whether the helper thread has finished, and the waker it should wake.
#[derive(Debug, Default)]
struct WakeSlot {
    done: bool,
    waker: Option<Waker>,
}

impl Future for WokenFromAnotherThread {
    type Output = u32;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        self.polls += 1;
        let polls = self.polls;
        match &self.state {
            None => {
                let state = Arc::new(Mutex::new(WakeSlot {
                    done: false,
                    waker: Some(cx.waker().clone()),
                }));
                let shared = Arc::clone(&state);
                self.state = Some(state);
                std::thread::spawn(move || {
                    let mut guard = shared.lock().unwrap();
                    guard.done = true;
                    if let Some(waker) = guard.waker.take() {
                        waker.wake();
                    }
                });
                Poll::Pending
            }
            Some(state) => {
                let mut guard = state.lock().unwrap();
                if guard.done {
                    Poll::Ready(polls)
                } else {
                    guard.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }
}

/// Pending exactly once (it wakes itself), then ready with `value`.
pub async fn pending_once<T>(value: T) -> T {
    tokio::task::yield_now().await;
    value
}
