//! `stats()`: "no count is ever lost or counted twice", also for counts made by a thread while it
//! exits (a thread-local destructor that runs a future), and for threads that exit while another
//! thread reads the stats. Its own binary: the counts are process-wide.

use std::cell::RefCell;
use std::sync::mpsc;
use std::time::Duration;

use hivekit_runtime::{execute, stats, try_execute};

struct ExecuteOnExit(mpsc::Sender<bool>);

impl Drop for ExecuteOnExit {
    fn drop(&mut self) {
        let ran = try_execute(async { 1 }).is_ok();
        let _ = self.0.send(ran);
    }
}

thread_local! {
    static GUARD: RefCell<Option<ExecuteOnExit>> = const { RefCell::new(None) };
}

#[test]
fn counts_made_while_a_thread_exits_are_kept_exactly_once() {
    assert_eq!(execute(async { 0 }), 0);
    let before = stats();
    let (sender, receiver) = mpsc::channel();
    let threads = 20;
    for _ in 0..threads {
        let sender = sender.clone();
        std::thread::spawn(move || {
            assert_eq!(execute(async { 1 }), 1);
            GUARD.with(|guard| *guard.borrow_mut() = Some(ExecuteOnExit(sender)));
        })
        .join()
        .unwrap();
    }
    drop(sender);
    let mut ran_on_exit = 0;
    for _ in 0..threads {
        if receiver
            .recv_timeout(Duration::from_secs(5))
            .expect("the guard ran")
        {
            ran_on_exit += 1;
        }
    }
    let after = stats();
    assert_eq!(
        after.executes - before.executes,
        threads + ran_on_exit,
        "{ran_on_exit} of {threads} exits ran a future: {before:?} -> {after:?}"
    );
}
