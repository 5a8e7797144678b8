//! How the global runtime is built: [`RuntimeConfig`], [`Flavor`] and the environment override.

use crate::RuntimeError;

/// The environment variable that overrides the number of worker threads of a multi-thread global
/// runtime: an integer from 1 to [`RuntimeConfig::MAX_WORKER_THREADS`], read once when the runtime
/// is built. It takes precedence over [`RuntimeConfig::worker_threads`]; any other value is
/// [`RuntimeError::InvalidWorkerThreadsEnv`]. It is not read when [`configure`](crate::configure)
/// adopts an application's runtime.
///
/// # Examples
///
/// ```
/// // HIVEKIT_WORKER_THREADS=4 ./my-app
/// assert_eq!(hivekit_runtime::WORKER_THREADS_ENV, "HIVEKIT_WORKER_THREADS");
/// ```
pub const WORKER_THREADS_ENV: &str = "HIVEKIT_WORKER_THREADS";

/// Which tokio scheduler the global runtime uses.
///
/// # Examples
///
/// ```
/// use hivekit_runtime::Flavor;
///
/// assert_eq!(Flavor::default(), Flavor::MultiThread);
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// A work-stealing pool of worker threads (tokio's `new_multi_thread`).
    #[default]
    MultiThread,
    /// One scheduler thread. The global runtime runs it on a dedicated driver thread (named
    /// [`RuntimeConfig::thread_name`]), so spawned tasks, timers and `execute` from any other thread
    /// work; `execute` on the driver thread itself returns [`RuntimeError::WouldDeadlock`].
    CurrentThread,
}

/// How to build the global runtime; pass it to [`configure`](crate::configure) before first use.
///
/// Fields are public so a configuration reads as a struct literal with `..RuntimeConfig::default()`.
///
/// Every numeric field is checked before tokio sees it ([`configure`](crate::configure) and the
/// first use return the error; nothing panics):
///
/// | field | `None` | `Some(0)` | `Some(1)` | large | `Some(usize::MAX)` |
/// | --- | --- | --- | --- | --- | --- |
/// | `worker_threads` | one per CPU | [`InvalidWorkerThreads`](RuntimeError::InvalidWorkerThreads) | one worker | up to [`MAX_WORKER_THREADS`](Self::MAX_WORKER_THREADS); more is `InvalidWorkerThreads` | `InvalidWorkerThreads` |
/// | `max_blocking_threads` | 512 | [`InvalidMaxBlockingThreads`](RuntimeError::InvalidMaxBlockingThreads) | one blocking thread | up to [`MAX_BLOCKING_THREADS`](Self::MAX_BLOCKING_THREADS); more is `InvalidMaxBlockingThreads` | `InvalidMaxBlockingThreads` |
/// | `thread_stack_size` | tokio's (2 MiB) | [`InvalidThreadStackSize`](RuntimeError::InvalidThreadStackSize) | `InvalidThreadStackSize` | from [`MIN_THREAD_STACK_SIZE`](Self::MIN_THREAD_STACK_SIZE); a size the operating system cannot give a thread is [`Build`](RuntimeError::Build) | `Build` |
///
/// `worker_threads` is ignored (whatever its value) by [`Flavor::CurrentThread`].
///
/// # Examples
///
/// ```
/// use hivekit_runtime::{Flavor, RuntimeConfig};
///
/// let config = RuntimeConfig {
///     worker_threads: Some(2),
///     thread_name: "my-app-worker".to_owned(),
///     ..RuntimeConfig::default()
/// };
/// assert_eq!(config.flavor, Flavor::MultiThread);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// The scheduler. Default: [`Flavor::MultiThread`].
    pub flavor: Flavor,
    /// Worker threads of a multi-thread runtime, 1 to [`MAX_WORKER_THREADS`](Self::MAX_WORKER_THREADS);
    /// `None` lets tokio use one per CPU. Ignored by [`Flavor::CurrentThread`].
    /// `HIVEKIT_WORKER_THREADS`, when set, overrides this value.
    pub worker_threads: Option<usize>,
    /// Name of every thread the runtime starts (no nul byte). Default: `"hivekit-runtime"`.
    pub thread_name: String,
    /// Stack size of the runtime's threads in bytes, at least
    /// [`MIN_THREAD_STACK_SIZE`](Self::MIN_THREAD_STACK_SIZE); `None` keeps tokio's default.
    pub thread_stack_size: Option<usize>,
    /// Upper bound on `spawn_blocking` threads, 1 to
    /// [`MAX_BLOCKING_THREADS`](Self::MAX_BLOCKING_THREADS); `None` keeps tokio's default (512).
    pub max_blocking_threads: Option<usize>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            flavor: Flavor::MultiThread,
            worker_threads: None,
            thread_name: "hivekit-runtime".to_owned(),
            thread_stack_size: None,
            max_blocking_threads: None,
        }
    }
}

