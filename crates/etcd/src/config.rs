//! Where the etcd cluster is, under which key prefix a memory lives, and how long to wait.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

use crate::error::{refused_for_good, unreachable_now, EtcdError};

/// etcd's default `--max-request-bytes`: the largest request it accepts (1.5 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// etcd's default `--max-txn-ops`: the most operations one transaction may hold.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// How many versions a memory's history keeps unless told otherwise
/// ([`EtcdConfig::history`]): enough for a commit that lost to a few others, or a follower whose
/// watch reconnected, to catch up from the history; a follower further behind reloads the state.
pub const DEFAULT_HISTORY: usize = 100;

/// How long a decision key lives unless told otherwise ([`EtcdConfig::decision_window`]): ten
/// minutes, forty times the default commit timeout, and time enough to
/// [`resolve`](crate::EtcdMemory::resolve) a commit that ended in
/// [`EtcdError::OutcomeUnknown`].
pub const DEFAULT_DECISION_WINDOW: Duration = Duration::from_secs(600);

/// etcd's longest lease (`MaxLeaseTTL`, in seconds): a window that needs a longer one keeps the
/// decision keys forever.
pub(crate) const MAX_LEASE_TTL_SECONDS: u64 = 9_000_000_000;

/// How to reach etcd and where a hive's keys live.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hivekit_etcd::EtcdConfig;
///
/// let config = EtcdConfig::new(["http://127.0.0.1:2379"], "/hivekit/inventory")
///     .connect_timeout(Duration::from_secs(2))
///     .commit_timeout(Duration::from_secs(5));
/// assert_eq!(config.prefix(), "/hivekit/inventory/");
/// ```
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    pub(crate) endpoints: Vec<String>,
    pub(crate) prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) commit_timeout: Duration,
    pub(crate) max_request_bytes: usize,
    pub(crate) max_txn_ops: usize,
    pub(crate) history_depth: usize,
    pub(crate) decision_window: Duration,
}

