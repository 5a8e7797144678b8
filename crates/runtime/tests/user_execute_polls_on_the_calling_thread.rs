//! `execute`: "The future is polled on the calling thread only, so it need not be `Send`", in
//! every context it documents (plain thread, first and later calls; a global worker; a user's
//! multi-thread worker and `block_on` body; `spawn_blocking` threads), for a future that waits on a
//! timer, a task and a wake from another thread; it is also dropped on the calling thread.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::ThreadId;
use std::time::Duration;

use hivekit_runtime::execute;

type Seen = Rc<RefCell<Vec<ThreadId>>>;

/// Pushes the current thread's id on drop.
struct DropWitness(Seen);

impl Drop for DropWitness {
    fn drop(&mut self) {
        self.0.borrow_mut().push(std::thread::current().id());
    }
}

/// Records the thread of every step of a future that is pending several times, and of its drop;
/// returns the caller's thread id, every recorded thread id, and how many were recorded.
fn run_and_record() -> (ThreadId, Vec<ThreadId>, usize) {
    let caller = std::thread::current().id();
    let seen: Seen = Rc::default();
    let dropped: Seen = Rc::default();
    let (inside, witness) = (Rc::clone(&seen), DropWitness(Rc::clone(&dropped)));
    let output = execute(async move {
        let _witness = witness;
        let here = || inside.borrow_mut().push(std::thread::current().id());
        here();
        tokio::time::sleep(Duration::from_millis(1)).await;
        here();
        let task = tokio::spawn(async { 20 });
        let from_task = task.await.unwrap();
        here();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || sender.send(22));
        let from_thread = receiver.await.unwrap();
        here();
        tokio::task::yield_now().await;
        here();
        from_task + from_thread
    });
    assert_eq!(output, 42);
    let mut all = seen.borrow().clone();
    all.extend(dropped.borrow().iter().copied());
    let count = all.len();
    (caller, all, count)
}

fn check(context: &str, (caller, seen, count): (ThreadId, Vec<ThreadId>, usize)) {
    assert_eq!(count, 6, "{context}: five steps and one drop");
    assert!(
        seen.iter().all(|thread| *thread == caller),
        "{context}: polled or dropped on another thread than the caller's: {seen:?} (caller {caller:?})"
    );
}

/// Runs `body` on a fresh thread, failing if it does not answer within seconds.
fn bounded<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(body());
    });
    receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("the call hung or its thread panicked")
}

#[test]
fn on_a_plain_thread_first_and_later_calls() {
    bounded(|| {
        check("plain thread, first call", run_and_record());
        check("plain thread, later call", run_and_record());
    });
}

#[test]
fn on_a_global_runtime_worker() {
    bounded(|| {
        let task = hivekit_runtime::spawn(async { run_and_record() });
        check("global worker", execute(task).unwrap());
    });
}

#[test]
fn on_a_users_multi_thread_worker_and_in_its_block_on_body() {
    bounded(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let on_worker = runtime.block_on(async { tokio::spawn(async { run_and_record() }).await });
        check("user worker", on_worker.unwrap());
        check(
            "user block_on body",
            runtime.block_on(async { run_and_record() }),
        );
    });
}

#[test]
fn on_blocking_threads_of_the_global_and_a_current_thread_runtime() {
    bounded(|| {
        let global = hivekit_runtime::spawn_blocking(run_and_record);
        check("global spawn_blocking", execute(global).unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = runtime.block_on(tokio::task::spawn_blocking(run_and_record));
        check("current-thread spawn_blocking", local.unwrap());
    });
}
