//! The crate's one error type.

/// Why the global runtime could not be configured, built or used.
///
/// # Examples
///
/// ```
/// use hivekit_runtime::RuntimeError;
///
/// let error = RuntimeError::InvalidWorkerThreads { value: 0 };
/// assert_eq!(error.to_string(), "worker_threads is 0, expected 1 to 32768");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// [`configure`](crate::configure) was called after the global runtime was built (by an earlier
    /// `configure` or by the first use of the runtime).
    #[error(
        "the global runtime is already initialized; configure must be called before its first use"
    )]
    AlreadyInitialized,
    /// [`try_execute`](crate::try_execute) was called on a thread that drives a current-thread tokio
    /// runtime: blocking it would stop the very runtime the future may be waiting for.
    #[error(
        "execute called inside a current-thread tokio runtime, where blocking would deadlock; \
         await the future or spawn it instead"
    )]
    WouldDeadlock,
    /// `HIVEKIT_WORKER_THREADS` is set to something other than an integer from 1 to
    /// [`RuntimeConfig::MAX_WORKER_THREADS`](crate::RuntimeConfig::MAX_WORKER_THREADS).
    #[error(
        "environment variable HIVEKIT_WORKER_THREADS is `{value}`, expected an integer from 1 to 32768"
    )]
    InvalidWorkerThreadsEnv {
        /// The value found in the environment (lossily converted to UTF-8).
        value: String,
    },
    /// [`RuntimeConfig::worker_threads`](crate::RuntimeConfig::worker_threads) is `Some(0)` or
    /// above [`RuntimeConfig::MAX_WORKER_THREADS`](crate::RuntimeConfig::MAX_WORKER_THREADS).
    #[error("worker_threads is {value}, expected 1 to 32768")]
    InvalidWorkerThreads {
        /// The rejected count.
        value: usize,
    },
    /// [`RuntimeConfig::max_blocking_threads`](crate::RuntimeConfig::max_blocking_threads) is
    /// `Some(0)` or above
    /// [`RuntimeConfig::MAX_BLOCKING_THREADS`](crate::RuntimeConfig::MAX_BLOCKING_THREADS).
    #[error("max_blocking_threads is {value}, expected 1 to 4194304")]
    InvalidMaxBlockingThreads {
        /// The rejected count.
        value: usize,
    },
    /// [`RuntimeConfig::thread_stack_size`](crate::RuntimeConfig::thread_stack_size) is below
    /// [`RuntimeConfig::MIN_THREAD_STACK_SIZE`](crate::RuntimeConfig::MIN_THREAD_STACK_SIZE).
    #[error("thread_stack_size is {value} bytes, expected at least 65536")]
    InvalidThreadStackSize {
        /// The rejected size in bytes.
        value: usize,
    },
    /// [`RuntimeConfig::thread_name`](crate::RuntimeConfig::thread_name) contains a nul byte, which no
    /// operating system thread name may hold.
    #[error("thread name {name:?} contains a nul byte")]
    InvalidThreadName {
        /// The rejected name.
        name: String,
    },
    /// tokio could not build the runtime (it returned an error, or panicked, e.g. because the
    /// operating system refused a worker thread), or a thread of the configured stack size could
    /// not be started.
    #[error("cannot build the global runtime: {source}")]
    Build {
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The calling thread is exiting and its tokio context is already destroyed, so no runtime can be
    /// entered from it.
    #[error("execute called while the thread's tokio context is being destroyed")]
    ThreadLocalDestroyed,
    /// [`shutdown`](crate::shutdown) was called: the global runtime is gone for the rest of the
    /// process and no other is built.
    #[error("the global runtime was shut down")]
    ShutDown,
    /// [`shutdown`](crate::shutdown) was called on a thread that runs async code (a runtime worker
    /// or a current-thread runtime's `block_on`), where waiting for the runtime to stop would
    /// block, or wait for, the very thread that waits.
    #[error(
        "shutdown called from async code, where it would block a runtime thread; \
         call it from synchronous code"
    )]
    ShutdownInAsyncContext,
}