impl EtcdConfig {
    /// A configuration for the cluster at `endpoints` (`http://host:port`) and the memory under
    /// `prefix` (a `/` is appended when missing). Timeouts: connect 3 s, request 5 s, commit 15 s.
    pub fn new<E: Into<String>>(endpoints: impl IntoIterator<Item = E>, prefix: &str) -> Self {
        let mut prefix = prefix.to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            commit_timeout: Duration::from_secs(15),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            history_depth: DEFAULT_HISTORY,
            decision_window: DEFAULT_DECISION_WINDOW,
        }
    }

    /// How long connecting may take before [`EtcdError::Unreachable`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one request may take.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long a commit may take in all, retries after conflicts and the read-back of an
    /// ambiguous outcome included.
    pub fn commit_timeout(mut self, timeout: Duration) -> Self {
        self.commit_timeout = timeout;
        self
    }

    /// The cluster's `--max-request-bytes`, when it is not etcd's default.
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// The cluster's `--max-txn-ops`, when it is not etcd's default.
    pub fn max_txn_ops(mut self, operations: usize) -> Self {
        self.max_txn_ops = operations;
        self
    }

    /// How many versions the history keeps (default: [`DEFAULT_HISTORY`]): the entries of the
    /// newest `depth` versions, read back with [`EtcdMemory::history`](crate::EtcdMemory::history).
    /// Each commit deletes the entry that falls out of this window in its own transaction, so
    /// etcd holds at most `depth` entries per memory however many versions are committed (plus
    /// what older processes with a deeper history left, until the next open trims it).
    ///
    /// `0` keeps none: each commit then carries its changes in the `head` key for the processes
    /// that follow it, and a process that falls behind reloads the whole state. `usize::MAX` keeps
    /// every version. Processes sharing a prefix should use the same depth: each commit trims by
    /// the committing process's depth.
    ///
    /// The decision keys that make a resent commit land at most once are bounded by time, not by
    /// this depth: see [`decision_window`](Self::decision_window).
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_etcd::{EtcdConfig, DEFAULT_HISTORY};
    ///
    /// let config = EtcdConfig::new(["http://127.0.0.1:2379"], "/hivekit/inventory");
    /// assert_eq!(config.history_depth(), DEFAULT_HISTORY);
    /// assert_eq!(config.history(0).history_depth(), 0);
    /// ```
    pub fn history(mut self, depth: usize) -> Self {
        self.history_depth = depth;
        self
    }

    /// How long each decision key lives (default: [`DEFAULT_DECISION_WINDOW`]): the window within
    /// which a resent commit is recognised and lands at most once, and within which
    /// [`EtcdMemory::resolve`](crate::EtcdMemory::resolve) answers for a decision.
    ///
    /// A commit writes `decisions/<32 hex digits>` under the prefix (the version it created) in
    /// its own transaction, and every copy of that transaction sent again after a lost answer
    /// compares that key's absence, so a decision lands at most once. The key is written under an
    /// etcd lease that is never renewed, so etcd deletes it between `window` and about
    /// `1.25 x window + commit timeout` after it was written: the keys stay bounded by the commit
    /// rate times the window, whatever the history depth (a depth bounds versions, but whether a
    /// copy may still be resent is a matter of time). The process grants a fresh lease every
    /// quarter window (one extra request then) and shares it between the commits of that quarter.
    ///
    /// The window must be at least the [commit timeout](Self::commit_timeout), after which a
    /// commit stops resending; [`resolve`](crate::EtcdMemory::resolve) must be called within the
    /// window after the commit gave up (later, a landed decision's key is gone and the answer
    /// comes from the history entries still held). A window longer than etcd's longest lease
    /// (`Duration::MAX`, say) keeps the keys forever, as versions before this one did.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hivekit_etcd::{EtcdConfig, DEFAULT_DECISION_WINDOW};
    ///
    /// let config = EtcdConfig::new(["http://127.0.0.1:2379"], "/hivekit/inventory");
    /// assert_eq!(config.decision_window_length(), DEFAULT_DECISION_WINDOW);
    /// let hour = config.decision_window(Duration::from_secs(3600));
    /// assert_eq!(hour.decision_window_length(), Duration::from_secs(3600));
    /// ```
    pub fn decision_window(mut self, window: Duration) -> Self {
        self.decision_window = window;
        self
    }

    /// How long each decision key lives ([`decision_window`](Self::decision_window)).
    pub fn decision_window_length(&self) -> Duration {
        self.decision_window
    }

    /// How many versions the history keeps ([`history`](Self::history)).
    pub fn history_depth(&self) -> usize {
        self.history_depth
    }

    /// The key prefix, ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub(crate) fn validate(&self) -> Result<(), EtcdError> {
        if self.endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        if self.prefix == "/" {
            return Err(EtcdError::InvalidPrefix {
                prefix: self.prefix.clone(),
                reason: "a memory needs a prefix of its own, not the whole keyspace",
            });
        }
        Ok(())
    }

    /// [`validate`](Self::validate), and what only a memory needs: a decision window no shorter
    /// than the commit timeout (membership and elections commit nothing).
    pub(crate) fn validate_memory(&self) -> Result<(), EtcdError> {
        self.validate()?;
        if self.decision_window < self.commit_timeout {
            return Err(EtcdError::DecisionWindowTooShort {
                window: self.decision_window,
                commit_timeout: self.commit_timeout,
            });
        }
        Ok(())
    }

    /// Connects and checks that the cluster answers, within the connect timeout.
    ///
    /// # Errors
    ///
    /// [`EtcdError::Unreachable`] when no endpoint answers in time; [`EtcdError::NoEndpoints`] and
    /// [`EtcdError::InvalidPrefix`] (before trying) for a config without endpoints or whose prefix
    /// is the whole keyspace.
    pub async fn connect(&self) -> Result<Client, EtcdError> {
        self.validate()?;
        let options = ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            // A member that stops answering (a partition; a killed process closes its sockets and
            // is noticed at once) is noticed within about 8 s, even on an idle watch stream. etcd
            // closes connections that ping more often than its `--grpc-keepalive-min-time` (5 s).
            .with_keep_alive(Duration::from_secs(6), Duration::from_secs(2))
            .with_keep_alive_while_idle(true);
        let unreachable = |detail: String| EtcdError::Unreachable {
            endpoints: self.endpoints.join(","),
            waited: self.connect_timeout,
            detail,
        };
        let client = match tokio::time::timeout(
            self.connect_timeout,
            Client::connect(&self.endpoints, Some(options)),
        )
        .await
        {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => return Err(unreachable(error.to_string())),
            Err(_) => return Err(unreachable("connect timed out".into())),
        };
        // Connecting is lazy: one small read proves that a member answers.
        let probe = crate::clients::kv(&client);
        let probing = EtcdConfig {
            request_timeout: self.connect_timeout,
            ..self.clone()
        };
        match probing
            .request("connect", || {
                let mut kv = probe.clone();
                async move { kv.get("\0", None).await }
            })
            .await
        {
            Ok(_) => Ok(client),
            Err(error) => Err(unreachable(error.to_string())),
        }
    }

    /// Runs a request that may be applied twice without harm (a read, or a write guarded by a
    /// comparison that a second copy fails) under the request timeout, sending it again whenever
    /// it fails short of a refusal for good: a request in flight on a member that stopped is cut,
    /// and one whose proposal was lost with the Raft leader is answered only after about 6 s, so
    /// each attempt is bounded by a second.
    pub(crate) async fn request_idempotent<T, F, Fut>(
        &self,
        operation: &'static str,
        mut call: F,
    ) -> Result<T, EtcdError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        const ATTEMPT: Duration = Duration::from_secs(1);
        let deadline =
            hivekit_runtime::instant_after(tokio::time::Instant::now(), self.request_timeout);
        let mut backoff = Duration::from_millis(20);
        loop {
            let attempt =
                hivekit_runtime::instant_after(tokio::time::Instant::now(), ATTEMPT).min(deadline);
            match tokio::time::timeout_at(attempt, call()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(source))
                    if refused_for_good(&source)
                        || tokio::time::Instant::now() + backoff >= deadline =>
                {
                    return Err(EtcdError::client(operation, source));
                }
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(EtcdError::Timeout {
                        operation,
                        waited: self.request_timeout,
                    });
                }
                _ => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
            }
        }
    }

    /// Runs one request under the request timeout. A request that could not be sent because its
    /// endpoint refused the connection (a dead member the client's balancer picked) is sent again,
    /// to any member, until the timeout: it cannot have been applied, so resending is safe.
    pub(crate) async fn request<T, F, Fut>(
        &self,
        operation: &'static str,
        mut call: F,
    ) -> Result<T, EtcdError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        // A request timeout of `Duration::MAX` means no limit.
        let deadline =
            hivekit_runtime::instant_after(tokio::time::Instant::now(), self.request_timeout);
        let mut backoff = Duration::from_millis(10);
        loop {
            match tokio::time::timeout_at(deadline, call()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(source))
                    if unreachable_now(&source)
                        && tokio::time::Instant::now() + backoff < deadline =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
                Ok(Err(source)) => return Err(EtcdError::client(operation, source)),
                Err(_) => {
                    return Err(EtcdError::Timeout {
                        operation,
                        waited: self.request_timeout,
                    })
                }
            }
        }
    }
}
