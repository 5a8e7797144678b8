//! Adopting an application's *current-thread* runtime (`RuntimeSetup::Adopt`: "a current-thread
//! runtime must also be driven (its `block_on` running) for `execute` from other threads to make
//! progress"): while the application drives it, `execute` from plain and blocking threads runs on
//! it, `spawn` runs on its driver thread, a call on that driver thread is refused with
//! `WouldDeadlock` without polling, and `shutdown` leaves the runtime running. Own binary, one
//! test: the global runtime is process-wide.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hivekit_runtime::{
    active_config, configure, execute, shutdown, spawn, spawn_blocking, stats, try_execute,
    RuntimeError,
};

fn thread_name() -> Option<String> {
    std::thread::current().name().map(str::to_owned)
}

fn scenario() {
    // The application: a current-thread runtime driven by its own thread until told to stop.
    let (handle_tx, handle_rx) = mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = std::thread::Builder::new()
        .name("app-driver".to_owned())
        .spawn(move || {
            let app = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            handle_tx.send(app.handle().clone()).unwrap();
            app.block_on(async {
                let _ = stopped.await;
            });
        })
        .unwrap();
    let app = handle_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    configure(app.clone()).unwrap();
    assert!(active_config().is_none());
    assert_eq!(stats().runtimes_built, 0);

    // A plain thread: the future waits on the adopted runtime, timers and tasks included.
    let (id, spawned_on) = execute(async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let task = tokio::spawn(async { thread_name() });
        (tokio::runtime::Handle::current().id(), task.await.unwrap())
    });
    assert_eq!(id, app.id());
    assert_eq!(spawned_on.as_deref(), Some("app-driver"));

    // hivekit's spawn runs on the driver thread; there, blocking would stop the runtime, so even
    // a ready future is refused, unpolled.
    let polled = Arc::new(AtomicBool::new(false));
    let task = {
        let polled = Arc::clone(&polled);
        spawn(async move {
            let polled_too = Arc::clone(&polled);
            let ready = try_execute(async move {
                polled_too.store(true, Ordering::SeqCst);
                1
            });
            let pending = try_execute(async {
                tokio::task::yield_now().await;
                2
            });
            (thread_name(), ready, pending)
        })
    };
    let (name, ready, pending) = execute(task).unwrap();
    assert_eq!(name.as_deref(), Some("app-driver"));
    assert!(
        matches!(ready, Err(RuntimeError::WouldDeadlock)),
        "{ready:?}"
    );
    assert!(
        matches!(pending, Err(RuntimeError::WouldDeadlock)),
        "{pending:?}"
    );
    assert!(
        !polled.load(Ordering::SeqCst),
        "a refused future was polled"
    );

    // A blocking thread of the adopted runtime may wait on it.
    let blocking = spawn_blocking(|| {
        execute(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            tokio::task::yield_now().await;
            3
        })
    });
    assert_eq!(execute(blocking).unwrap(), 3);

    // Ending hivekit's use leaves the application's runtime running.
    shutdown(Duration::from_secs(1)).unwrap();
    let (answer_tx, answer) = mpsc::channel();
    app.spawn(async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let _ = answer_tx.send(4);
    });
    assert_eq!(answer.recv_timeout(Duration::from_secs(10)), Ok(4));
    let _ = stop.send(());
    driver.join().unwrap();
}

#[test]
fn an_adopted_current_thread_runtime_serves_other_threads_refuses_its_driver_and_outlives_shutdown()
{
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(scenario)
            .map_err(|panic| hivekit_runtime::panic_message(&*panic));
        let _ = sender.send(outcome);
    });
    match receiver.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(())) => {}
        Ok(Err(message)) => panic!("{message}"),
        Err(_) => panic!("the scenario hung"),
    }
}
