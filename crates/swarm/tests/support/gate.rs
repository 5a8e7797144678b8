//! A gate for tests that act while a stage is running: the stage says it started and waits until
//! the test opens the gate. Included with `#[path = "support/gate.rs"] mod gate;`.

#![allow(dead_code, unreachable_pub)] // each test binary uses a different subset

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex, Semaphore};

/// The test's end of a gate.
pub struct Gate {
    started: Mutex<mpsc::UnboundedReceiver<String>>,
    open: Arc<Semaphore>,
}

/// The stage's end of a gate (cheap to clone into stage closures).
#[derive(Clone)]
pub struct Latch {
    started: mpsc::UnboundedSender<String>,
    open: Arc<Semaphore>,
}

/// A closed gate and its latch.
pub fn gate() -> (Gate, Latch) {
    let (started, receiver) = mpsc::unbounded_channel();
    let open = Arc::new(Semaphore::new(0));
    (
        Gate {
            started: Mutex::new(receiver),
            open: open.clone(),
        },
        Latch { started, open },
    )
}

impl Latch {
    /// Says `who` started, then waits for the gate to open (one pass per opening).
    pub async fn pass(&self, who: &str) {
        let _ = self.started.send(who.to_owned());
        self.open
            .acquire()
            .await
            .expect("the gate is never closed")
            .forget();
    }
}

impl Gate {
    /// Waits (at most five seconds) for a stage to reach the gate; its name.
    pub async fn reached(&self) -> String {
        tokio::time::timeout(Duration::from_secs(5), self.started.lock().await.recv())
            .await
            .expect("a stage reached the gate in time")
            .expect("a latch is alive")
    }

    /// Lets `passes` waiting (or future) stages through.
    pub fn open(&self, passes: usize) {
        self.open.add_permits(passes);
    }
}
