//! Real etcd processes on loopback, for tests, benches and examples (feature `testing`).
//!
//! [`EtcdServer`] starts one `etcd` (the Debian `etcd-server` package) on free loopback ports with
//! its own temporary data directory, waits until it reports healthy, and kills it when dropped,
//! whatever happens: on a normal return, on a panic (drop runs while unwinding), and, through
//! `PR_SET_PDEATHSIG`, when the process that started it is killed. (Linux sends that signal when
//! the *thread* that started the child exits: start and restart servers from a thread that outlives
//! them, such as the test's own thread, not from a short-lived blocking task.) [`EtcdCluster`] does
//! the same for a cluster of several members.
//!
//! Data directories live on `/dev/shm` (tmpfs) when it exists, so that etcd's fsyncs cost little;
//! [`EtcdServer::data_dir`] says where.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The command that installs what the etcd tests need, printed when something is missing.
pub const INSTALL_COMMAND: &str = "apt-get install -y etcd-server protobuf-compiler";

/// How long a member may take to report healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(20);

/// Why an etcd process could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The `etcd` binary is not on `PATH`.
    #[error("the `etcd` binary was not found on PATH; install it with `{INSTALL_COMMAND}`")]
    EtcdMissing,
    /// Starting a process or preparing its data directory failed.
    #[error("could not start etcd member `{name}`: {source}")]
    Io {
        /// The member.
        name: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The member exited or did not report healthy in time.
    #[error("etcd member `{name}` did not become healthy within {waited:?}: {log_tail}")]
    Unhealthy {
        /// The member.
        name: String,
        /// How long it was given.
        waited: Duration,
        /// The end of its log.
        log_tail: String,
    },
}

/// Where temporary data directories go: tmpfs when there is one.
pub fn data_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Fails with [`HarnessError::EtcdMissing`] when `etcd` cannot be run.
///
/// # Errors
///
/// [`HarnessError::EtcdMissing`].
pub fn require_etcd() -> Result<(), HarnessError> {
    match Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        _ => Err(HarnessError::EtcdMissing),
    }
}

/// Ports this process has handed to a member: a member keeps its ports across restarts, and
/// while it is killed its ports are free, so another member started meanwhile (tests run in
/// parallel) must not be given them.
static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// A free loopback port, never one handed out before in this process (bound and released: another
/// process could take it before etcd does, which is why starting retries with fresh ports).
fn free_port() -> std::io::Result<u16> {
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for _ in 0..64 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "64 free ports in a row had been handed out already",
    ))
}

/// One member's fixed identity: its name and ports, kept across restarts.
#[derive(Debug, Clone)]
struct MemberSpec {
    name: String,
    client_port: u16,
    peer_port: u16,
}

impl MemberSpec {
    fn fresh(name: String) -> std::io::Result<Self> {
        Ok(MemberSpec {
            name,
            client_port: free_port()?,
            peer_port: free_port()?,
        })
    }

    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
}

/// One running (or stopped) etcd member, killed when dropped.
pub struct EtcdServer {
    spec: MemberSpec,
    initial_cluster: String,
    token: String,
    data: tempfile::TempDir,
    log_path: PathBuf,
    child: Option<Child>,
}

impl fmt::Debug for EtcdServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdServer")
            .field("name", &self.spec.name)
            .field("endpoint", &self.endpoint())
            .field("data_dir", &self.data.path())
            .field("running", &self.child.is_some())
            .finish()
    }
}