impl RuntimeConfig {
    /// The most worker threads a multi-thread runtime may have. tokio keeps the number of workers
    /// searching for work (up to about half of them) in 16 bits of its idle state, so it cannot run
    /// more than twice that many correctly; this limit keeps well inside it (and is far beyond any
    /// machine's cores). tokio itself would panic or abort on a count it cannot allocate for.
    pub const MAX_WORKER_THREADS: usize = 1 << 15;

    /// The highest `max_blocking_threads`. tokio adds the worker count to it (an overflow there
    /// wraps into a pool of one thread, which a worker can take, hanging every `spawn_blocking`);
    /// no operating system runs more threads than this at once (Linux's ceiling on `pid_max`).
    pub const MAX_BLOCKING_THREADS: usize = 1 << 22;

    /// The smallest `thread_stack_size`, in bytes. A thread that overflows its stack aborts the
    /// whole process, and tokio's worker loop alone needs tens of kilobytes, so smaller stacks are
    /// refused rather than left to crash later.
    pub const MIN_THREAD_STACK_SIZE: usize = 64 * 1024;

    /// Checks the configuration as [`configure`](crate::configure) does, without building anything
    /// and without reading `HIVEKIT_WORKER_THREADS`. What only the operating system can refuse (a
    /// stack it cannot give, a thread it will not start) surfaces when the runtime is built, as
    /// [`RuntimeError::Build`].
    ///
    /// # Errors
    ///
    /// [`RuntimeError::InvalidWorkerThreads`] (multi-thread flavor only),
    /// [`RuntimeError::InvalidMaxBlockingThreads`], [`RuntimeError::InvalidThreadStackSize`],
    /// [`RuntimeError::InvalidThreadName`], each naming the value.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_runtime::{RuntimeConfig, RuntimeError};
    ///
    /// let too_many = RuntimeConfig { worker_threads: Some(usize::MAX), ..RuntimeConfig::default() };
    /// assert!(matches!(
    ///     too_many.validate(),
    ///     Err(RuntimeError::InvalidWorkerThreads { value: usize::MAX })
    /// ));
    /// assert!(RuntimeConfig::default().validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), RuntimeError> {
        if let (Flavor::MultiThread, Some(value)) = (self.flavor, self.worker_threads) {
            if !(1..=Self::MAX_WORKER_THREADS).contains(&value) {
                return Err(RuntimeError::InvalidWorkerThreads { value });
            }
        }
        if let Some(value) = self.max_blocking_threads {
            if !(1..=Self::MAX_BLOCKING_THREADS).contains(&value) {
                return Err(RuntimeError::InvalidMaxBlockingThreads { value });
            }
        }
        if let Some(value) = self.thread_stack_size {
            if value < Self::MIN_THREAD_STACK_SIZE {
                return Err(RuntimeError::InvalidThreadStackSize { value });
            }
        }
        if self.thread_name.contains('\0') {
            return Err(RuntimeError::InvalidThreadName {
                name: self.thread_name.clone(),
            });
        }
        Ok(())
    }

    /// Checks the configuration and applies the environment override: the configuration the runtime
    /// is actually built with.
    ///
    /// An invalid `HIVEKIT_WORKER_THREADS` is an error whatever the flavor: a misconfigured deployment
    /// should be told, not silently ignored.
    pub(crate) fn resolve(&self) -> Result<Self, RuntimeError> {
        let mut resolved = self.clone();
        if let Some(from_env) = worker_threads_from_env()? {
            resolved.worker_threads = Some(from_env);
        }
        if resolved.flavor == Flavor::CurrentThread {
            resolved.worker_threads = None;
        }
        resolved.validate()?;
        Ok(resolved)
    }
}

/// Reads `HIVEKIT_WORKER_THREADS`: `None` when unset, an error unless it is an integer from 1 to
/// [`RuntimeConfig::MAX_WORKER_THREADS`].
fn worker_threads_from_env() -> Result<Option<usize>, RuntimeError> {
    let Some(raw) = std::env::var_os(WORKER_THREADS_ENV) else {
        return Ok(None);
    };
    let text = raw.to_string_lossy();
    match text.trim().parse::<usize>() {
        Ok(count) if (1..=RuntimeConfig::MAX_WORKER_THREADS).contains(&count) => Ok(Some(count)),
        _ => Err(RuntimeError::InvalidWorkerThreadsEnv {
            value: text.into_owned(),
        }),
    }
}
