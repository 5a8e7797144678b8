//! One lazily built, process-wide tokio runtime and a sync -> async bridge that is safe to call from
//! anywhere.
//!
//! # Concepts
//!
//! - **The global runtime.** Every hivekit crate runs on one tokio runtime, built on first use from
//!   [`RuntimeConfig::default()`], or earlier and differently by [`configure`] (only before first
//!   use, else [`RuntimeError::AlreadyInitialized`]). `HIVEKIT_WORKER_THREADS` overrides the worker
//!   count; an invalid value is a [`RuntimeError::InvalidWorkerThreadsEnv`], never silently
//!   ignored. [`try_handle`] reports build errors, [`handle`] panics with them.
//! - **An application's runtime.** A `#[tokio::main]` program can hand its own runtime to
//!   [`configure`] (`configure(Handle::current())`) instead of getting a second thread pool;
//!   [`shutdown`] stops the global runtime (or ends the use of an adopted one) with a timeout.
//! - **The bridge.** [`execute`] runs a future to completion from synchronous code: from plain
//!   threads, `spawn_blocking` threads and multi-thread runtime workers (via `block_in_place`, no
//!   deadlock). Inside a current-thread runtime it would deadlock, so [`try_execute`] returns
//!   [`RuntimeError::WouldDeadlock`] and [`execute`] panics with that message. It takes anything
//!   `.await` takes ([`IntoFuture`](std::future::IntoFuture)), so a request builder can be passed
//!   as is.
//! - **The fast path.** A future that is ready on its first poll (polled inside the runtime
//!   context, so `tokio::spawn` and timers work) returns without a wait; a pending one is polled
//!   again, still pinned in place, with the thread parked on a parker of the call's own between
//!   polls.
//! - **Stats.** [`stats`] sums per-thread counters ([`RuntimeStats`]); counting never writes a
//!   shared cache line.
//! - **Task helpers** for the crates above: [`AbortOnDrop`] (a task that dies with its handle),
//!   [`InlineOrSpawned`] (work polled in place or spawned, awaited alike), [`panic_message`] (a
//!   caught panic as text), [`ConcurrencyLimit`] (how many operations may be in flight) and
//!   [`start_in_spare`] (a call's future built and polled once in a reused heap block, so that a
//!   call that finishes at once costs no allocation) and [`LazyCancel`] (a cancellation flag that
//!   makes its `CancellationToken` only when asked for one), and [`sleep`] and [`sleep_until`]
//!   (timers that work on a runtime built without timers, through the global runtime's).
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! use hivekit_runtime::{configure, execute, spawn, stats, RuntimeConfig};
//!
//! // Optional: choose the runtime before anything uses it.
//! configure(RuntimeConfig { worker_threads: Some(2), ..RuntimeConfig::default() })?;
//!
//! // Synchronous code calling async code.
//! let greeting = execute(async {
//!     tokio::time::sleep(Duration::from_millis(1)).await;
//!     "hello"
//! });
//! assert_eq!(greeting, "hello");
//!
//! // Background work on the same runtime.
//! let task = spawn(async { 2 + 2 });
//! assert_eq!(execute(task).unwrap(), 4);
//!
//! let counts = stats();
//! assert!(counts.executes >= 2 && counts.spawns >= 1);
//! # Ok::<(), hivekit_runtime::RuntimeError>(())
//! ```

mod config;
mod error;
mod execute;
mod global;
mod lazy_cancel;
mod limit;
mod spare;
mod stats;
mod task;
mod timer;

pub use config::{Flavor, RuntimeConfig, WORKER_THREADS_ENV};
pub use error::RuntimeError;
pub use execute::{execute, spawn, spawn_blocking, try_execute};
pub use global::{
    active_config, configure, handle, is_initialized, is_shut_down, shutdown, try_handle,
    RuntimeSetup,
};
pub use lazy_cancel::LazyCancel;
pub use limit::{ConcurrencyLimit, ConcurrencyLimitError, IntoConcurrencyLimit};
pub use spare::{start_in_spare, BoxFuture, First, Spare};
pub use stats::{stats, RuntimeStats};
pub use task::{panic_message, take_panic_message, AbortOnDrop, InlineOrSpawned};
pub use timer::{instant_after, poll_sleep, sleep, sleep_until};