impl EtcdServer {
    /// Starts a single-member etcd and waits until it is healthy.
    ///
    /// # Errors
    ///
    /// [`HarnessError`] when etcd is missing or does not come up (after a few tries with fresh
    /// ports).
    pub fn start() -> Result<Self, HarnessError> {
        require_etcd()?;
        let mut last = None;
        for _ in 0..4 {
            let spec = MemberSpec::fresh("solo".into()).map_err(|source| HarnessError::Io {
                name: "solo".into(),
                source,
            })?;
            let initial_cluster = format!("{}={}", spec.name, spec.peer_url());
            let mut server = Self::spawn(spec, initial_cluster, unique_token())?;
            match server.wait_healthy() {
                Ok(()) => return Ok(server),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or(HarnessError::EtcdMissing))
    }

    fn spawn(
        spec: MemberSpec,
        initial_cluster: String,
        token: String,
    ) -> Result<Self, HarnessError> {
        let io = |source| HarnessError::Io {
            name: spec.name.clone(),
            source,
        };
        let data = tempfile::Builder::new()
            .prefix("hivekit-etcd-")
            .tempdir_in(data_root())
            .map_err(io)?;
        let log_path = data.path().join("etcd.log");
        let mut server = EtcdServer {
            spec,
            initial_cluster,
            token,
            data,
            log_path,
            child: None,
        };
        server.launch("new")?;
        Ok(server)
    }

    /// Starts the process; `state` is etcd's `--initial-cluster-state`.
    fn launch(&mut self, state: &str) -> Result<(), HarnessError> {
        let io = |source| HarnessError::Io {
            name: self.spec.name.clone(),
            source,
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(io)?;
        let log_err = log.try_clone().map_err(io)?;
        let mut command = Command::new("etcd");
        command
            .arg("--name")
            .arg(&self.spec.name)
            .arg("--data-dir")
            .arg(self.data.path().join("member-data"))
            .arg("--listen-client-urls")
            .arg(self.spec.client_url())
            .arg("--advertise-client-urls")
            .arg(self.spec.client_url())
            .arg("--listen-peer-urls")
            .arg(self.spec.peer_url())
            .arg("--initial-advertise-peer-urls")
            .arg(self.spec.peer_url())
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-state")
            .arg(state)
            .arg("--initial-cluster-token")
            .arg(&self.token)
            // Faster failover on loopback: a lost leader is replaced in well under a second.
            .arg("--heartbeat-interval")
            .arg("50")
            .arg("--election-timeout")
            .arg("500")
            .arg("--log-level")
            .arg("warn")
            .arg("--logger")
            .arg("zap")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                HarnessError::EtcdMissing
            } else {
                io(source)
            }
        })?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until `/health` answers true, or the process exits, or the time is up.
    fn wait_healthy(&mut self) -> Result<(), HarnessError> {
        let started = Instant::now();
        let address = SocketAddr::from(([127, 0, 0, 1], self.spec.client_port));
        while started.elapsed() < HEALTHY_WITHIN {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    break;
                }
            }
            if healthy(address) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(HarnessError::Unhealthy {
            name: self.spec.name.clone(),
            waited: started.elapsed(),
            log_tail: self.log_tail(),
        })
    }

    /// The end of the member's log (for error messages).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let start = log.len().saturating_sub(1500);
        let start = (start..log.len())
            .find(|&index| log.is_char_boundary(index))
            .unwrap_or(log.len());
        log[start..].to_string()
    }

    /// The member's client URL (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        self.spec.client_url()
    }

    /// The member's name in its cluster.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The member's data directory (on tmpfs when `/dev/shm` exists).
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Freezes the process (SIGSTOP), as a partition or a stalled disk would: it holds its
    /// connections and answers nothing until [`thaw`](Self::thaw). Returns once every thread of
    /// it has stopped (a signal stops each thread as it next runs, so on a loaded machine one may
    /// otherwise still answer a request sent after the signal). Does nothing when not running.
    ///
    /// # Panics
    ///
    /// When the signal cannot be sent, or the process does not stop within 5 s.
    pub fn freeze(&self) {
        let Some(pid) = self.pid() else { return };
        send_signal(pid, libc::SIGSTOP);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !every_thread_stopped(pid) {
            assert!(Instant::now() < deadline, "etcd {pid} never stopped");
            std::thread::yield_now();
        }
    }

    /// Lets a [frozen](Self::freeze) process run again (SIGCONT). Does nothing when not running.
    ///
    /// # Panics
    ///
    /// When the signal cannot be sent.
    pub fn thaw(&self) {
        if let Some(pid) = self.pid() {
            send_signal(pid, libc::SIGCONT);
        }
    }

    /// Kills the process with SIGKILL and reaps it; the data directory stays for a restart.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again on the same ports and data directory and waits until it is
    /// healthy (in a cluster, healthy means it has a leader again, so restart a quorum).
    ///
    /// # Errors
    ///
    /// [`HarnessError`] when it does not come back.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        // Its ports were free while it was down: a connection of another process may hold one
        // for a moment (etcd then exits with "address already in use"), so try a few times.
        let mut attempts = 0;
        loop {
            self.kill();
            self.launch("existing")?;
            match self.wait_healthy() {
                Err(_) if self.child.is_none() && attempts < 10 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(200));
                }
                result => return result,
            }
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of etcd members on loopback, each killed when the cluster is dropped.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<EtcdServer>,
}

