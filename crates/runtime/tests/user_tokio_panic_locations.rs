//! tokio's tests/rt_panic.rs checks that its panicking entry points (`Handle::current`,
//! `JoinError::into_panic`, the builder's checks) report the caller's file and line
//! (`#[track_caller]`). hivekit's panicking entry points are `#[track_caller]` too: `execute`
//! inside a current-thread runtime, and `execute`, `spawn`, `spawn_blocking` and `handle` after
//! `shutdown`. One test: `shutdown` is once per process, and the panic hook is process-wide.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::Duration;

use hivekit_runtime::{execute, handle, shutdown, spawn, spawn_blocking};

type Seen = Vec<(ThreadId, String, u32)>;
type Call = Box<dyn FnOnce()>;

/// Discards a call's result, whatever its type (a handle, a `JoinHandle`, a unit).
fn ignore<T>(_result: T) {}

/// The line it is written on, and a call of `$call` (written on that same line).
macro_rules! at_line {
    ($call:expr) => {
        (
            line!(),
            Box::new(|| {
                ignore($call);
            }) as Call,
        )
    };
}

static SEEN: Mutex<Seen> = Mutex::new(Vec::new());

thread_local! {
    /// Set while a panic is expected on this thread: the hook records it quietly.
    static EXPECTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `body`, which must panic, and returns the file and line its (first) panic reported.
fn panic_location(body: impl FnOnce()) -> (String, u32) {
    let me = std::thread::current().id();
    SEEN.lock().unwrap().retain(|(thread, _, _)| *thread != me);
    EXPECTING.with(|expecting| expecting.set(true));
    let panicked = catch_unwind(AssertUnwindSafe(body));
    EXPECTING.with(|expecting| expecting.set(false));
    assert!(panicked.is_err(), "the call did not panic");
    let seen = SEEN.lock().unwrap();
    let (_, file, line) = seen
        .iter()
        .find(|(thread, _, _)| *thread == me)
        .expect("the hook saw the panic")
        .clone();
    (file, line)
}

#[test]
fn panicking_entry_points_report_the_callers_file_and_line() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !EXPECTING.with(std::cell::Cell::get) {
            default_hook(info);
        } else if let Some(location) = info.location() {
            SEEN.lock().unwrap().push((
                std::thread::current().id(),
                location.file().to_owned(),
                location.line(),
            ));
        }
    }));

    let local = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let expected_line = line!() + 2;
    let (file, line) = panic_location(|| {
        local.block_on(async { execute(tokio::task::yield_now()) });
    });
    assert!(
        file.ends_with("user_tokio_panic_locations.rs") && line == expected_line,
        "execute in a current-thread runtime panicked at {file}:{line}, not at {expected_line}"
    );

    shutdown(Duration::from_secs(5)).unwrap();

    let cases: [(&str, u32, Call); 4] = [
        ("execute", at_line!(execute(tokio::task::yield_now()))),
        ("spawn", at_line!(spawn(async {}))),
        ("spawn_blocking", at_line!(spawn_blocking(|| ()))),
        ("handle", at_line!(handle())),
    ]
    .map(|(name, (line, call))| (name, line, call));
    for (name, expected_line, call) in cases {
        let (file, line) = panic_location(call);
        assert!(
            file.ends_with("user_tokio_panic_locations.rs") && line == expected_line,
            "{name} after shutdown panicked at {file}:{line}, not at its caller's line {expected_line}"
        );
    }
}
