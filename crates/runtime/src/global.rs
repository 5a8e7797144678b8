//! The one process-wide runtime: built lazily on first use, or eagerly by [`configure`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use tokio::runtime::{Builder, Handle, Runtime};

use crate::stats::THREAD;
use crate::{Flavor, RuntimeConfig, RuntimeError};

/// The built runtime. Never dropped: a `static` lives until the process exits, so the runtime's
/// threads are never shut down under code that still uses the handle.
#[derive(Debug)]
struct Global {
    handle: Handle,
    config: RuntimeConfig,
    /// The multi-thread runtime itself; a current-thread runtime lives on its driver thread instead.
    _runtime: Option<Runtime>,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();
/// Serialises building, so racing first uses and `configure` calls build exactly one runtime.
static BUILD_LOCK: Mutex<()> = Mutex::new(());
static BUILDS: AtomicUsize = AtomicUsize::new(0);

/// Builds the global runtime from `config` now; only possible before its first use.
///
/// The configuration is checked and `HIVEKIT_WORKER_THREADS` applied (it overrides
/// `worker_threads`: the environment is how a deployment tunes a binary it cannot rebuild), then
/// the runtime is built at once, so every configuration error surfaces here rather than at some
/// later first use. Of several racing calls exactly one succeeds.
///
/// # Errors
///
/// - [`RuntimeError::AlreadyInitialized`] if the runtime was already built, by an earlier
///   `configure` or by any use ([`handle`], [`execute`](crate::execute), [`spawn`](crate::spawn), ...).
/// - [`RuntimeError::InvalidWorkerThreads`], [`RuntimeError::InvalidMaxBlockingThreads`],
///   [`RuntimeError::InvalidThreadName`], [`RuntimeError::InvalidWorkerThreadsEnv`] for a bad
///   configuration, [`RuntimeError::Build`] if tokio or the operating system refuses. After such an
///   error nothing is built and `configure` may be called again.
///
/// # Examples
///
/// ```
/// use hivekit_runtime::{configure, Flavor, RuntimeConfig, RuntimeError};
///
/// let config = RuntimeConfig { worker_threads: Some(2), ..RuntimeConfig::default() };
/// configure(config.clone())?;
/// assert_eq!(hivekit_runtime::execute(async { 6 * 7 }), 42);
///
/// // Too late now: the runtime exists.
/// assert!(matches!(configure(config), Err(RuntimeError::AlreadyInitialized)));
/// # Ok::<(), RuntimeError>(())
/// ```
pub fn configure(config: RuntimeConfig) -> Result<(), RuntimeError> {
    let _building = BUILD_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if GLOBAL.get().is_some() {
        return Err(RuntimeError::AlreadyInitialized);
    }
    install(&config)
}

/// The global runtime's handle, building the runtime with the default configuration (and
/// `HIVEKIT_WORKER_THREADS`) on first use.
///
/// # Errors
///
/// The configuration errors of [`configure`] (in practice an invalid `HIVEKIT_WORKER_THREADS`) and
/// [`RuntimeError::Build`]. Nothing is cached on error: a later call tries again.
///
/// # Examples
///
/// ```
/// let handle = hivekit_runtime::try_handle()?;
/// let task = handle.spawn(async { "done" });
/// assert_eq!(hivekit_runtime::execute(task).unwrap(), "done");
/// # Ok::<(), hivekit_runtime::RuntimeError>(())
/// ```
#[inline]
pub fn try_handle() -> Result<&'static Handle, RuntimeError> {
    match GLOBAL.get() {
        Some(global) => Ok(&global.handle),
        None => initialize_default(),
    }
}

/// The global runtime's handle, building the runtime on first use.
///
/// # Panics
///
/// If the runtime cannot be built (see [`try_handle`]); the panic message is the
/// [`RuntimeError`]'s, e.g. for an invalid `HIVEKIT_WORKER_THREADS`.
///
/// # Examples
///
/// ```
/// let handle = hivekit_runtime::handle();
/// let answer = handle.block_on(async { 42 });
/// assert_eq!(answer, 42);
/// ```
#[inline]
#[track_caller]
pub fn handle() -> &'static Handle {
    match try_handle() {
        Ok(handle) => handle,
        Err(error) => panic!("{error}"),
    }
}