impl EtcdCluster {
    /// Starts `size` members and waits until every one is healthy (the cluster has a leader).
    ///
    /// # Errors
    ///
    /// [`HarnessError`] when etcd is missing or a member does not come up.
    pub fn start(size: usize) -> Result<Self, HarnessError> {
        require_etcd()?;
        let mut last = None;
        for _ in 0..4 {
            let specs = (0..size)
                .map(|index| MemberSpec::fresh(format!("member{index}")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| HarnessError::Io {
                    name: "cluster".into(),
                    source,
                })?;
            let initial_cluster = specs
                .iter()
                .map(|spec| format!("{}={}", spec.name, spec.peer_url()))
                .collect::<Vec<_>>()
                .join(",");
            let token = unique_token();
            let mut members = Vec::with_capacity(size);
            for spec in specs {
                members.push(EtcdServer::spawn(
                    spec,
                    initial_cluster.clone(),
                    token.clone(),
                )?);
            }
            match members.iter_mut().try_for_each(EtcdServer::wait_healthy) {
                Ok(()) => return Ok(EtcdCluster { members }),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or(HarnessError::EtcdMissing))
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdServer::endpoint).collect()
    }

    /// The members.
    pub fn members(&self) -> &[EtcdServer] {
        &self.members
    }

    /// One member, to kill or restart.
    pub fn member_mut(&mut self, index: usize) -> Option<&mut EtcdServer> {
        self.members.get_mut(index)
    }
}

/// Whether the member at `address` answers its `/health` endpoint with `"health":"true"`.
fn healthy(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(1000)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.contains("\"health\":\"true\"")
}

/// A cluster token no other test's cluster shares.
fn unique_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "hivekit-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Makes the child receive SIGKILL when the thread that started it exits, so that no etcd outlives
/// a test process that was itself killed.
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and calls only `prctl`, which is
    // async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, and killed when the thread that
/// started it exits: for tests that run clients as separate processes.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Spawns `command` under the guard.
    ///
    /// # Errors
    ///
    /// The error of [`Command::spawn`].
    pub fn spawn(mut command: Command) -> std::io::Result<Self> {
        die_with_parent(&mut command);
        Ok(ChildGuard {
            child: Some(command.spawn()?),
        })
    }

    /// The process, while it has not been killed or waited for.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit by itself and returns its exit status, or kills it once
    /// `limit` has passed and returns `None`. (Have the child write what it reports to a file: a
    /// full pipe would block it.)
    pub fn wait_with_limit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        loop {
            let child = self.child.as_mut()?;
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return Some(status);
                }
                Ok(None) if started.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    self.kill();
                    return None;
                }
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` (`libc::SIGSTOP`, `libc::SIGCONT`) to process `pid`.
fn send_signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    // SAFETY: kill(2) only reads its two integer arguments.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        sent,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// Whether every thread of process `pid` is stopped (state `T` in /proc; a process that has gone
/// has none left running either).
fn every_thread_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).map_or(true, |stat| {
            // The state follows the command name, which is in parentheses.
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with(['T', 't']))
        })
    })
}
