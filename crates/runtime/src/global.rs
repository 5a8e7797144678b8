//! The one process-wide runtime: built lazily on first use, eagerly by [`configure`], or adopted
//! from the application; stopped by [`shutdown`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};

use crate::stats::{ThreadState, THREAD};
use crate::{Flavor, RuntimeConfig, RuntimeError};

/// The global runtime. The handle lives in a `static` until the process exits, so code holding it
/// never sees it freed; the runtime itself is stopped only by [`shutdown`].
#[derive(Debug)]
struct Global {
    handle: Handle,
    /// The configuration it was built with; `None` for an adopted runtime.
    config: Option<RuntimeConfig>,
    owned: Mutex<Owned>,
}

/// What hivekit owns of the global runtime, and must stop on [`shutdown`].
#[derive(Debug)]
enum Owned {
    /// A multi-thread runtime.
    MultiThread(Runtime),
    /// A current-thread runtime living on its driver thread: send it the shutdown timeout, then
    /// wait for `stopped`.
    CurrentThread {
        stop: tokio::sync::oneshot::Sender<Duration>,
        stopped: mpsc::Receiver<()>,
    },
    /// The application's runtime: hivekit stops using it, never stops it.
    Adopted,
    /// Shut down already.
    Nothing,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();
/// Serialises building, adopting and shutting down, so racing first uses and `configure` calls
/// build exactly one runtime.
static BUILD_LOCK: Mutex<()> = Mutex::new(());
static BUILDS: AtomicUsize = AtomicUsize::new(0);
/// Set by [`shutdown`]; never cleared.
static SHUT_DOWN: AtomicBool = AtomicBool::new(false);

/// What [`configure`] sets up: a runtime hivekit builds from a [`RuntimeConfig`], or an
/// application's own tokio runtime, adopted through its [`Handle`].
///
/// Both convert into it, so `configure` takes either.
///
/// # Examples
///
/// ```
/// use hivekit_runtime::{RuntimeConfig, RuntimeSetup};
///
/// let setup = RuntimeSetup::from(RuntimeConfig::default());
/// assert!(matches!(setup, RuntimeSetup::Build(_)));
/// ```
#[derive(Debug, Clone)]
pub enum RuntimeSetup {
    /// Build a runtime from this configuration.
    Build(RuntimeConfig),
    /// Use the runtime behind this handle (typically `Handle::current()` in `#[tokio::main]`)
    /// instead of starting a second thread pool. hivekit never stops it: [`shutdown`] only ends
    /// hivekit's use of it. Keep the runtime alive while hivekit is used; a current-thread runtime
    /// must also be driven (its `block_on` running) for `execute` from other threads to make
    /// progress.
    Adopt(Handle),
}

impl From<RuntimeConfig> for RuntimeSetup {
    fn from(config: RuntimeConfig) -> Self {
        Self::Build(config)
    }
}

impl From<Handle> for RuntimeSetup {
    fn from(handle: Handle) -> Self {
        Self::Adopt(handle)
    }
}

/// Sets up the global runtime now, building it from a [`RuntimeConfig`] or adopting an
/// application's runtime from its [`Handle`]; only possible before its first use.
///
/// A configuration is checked and `HIVEKIT_WORKER_THREADS` applied (it overrides
/// `worker_threads`: the environment is how a deployment tunes a binary it cannot rebuild), then
/// the runtime is built at once, so every configuration error surfaces here rather than at some
/// later first use. Of several racing calls exactly one succeeds.
///
/// An adopted runtime is used by everything hivekit runs: [`execute`](crate::execute),
/// [`spawn`](crate::spawn), [`spawn_blocking`](crate::spawn_blocking), and the hive rounds and
/// pipelines that fall back to the global runtime. Its threads are the application's, so
/// [`active_config`] is `None` and [`RuntimeStats::runtimes_built`](crate::RuntimeStats::runtimes_built)
/// stays 0.
///
/// # Errors
///
/// - [`RuntimeError::AlreadyInitialized`] if the runtime was already set up, by an earlier
///   `configure` or by any use ([`handle`], [`execute`](crate::execute), [`spawn`](crate::spawn), ...).
/// - [`RuntimeError::ShutDown`] after [`shutdown`].
/// - [`RuntimeError::InvalidWorkerThreads`], [`RuntimeError::InvalidMaxBlockingThreads`],
///   [`RuntimeError::InvalidThreadStackSize`], [`RuntimeError::InvalidThreadName`],
///   [`RuntimeError::InvalidWorkerThreadsEnv`] for a bad configuration, [`RuntimeError::Build`] if
///   tokio or the operating system refuses. After such an error nothing is built and `configure`
///   may be called again.
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
///
/// Adopting the application's runtime:
///
/// ```no_run
/// #[tokio::main]
/// async fn main() -> Result<(), hivekit_runtime::RuntimeError> {
///     hivekit_runtime::configure(tokio::runtime::Handle::current())?;
///     // hivekit now spawns onto this runtime instead of starting its own.
///     let task = hivekit_runtime::spawn(async { 42 });
///     assert_eq!(task.await.unwrap(), 42);
///     Ok(())
/// }
/// ```
pub fn configure(setup: impl Into<RuntimeSetup>) -> Result<(), RuntimeError> {
    let _building = BUILD_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if SHUT_DOWN.load(Ordering::Acquire) {
        return Err(RuntimeError::ShutDown);
    }
    if GLOBAL.get().is_some() {
        return Err(RuntimeError::AlreadyInitialized);
    }
    match setup.into() {
        RuntimeSetup::Build(config) => install(&config),
        RuntimeSetup::Adopt(handle) => {
            // Cannot fail: the lock is held and the cell was empty.
            let _ = GLOBAL.set(Global {
                handle,
                config: None,
                owned: Mutex::new(Owned::Adopted),
            });
            Ok(())
        }
    }
}

/// Stops the global runtime, waiting at most about `timeout` for its work to end, and refuses any
/// later use: for tests and programs that must exit cleanly.
///
/// Tasks are dropped at their next `.await`; `spawn_blocking` closures cannot be interrupted, so
/// they are waited for up to `timeout` and then left to finish on their own (their threads are
/// detached). Afterwards [`try_handle`], [`configure`] and [`try_execute`](crate::try_execute)
/// (for a future not ready on its first poll) return [`RuntimeError::ShutDown`], and
/// [`handle`], [`spawn`](crate::spawn), [`spawn_blocking`](crate::spawn_blocking) and
/// [`execute`](crate::execute) panic with it. An adopted runtime is left running: hivekit only
/// stops using it. Calling it before the first use (nothing to stop) or a second time is fine.
///
/// Call it from synchronous code. A `spawn_blocking` closure of the global runtime may call it,
/// but then waits out the whole `timeout`, since the runtime waits for that very closure.
///
/// # Errors
///
/// [`RuntimeError::ShutdownInAsyncContext`] on a thread that drives a scheduler (a runtime
/// worker, a current-thread runtime's `block_on`) or wherever else tokio forbids blocking (inside
/// a `LocalSet`, a second thread's `block_on` of a current-thread runtime); nothing is stopped. The body of a
/// multi-thread runtime's `block_on` (such as `#[tokio::main]`'s main) drives none: there the
/// runtime stops as anywhere else.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let forever = hivekit_runtime::spawn(std::future::pending::<()>());
/// hivekit_runtime::shutdown(Duration::from_secs(1))?;
/// assert!(matches!(
///     hivekit_runtime::try_handle(),
///     Err(hivekit_runtime::RuntimeError::ShutDown)
/// ));
/// # drop(forever);
/// # Ok::<(), hivekit_runtime::RuntimeError>(())
/// ```
pub fn shutdown(timeout: Duration) -> Result<(), RuntimeError> {
    if crate::execute::drives_scheduler() {
        return Err(RuntimeError::ShutdownInAsyncContext);
    }
    // The body of a multi-thread runtime's `block_on` (`#[tokio::main]`'s main, or a future in
    // `execute`'s own wait) drives no scheduler but sits in that runtime's context, where tokio
    // forbids blocking: it would panic after stopping the workers. `block_in_place` leaves the
    // context for the wait; anywhere else it only runs the closure.
    // Where tokio still refuses to block (inside a `LocalSet`, a second thread's `block_on` of a
    // current-thread runtime that another thread drives), it panics before running the closure.
    let mut stopping = false;
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tokio::task::block_in_place(|| {
            stopping = true;
            stop(timeout);
        });
    }));
    match stopped {
        Ok(()) => Ok(()),
        Err(_) if !stopping => Err(RuntimeError::ShutdownInAsyncContext),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// [`shutdown`] on a thread that may block.
fn stop(timeout: Duration) {
    let _building = BUILD_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    SHUT_DOWN.store(true, Ordering::Release);
    let Some(global) = GLOBAL.get() else {
        return;
    };
    let owned = std::mem::replace(
        &mut *global.owned.lock().unwrap_or_else(PoisonError::into_inner),
        Owned::Nothing,
    );
    match owned {
        Owned::MultiThread(runtime) => runtime.shutdown_timeout(timeout),
        Owned::CurrentThread { stop, stopped } => {
            if stop.send(timeout).is_ok() {
                // The driver stops at its next turn; a task that blocks the driver thread keeps it
                // from turning, and then this waits only the timeout (and a little slack).
                let _ = stopped.recv_timeout(timeout.saturating_add(Duration::from_millis(100)));
            }
        }
        Owned::Adopted | Owned::Nothing => {}
    }
}

/// True once [`shutdown`] was called: the global runtime is gone for the rest of the process.
///
/// A future polled while the runtime stops may panic inside tokio ("A Tokio 1.x context was found,
/// but it is being shutdown", on a timer or a socket); a caller that catches panics can tell such
/// a cut-off from a bug of its own with this.
///
/// # Examples
///
/// ```
/// assert!(!hivekit_runtime::is_shut_down());
/// ```
pub fn is_shut_down() -> bool {
    SHUT_DOWN.load(Ordering::Acquire)
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
    if is_shut_down() {
        return Err(RuntimeError::ShutDown);
    }
    global_handle()
}

/// The global runtime's handle, built on first use, without the shutdown check: for
/// [`try_execute`](crate::try_execute)'s fast path, which checks only when it must wait.
#[inline]
pub(crate) fn global_handle() -> Result<&'static Handle, RuntimeError> {
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

/// True once the global runtime has been built or adopted (and still after [`shutdown`]).
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
/// `None` before it is built and for an adopted runtime.
///
/// # Examples
///
/// ```
/// hivekit_runtime::handle();
/// let config = hivekit_runtime::active_config().expect("built above");
/// assert_eq!(config.thread_name, "hivekit-runtime");
/// ```
pub fn active_config() -> Option<&'static RuntimeConfig> {
    GLOBAL.get().and_then(|global| global.config.as_ref())
}

