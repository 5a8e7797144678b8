//! A round decided on a tokio runtime built without timers (no `enable_time`): tokio's own timers
//! panic there, so an agent that did not answer at once took the round down when its call's timeout
//! started. The call's timer now comes from the global runtime, and the timeout is recorded as
//! anywhere else.

mod support;

use std::time::{Duration, Instant};

use hivekit_hive::{FailureKind, Hive};
use support::{Behaviour, Ledger, Writer};

#[test]
fn an_agent_that_never_answers_times_out() {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime without timers");
        let hive = Hive::builder(Ledger::default())
            .agent_timeout(Duration::from_millis(20))
            .build()
            .expect("valid");
        hive.spawn(Writer::new(1, 1).proposing(Behaviour::Never));
        hive.spawn(Writer::new(2, 2));
        let started = Instant::now();
        let decision = runtime.block_on(hive.decide()).expect("decided");
        let _ = sender.send((started.elapsed(), decision));
    });
    let (elapsed, decision) = receiver
        .recv_timeout(Duration::from_secs(10))
        .expect("the round ended (it panicked or hung otherwise)");
    assert!(elapsed >= Duration::from_millis(20));
    assert_eq!(decision.failures.len(), 1);
    assert!(matches!(decision.failures[0].kind, FailureKind::TimedOut));
    assert_eq!(decision.accepted.len(), 1);
}
