//! [`LeaderObserver`]: follows who leads an [`Election`](crate::Election), as etcd's `Observe`
//! does, through a watch on the election's keys that survives compaction and member failover.

use std::fmt;
use std::time::Duration;

use etcd_client::{Client, GetOptions, SortOrder, SortTarget, WatchOptions, WatchStream};

use crate::config::EtcdConfig;
use crate::error::{refused_for_good, EtcdError};

/// Follows an election's leader: made by [`Election::observe`](crate::Election::observe), it holds
/// the leader as last read, and [`changed`](Self::changed) waits for the next one.
///
/// A change is another candidate elected, the leader
/// [proclaiming](crate::Leadership::proclaim) a new value, or the election left without a
/// leader. Each change is read from etcd after its event, so changes that follow each other
/// faster than a read come as one (the latest); the same leader is never reported twice in a row.
/// The leader is the oldest candidacy, as [`Election::leader`](crate::Election::leader) reads it.
pub struct LeaderObserver {
    client: Client,
    config: EtcdConfig,
    /// The election's key prefix (its name and a `/`).
    prefix: String,
    /// The leader as last read: its candidacy's creation revision and its value.
    leader: Option<(i64, String)>,
    /// The revision that read was at; the watch starts after it.
    revision: i64,
    /// The watch on the prefix, made when first needed and again after it ends.
    stream: Option<WatchStream>,
    /// A watch event was taken from `stream` and the leader not yet read after it (a `changed`
    /// cancelled during its read): the next `changed` reads first.
    unread: bool,
}

impl fmt::Debug for LeaderObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderObserver")
            .field("prefix", &self.prefix)
            .field("leader", &self.leader())
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

impl LeaderObserver {
    /// Reads the election's leader now.
    pub(crate) async fn start(
        client: Client,
        config: EtcdConfig,
        prefix: String,
    ) -> Result<Self, EtcdError> {
        let mut observer = LeaderObserver {
            client,
            config,
            prefix,
            leader: None,
            revision: 0,
            stream: None,
            unread: false,
        };
        let (leader, revision) = observer
            .config
            .request("read leader", || observer.read())
            .await?;
        observer.leader = leader;
        observer.revision = revision;
        Ok(observer)
    }

    /// The leader's value as last read (`None`: no leader then).
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_ref().map(|(_, value)| value.as_str())
    }

    /// Waits until the leader changes, and returns the new leader's value (`None`: the election
    /// has no leader now).
    ///
    /// A watch or a read cut by a member that stopped, restarted or lost its connection is made
    /// again (to any member), for up to the request timeout
    /// ([`EtcdConfig::request_timeout`](crate::EtcdConfig::request_timeout)) of failures in a row.
    ///
    /// # Errors
    ///
    /// [`EtcdError::Client`] with the last failure when etcd could not be read for the request
    /// timeout, or refused the request for good ([`EtcdError::Timeout`] when its watches kept
    /// ending without one, or a read did not answer). The observer stays usable: call again to
    /// go on.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a change is recorded only as it is returned, and a watch event taken before a
    /// cancel is read by the next call.
    pub async fn changed(&mut self) -> Result<Option<String>, EtcdError> {
        // Failures in a row: counted from the first one, not from the call (a call may wait for
        // a change for hours).
        let mut failing: Option<Failing> = None;
        loop {
            if !self.unread {
                let stream = match &mut self.stream {
                    Some(stream) => stream,
                    None => {
                        let options = WatchOptions::new()
                            .with_prefix()
                            .with_start_revision(self.revision + 1);
                        let mut watch = crate::clients::watch(&self.client);
                        match watch.watch(self.prefix.clone(), Some(options)).await {
                            Ok(stream) => self.stream.insert(stream),
                            Err(source) => {
                                failing
                                    .get_or_insert_with(|| Failing::new(&self.config))
                                    .again("observe leader", Some(source))
                                    .await?;
                                continue;
                            }
                        }
                    }
                };
                match stream.message().await {
                    Ok(Some(message)) if message.canceled() => self.stream = None,
                    Ok(Some(message)) if message.events().is_empty() => continue,
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        self.stream = None;
                        failing
                            .get_or_insert_with(|| Failing::new(&self.config))
                            .again("observe leader", None)
                            .await?;
                    }
                    Err(source) => {
                        self.stream = None;
                        failing
                            .get_or_insert_with(|| Failing::new(&self.config))
                            .again("observe leader", Some(source))
                            .await?;
                    }
                }
                // Taken from the stream: read before waiting for another, also after a cancel.
                self.unread = true;
            }
            let failing_now = failing.get_or_insert_with(|| Failing::new(&self.config));
            let read = tokio::time::timeout_at(failing_now.deadline, self.read()).await;
            let Ok(read) = read else {
                self.stream = None;
                return Err(EtcdError::Timeout {
                    operation: "read leader",
                    waited: failing_now.timeout,
                });
            };
            let (leader, revision) = match read {
                Ok(read) => read,
                Err(source) => {
                    self.stream = None;
                    failing_now.again("read leader", Some(source)).await?;
                    continue;
                }
            };
            failing = None;
            self.unread = false;
            self.revision = revision;
            if leader != self.leader {
                self.leader = leader;
                return Ok(self.leader().map(str::to_owned));
            }
        }
    }

    /// The leader now (its candidacy's creation revision and value) and the revision read at.
    async fn read(&self) -> Result<(Option<(i64, String)>, i64), etcd_client::Error> {
        let oldest = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Create, SortOrder::Ascend)
            .with_limit(1);
        let response = crate::clients::kv(&self.client)
            .get(self.prefix.clone(), Some(oldest))
            .await?;
        let leader = response.kvs().first().map(|pair| {
            (
                pair.create_revision(),
                String::from_utf8_lossy(pair.value()).into_owned(),
            )
        });
        let revision = response.header().map_or(0, |header| header.revision());
        Ok((leader, revision))
    }
}

/// Failures in a row of an observer's requests: each is tried again after a backoff, until the
/// request timeout has passed since the first.
struct Failing {
    timeout: Duration,
    deadline: tokio::time::Instant,
    backoff: Duration,
}

impl Failing {
    fn new(config: &EtcdConfig) -> Self {
        let timeout = config.request_timeout;
        Failing {
            timeout,
            deadline: hivekit_runtime::instant_after(tokio::time::Instant::now(), timeout),
            backoff: Duration::from_millis(20),
        }
    }

    /// Waits before the next try after `failure` (`None`: a watch that ended without an
    /// error), or says why there is none.
    async fn again(
        &mut self,
        operation: &'static str,
        failure: Option<etcd_client::Error>,
    ) -> Result<(), EtcdError> {
        if let Some(source) = failure {
            if refused_for_good(&source)
                || tokio::time::Instant::now() + self.backoff >= self.deadline
            {
                return Err(EtcdError::client(operation, source));
            }
        } else if tokio::time::Instant::now() + self.backoff >= self.deadline {
            return Err(EtcdError::Timeout {
                operation,
                waited: self.timeout,
            });
        }
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
        Ok(())
    }
}