/// How many runtimes this process has built: 0 or 1.
pub(crate) fn runtimes_built() -> u64 {
    BUILDS.load(Ordering::SeqCst) as u64
}

#[cold]
fn initialize_default() -> Result<&'static Handle, RuntimeError> {
    let _building = BUILD_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    if is_shut_down() {
        return Err(RuntimeError::ShutDown);
    }
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
        // tokio panics when it cannot start a worker thread; a probe thread of the same stack size
        // turns the likely cause, a stack the operating system cannot give, into an error first.
        std::thread::Builder::new()
            .name(config.thread_name.clone())
            .stack_size(stack_size)
            .spawn(|| {})
            .and_then(|probe| {
                probe
                    .join()
                    .map_err(|_| std::io::Error::other("the stack size probe thread panicked"))
            })
            .map_err(|source| RuntimeError::Build { source })?;
        builder.thread_stack_size(stack_size);
    }
    // What the checks above cannot foresee (the operating system refusing a thread, tokio's own
    // `TOKIO_WORKER_THREADS`) makes tokio panic inside `build`: report it as the error it is.
    let runtime = match catch_unwind(AssertUnwindSafe(|| builder.build())) {
        Ok(built) => built.map_err(|source| RuntimeError::Build { source })?,
        Err(panic) => {
            return Err(RuntimeError::Build {
                source: std::io::Error::other(format!(
                    "tokio panicked while building the runtime: {}",
                    crate::task::panic_message(&*panic)
                )),
            })
        }
    };
    let handle = runtime.handle().clone();
    let owned = match config.flavor {
        Flavor::MultiThread => Owned::MultiThread(runtime),
        Flavor::CurrentThread => {
            // A current-thread runtime only makes progress (tasks, timers) while some thread runs
            // `Runtime::block_on`; this driver thread does so until `shutdown`.
            let (stop, stop_signal) = tokio::sync::oneshot::channel::<Duration>();
            let (stopped_signal, stopped) = mpsc::channel();
            let mut driver = std::thread::Builder::new().name(config.thread_name.clone());
            if let Some(stack_size) = config.thread_stack_size {
                driver = driver.stack_size(stack_size);
            }
            driver
                // Not marked as a global thread: it drives the scheduler, so `execute` there must
                // always take the checked path that refuses it.
                .spawn(move || {
                    // A dropped sender (never, since `Global` is never dropped) waits no longer.
                    let timeout = runtime.block_on(stop_signal).unwrap_or(Duration::ZERO);
                    runtime.shutdown_timeout(timeout);
                    let _ = stopped_signal.send(());
                })
                .map_err(|source| RuntimeError::Build { source })?;
            Owned::CurrentThread { stop, stopped }
        }
    };
    Ok(Global {
        handle,
        config: Some(config),
        owned: Mutex::new(owned),
    })
}

/// Runs on every thread the global runtime starts: their tokio context is the global runtime.
fn mark_global_thread() {
    let _ = THREAD.try_with(ThreadState::mark_base_global);
}
