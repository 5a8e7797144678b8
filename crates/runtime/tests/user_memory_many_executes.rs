//! Memory: a million `execute` calls (ready, pending, nested, from a user's runtime) and thousands of short-lived threads that each execute once do not grow live heap memory (a counting global allocator; own binary, one test).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use hivekit_runtime::execute;

/// Live bytes: allocated minus freed.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: the caller upholds `GlobalAlloc`'s contract, passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: the caller upholds `GlobalAlloc`'s contract, passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        // SAFETY: the caller upholds `GlobalAlloc`'s contract, passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::SeqCst);
        // SAFETY: the caller upholds `GlobalAlloc`'s contract, passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

/// Runs `round` twice to warm up, then `rounds` times in each of three windows, and returns the
/// least growth of live memory over a window.
///
/// The least, because the count is process-wide and other threads allocate too: a window in which
/// tokio's blocking pool grows (each `block_in_place` on a busy machine may start a thread to take
/// over the worker, up to 512, each with its own name, handle and thread-locals) grows by hundreds
/// of kilobytes and keeps them while those threads idle, without any call leaking. A per-call leak
/// grows every window alike.
fn growth(rounds: usize, mut round: impl FnMut()) -> isize {
    round();
    round();
    (0..3)
        .map(|_| {
            let before = live();
            for _ in 0..rounds {
                round();
            }
            live() - before
        })
        .min()
        .expect("three windows")
}

/// Slack for memory tokio or std may keep lazily (a grown queue, a cached block): far below what
/// a per-call leak of even one byte over these counts would give.
const SLACK: isize = 64 * 1024;

fn check(body: impl FnOnce() + Send + 'static) {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        body();
        let _ = sender.send(());
    });
    receiver
        .recv_timeout(Duration::from_secs(240))
        .expect("the memory checks failed or hung");
}

#[test]
fn many_executes_keep_live_memory_flat() {
    check(|| {
        // A million ready futures: the fast path.
        let ready = growth(1_000_000, || {
            assert_eq!(execute(async { 1u64 }), 1);
        });
        assert!(
            ready <= SLACK,
            "1,000,000 ready executes grew live memory by {ready} bytes"
        );

        // Pending once: the block_on path.
        let pending = growth(200_000, || {
            let value = execute(async {
                tokio::task::yield_now().await;
                2u64
            });
            assert_eq!(value, 2);
        });
        assert!(
            pending <= SLACK,
            "200,000 pending executes grew live memory by {pending} bytes"
        );

        // Waiting on a spawned task, and a nested execute inside the outer one's wait.
        let spawned = growth(50_000, || {
            let value = execute(async {
                let task = hivekit_runtime::spawn(async { 3u64 });
                tokio::task::yield_now().await;
                task.await.unwrap() + execute(async { 0u64 })
            });
            assert_eq!(value, 3);
        });
        assert!(
            spawned <= SLACK,
            "50,000 spawning executes grew live memory by {spawned} bytes"
        );

        // From inside a user's multi-thread runtime (enters the global context per call).
        let user = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let foreign = user.block_on(async {
            tokio::spawn(async {
                growth(100_000, || {
                    let value = execute(async {
                        tokio::task::yield_now().await;
                        4u64
                    });
                    assert_eq!(value, 4);
                })
            })
            .await
            .unwrap()
        });
        assert!(
            foreign <= SLACK,
            "100,000 executes on a user's worker grew live memory by {foreign} bytes"
        );
        drop(user);

        // Short-lived threads, each calling execute once (its first call enters the global
        // context and registers per-thread counters): nothing stays behind after they exit.
        let threads = growth(2_000, || {
            std::thread::spawn(|| {
                assert_eq!(execute(async { 5u64 }), 5);
                assert_eq!(
                    execute(async {
                        tokio::task::yield_now().await;
                        6u64
                    }),
                    6
                );
            })
            .join()
            .unwrap();
        });
        assert!(
            threads <= SLACK,
            "2,000 short-lived executing threads grew live memory by {threads} bytes"
        );
    });
}
