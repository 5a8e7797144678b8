//! How the global runtime is built: [`RuntimeConfig`], [`Flavor`] and the environment override.

use crate::RuntimeError;

/// The environment variable that overrides the number of worker threads of a multi-thread global
/// runtime: a positive integer, read once when the runtime is built. It takes precedence over
/// [`RuntimeConfig::worker_threads`]; any other value is [`RuntimeError::InvalidWorkerThreadsEnv`].
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
    /// Worker threads of a multi-thread runtime; `None` lets tokio use one per CPU. Ignored by
    /// [`Flavor::CurrentThread`]. `HIVEKIT_WORKER_THREADS`, when set, overrides this value.
    pub worker_threads: Option<usize>,
    /// Name of every thread the runtime starts. Default: `"hivekit-runtime"`.
    pub thread_name: String,
    /// Stack size of the runtime's threads in bytes; `None` keeps tokio's default.
    pub thread_stack_size: Option<usize>,
    /// Upper bound on `spawn_blocking` threads; `None` keeps tokio's default (512).
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
        if let Some(value @ 0) = resolved.worker_threads {
            return Err(RuntimeError::InvalidWorkerThreads { value });
        }
        if let Some(value @ 0) = resolved.max_blocking_threads {
            return Err(RuntimeError::InvalidMaxBlockingThreads { value });
        }
        if resolved.thread_name.contains('\0') {
            return Err(RuntimeError::InvalidThreadName {
                name: resolved.thread_name,
            });
        }
        Ok(resolved)
    }
}

/// Reads `HIVEKIT_WORKER_THREADS`: `None` when unset, an error unless it is a positive integer.
fn worker_threads_from_env() -> Result<Option<usize>, RuntimeError> {
    let Some(raw) = std::env::var_os(WORKER_THREADS_ENV) else {
        return Ok(None);
    };
    let text = raw.to_string_lossy();
    match text.trim().parse::<usize>() {
        Ok(count) if count > 0 => Ok(Some(count)),
        _ => Err(RuntimeError::InvalidWorkerThreadsEnv {
            value: text.into_owned(),
        }),
    }
}
