//! `RuntimeConfig::thread_name` names "every thread the runtime starts" (workers and blocking
//! threads), and `max_blocking_threads` is an "upper bound on `spawn_blocking` threads": with
//! `Some(1)` a second closure starts only once the first has ended. Own binary, one test: the
//! global runtime is configured once per process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hivekit_runtime::{configure, execute, spawn, spawn_blocking, RuntimeConfig};

const NAME: &str = "qa-named-pool";

fn thread_name() -> Option<String> {
    std::thread::current().name().map(str::to_owned)
}

#[test]
fn every_runtime_thread_carries_the_name_and_one_blocking_thread_runs_at_a_time() {
    configure(RuntimeConfig {
        worker_threads: Some(2),
        max_blocking_threads: Some(1),
        thread_name: NAME.to_owned(),
        ..RuntimeConfig::default()
    })
    .unwrap();

    // Workers: many tasks, so that both workers run some.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            spawn(async {
                tokio::task::yield_now().await;
                thread_name()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(execute(task).unwrap().as_deref(), Some(NAME), "a worker");
    }
    let blocking = spawn_blocking(thread_name);
    assert_eq!(
        execute(blocking).unwrap().as_deref(),
        Some(NAME),
        "a blocking thread"
    );

    // One blocking thread: the second closure waits for the first.
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (first_started_tx, first_started) = mpsc::channel();
    let (second_started_tx, second_started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let closure = |started: mpsc::Sender<()>, gate: Option<mpsc::Receiver<()>>| {
        let (running, most) = (Arc::clone(&running), Arc::clone(&most));
        move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let _ = started.send(());
            if let Some(gate) = gate {
                let _ = gate.recv_timeout(Duration::from_secs(20));
            }
            running.fetch_sub(1, Ordering::SeqCst);
        }
    };
    let first = spawn_blocking(closure(first_started_tx, Some(released)));
    first_started
        .recv_timeout(Duration::from_secs(10))
        .expect("the first blocking closure never started");
    let second = spawn_blocking(closure(second_started_tx, None));
    // The second must not start while the first holds the only blocking thread.
    assert!(
        second_started
            .recv_timeout(Duration::from_millis(300))
            .is_err(),
        "a second blocking closure ran beside the first with max_blocking_threads = 1"
    );
    release.send(()).unwrap();
    second_started
        .recv_timeout(Duration::from_secs(10))
        .expect("the second closure never started after the first ended");
    execute(async move {
        first.await.unwrap();
        second.await.unwrap();
    });
    assert_eq!(most.load(Ordering::SeqCst), 1);
}
