//! The crate's one error type.

/// Why the global runtime could not be configured, built or used.
///
/// # Examples
///
/// ```
/// use hivekit_runtime::RuntimeError;
///
/// let error = RuntimeError::InvalidWorkerThreads { value: 0 };
/// assert_eq!(error.to_string(), "worker_threads is 0, expected at least 1");
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
    /// `HIVEKIT_WORKER_THREADS` is set to something other than a positive integer.
    #[error(
        "environment variable HIVEKIT_WORKER_THREADS is `{value}`, expected a positive integer"
    )]
    InvalidWorkerThreadsEnv {
        /// The value found in the environment (lossily converted to UTF-8).
        value: String,
    },
    /// [`RuntimeConfig::worker_threads`](crate::RuntimeConfig::worker_threads) is `Some(0)`.
    #[error("worker_threads is {value}, expected at least 1")]
    InvalidWorkerThreads {
        /// The rejected count.
        value: usize,
    },
    /// [`RuntimeConfig::max_blocking_threads`](crate::RuntimeConfig::max_blocking_threads) is `Some(0)`.
    #[error("max_blocking_threads is {value}, expected at least 1")]
    InvalidMaxBlockingThreads {
        /// The rejected count.
        value: usize,
    },
    /// [`RuntimeConfig::thread_name`](crate::RuntimeConfig::thread_name) contains a nul byte, which no
    /// operating system thread name may hold.
    #[error("thread name {name:?} contains a nul byte")]
    InvalidThreadName {
        /// The rejected name.
        name: String,
    },
    /// tokio could not build the runtime, or the driver thread of a current-thread runtime could not
    /// be started.
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
}