/// True once the global runtime has been built.
///
/// # Examples
///
/// ```
/// hivekit_runtime::handle();
/// assert!(hivekit_runtime::is_initialized());
/// ```
pub fn is_initialized() -> bool {
    GLOBAL.get().is_some()
}

/// The configuration the global runtime was built with (after the environment override), or
/// `None` before it is built.
///
/// # Examples
///
/// ```
/// hivekit_runtime::handle();
/// let config = hivekit_runtime::active_config().expect("built above");
/// assert_eq!(config.thread_name, "hivekit-runtime");
/// ```
pub fn active_config() -> Option<&'static RuntimeConfig> {
    GLOBAL.get().map(|global| &global.config)
}

/// How many runtimes this process has built: 0 or 1. For tests that check racing first uses
/// build exactly one; not part of the stable API.
#[doc(hidden)]
pub fn __build_count() -> usize {
    BUILDS.load(Ordering::SeqCst)
}

#[cold]
fn initialize_default() -> Result<&'static Handle, RuntimeError> {
    let _building = BUILD_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if GLOBAL.get().is_none() {
        install(&RuntimeConfig::default())?;
    }
    match GLOBAL.get() {
        Some(global) => Ok(&global.handle),
        // `install` returned Ok, so the cell is set; this arm only satisfies the type checker.
        None => Err(RuntimeError::AlreadyInitialized),
    }
}

/// Builds and publishes the runtime. The caller holds `BUILD_LOCK` and has seen `GLOBAL` empty.
fn install(config: &RuntimeConfig) -> Result<(), RuntimeError> {
    let global = build(config)?;
    BUILDS.fetch_add(1, Ordering::SeqCst);
    // Cannot fail: building is serialised by `BUILD_LOCK` and the cell was empty.
    let _ = GLOBAL.set(global);
    Ok(())
}

fn build(config: &RuntimeConfig) -> Result<Global, RuntimeError> {
    let config = config.resolve()?;
    let mut builder = match config.flavor {
        Flavor::MultiThread => Builder::new_multi_thread(),
        Flavor::CurrentThread => Builder::new_current_thread(),
    };
    builder
        .enable_all()
        .thread_name(config.thread_name.clone())
        .on_thread_start(mark_global_thread);
    if let Some(workers) = config.worker_threads {
        builder.worker_threads(workers);
    }
    if let Some(blocking) = config.max_blocking_threads {
        builder.max_blocking_threads(blocking);
    }
    if let Some(stack_size) = config.thread_stack_size {
        builder.thread_stack_size(stack_size);
    }
    let runtime = builder
        .build()
        .map_err(|source| RuntimeError::Build { source })?;
    let handle = runtime.handle().clone();
    let runtime = match config.flavor {
        Flavor::MultiThread => Some(runtime),
        Flavor::CurrentThread => {
            // A current-thread runtime only makes progress (tasks, timers) while some thread runs
            // `Runtime::block_on`; this driver thread does so for the life of the process.
            let mut driver = std::thread::Builder::new().name(config.thread_name.clone());
            if let Some(stack_size) = config.thread_stack_size {
                driver = driver.stack_size(stack_size);
            }
            driver
                // Not marked as a global thread: it drives the scheduler, so `execute` there must
                // always take the checked path that refuses it.
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .map_err(|source| RuntimeError::Build { source })?;
            None
        }
    };
    Ok(Global {
        handle,
        config,
        _runtime: runtime,
    })
}

/// Runs on every thread the global runtime starts: their tokio context is the global runtime.
fn mark_global_thread() {
    let _ = THREAD.try_with(|thread| thread.base_is_global.set(true));
}
