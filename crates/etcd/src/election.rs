//! [`Election`]: one leader at a time among the processes sharing a prefix, with the key layout of
//! etcd's election API (its `leader` and `resign` calls serve them); the queue itself is waited on
//! here (see [`Election::campaign`]).

use std::fmt;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, LeaderKey, PutOptions, ResignOptions,
    SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions,
};

use crate::config::EtcdConfig;
use crate::error::{lease_not_found, refused_for_good, EtcdError};
use crate::layout::Keys;
use crate::leader_observer::LeaderObserver;
use crate::lease::KeptLease;
use crate::membership::check_segment;

/// An election among the processes sharing a prefix, for work that must run in one place at a
/// time (such as driving scheduled rounds).
///
/// Candidates [`campaign`](Self::campaign) with a lease; etcd elects them one at a time, in the
/// order they campaigned. A leader that dies stops renewing its lease and the next candidate is
/// elected once the lease's TTL has passed.
#[derive(Clone)]
pub struct Election {
    client: Client,
    config: EtcdConfig,
    name: String,
}

impl fmt::Debug for Election {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Election")
            .field("name", &self.name)
            .finish()
    }
}

/// This process's leadership, won by [`Election::campaign`]. Dropping it stops renewing its lease
/// and revokes it in the background (from hivekit-etcd's revoke thread too), handing leadership on
/// while the process lives on; a process that exits right after the drop may not get the revoke out, and
/// leadership then passes after the TTL. Call [`resign`](Leadership::resign) before exiting to be
/// sure.
pub struct Leadership {
    client: Client,
    config: EtcdConfig,
    leader: LeaderKey,
    candidate: String,
    lease: KeptLease,
    deleted: tokio::task::JoinHandle<()>,
    deleted_signal: tokio::sync::watch::Receiver<bool>,
}

impl fmt::Debug for Leadership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leadership")
            .field("candidate", &self.candidate)
            .field("key", &String::from_utf8_lossy(self.leader.key()))
            .field("lease", &self.lease.id)
            .field("held", &self.is_leader())
            .finish()
    }
}

impl Election {
    /// The election `name` under `config`'s prefix.
    ///
    /// # Errors
    ///
    /// [`EtcdError::InvalidName`] for an empty name or one containing `/`;
    /// [`EtcdError::NoEndpoints`] and [`EtcdError::InvalidPrefix`] for a config without endpoints
    /// or whose prefix is the whole keyspace.
    pub fn new(client: Client, config: &EtcdConfig, name: &str) -> Result<Self, EtcdError> {
        config.validate()?;
        check_segment(name)?;
        Ok(Election {
            client,
            config: config.clone(),
            name: Keys::new(&config.prefix).election(name),
        })
    }

    /// Campaigns as `candidate` with a lease of `ttl`, and waits until elected.
    ///
    /// A candidate waits through a failover of etcd's members and through a connection reset: its
    /// candidacy is a key on its lease, which stays in etcd while the lease lives, and a request
    /// that was cut is sent again, so it keeps its place in the queue.
    ///
    /// # Errors
    ///
    /// [`EtcdError::LeaseLost`] when the lease is lost while waiting (etcd unreachable for its
    /// TTL), or when the candidacy's key is deleted or its lease revoked (by an operator) while it
    /// waits; [`EtcdError`] when etcd refuses the campaign.
    ///
    /// # Cancel safety
    ///
    /// Cancelling drops the lease (revoking it), which withdraws the candidacy.
    pub async fn campaign(&self, candidate: &str, ttl: Duration) -> Result<Leadership, EtcdError> {
        let lease = KeptLease::grant(&self.client, &self.config, ttl).await?;
        // The candidacy is a key under the election's name keyed by the lease, put only if
        // absent (a retry after a cut finds its own key), as etcd's election API keys it: its
        // creation revision is the candidate's place in the queue. The queue is read here, not by
        // etcd's Campaign call, which resigns the candidate's key when its request is cancelled
        // (a connection reset), sending a candidate that stands again to the back of the queue.
        let key = format!("{}/{:x}", self.name, lease.id);
        let kv = crate::clients::kv(&self.client);
        let stand = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                candidate,
                Some(PutOptions::new().with_lease(lease.id)),
            )])
            .or_else([TxnOp::get(key.clone(), None)]);
        let stood = until_answered(&lease, || {
            let (mut kv, stand) = (kv.clone(), stand.clone());
            async move { kv.txn(stand).await }
        })
        .await?;
        let revision = if stood.succeeded() {
            stood.header().map_or(0, |header| header.revision())
        } else {
            stood
                .op_responses()
                .iter()
                .find_map(|response| match response {
                    TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.create_revision()),
                    _ => None,
                })
                .unwrap_or(0)
        };
        if revision <= 0 {
            // etcd always says both; without them the queue cannot be read (every candidate,
            // this one included, would look earlier).
            return Err(lost(&lease, "etcd did not say where the candidacy stands"));
        }
        // Elected once no candidate that stood before is left: wait for the deletion of the
        // latest one before this, then look again.
        let earlier = GetOptions::new()
            .with_prefix()
            .with_max_create_revision(revision - 1)
            .with_sort(SortTarget::Create, SortOrder::Descend)
            .with_limit(1);
        let prefix = format!("{}/", self.name);
        // The candidacy itself, deleted by an operator while a leader is still ahead: out of the
        // queue for good, the wait ends now.
        let (mine_gone, _) = tokio::sync::watch::channel(false);
        let mine_deleted = watch_deletion(self.client.clone(), key.clone().into_bytes(), mine_gone);
        tokio::pin!(mine_deleted);
        loop {
            let ahead = until_answered(&lease, || {
                let (mut kv, prefix, earlier) = (kv.clone(), prefix.clone(), earlier.clone());
                async move { kv.get(prefix, Some(earlier)).await }
            })
            .await?;
            let Some(previous) = ahead.kvs().first() else {
                break;
            };
            let (gone, _) = tokio::sync::watch::channel(false);
            tokio::select! {
                () = watch_deletion(self.client.clone(), previous.key().to_vec(), gone) => {}
                () = &mut mine_deleted => {
                    return Err(lost(&lease, "the candidacy was deleted while waiting"));
                }
                () = lease.lost() => return Err(lost(&lease, "lost while campaigning")),
            }
        }
        // No candidate is ahead any more (none can stand ahead later), but this one is elected
        // only if its own key is still the one it stood with: an operator may have deleted it, or
        // revoked its lease (which deletes it) while it waited, before the renewals noticed. As
        // etcd's own lock does, read it back: an unchanged creation revision means it was never
        // deleted and put again.
        let mine = until_answered(&lease, || {
            let (mut kv, key) = (kv.clone(), key.clone());
            async move { kv.get(key, None).await }
        })
        .await?;
        if mine.kvs().first().map(|kv| kv.create_revision()) != Some(revision) {
            return Err(lost(&lease, "the candidacy was deleted while waiting"));
        }
        let leader = LeaderKey::new()
            .with_name(self.name.clone())
            .with_key(key)
            .with_rev(revision)
            .with_lease(lease.id);
        let (sender, deleted_signal) = tokio::sync::watch::channel(false);
        let deleted = tokio::spawn(watch_deletion(
            self.client.clone(),
            leader.key().to_vec(),
            sender,
        ));
        Ok(Leadership {
            client: self.client.clone(),
            config: self.config.clone(),
            leader,
            candidate: candidate.to_owned(),
            lease,
            deleted,
            deleted_signal,
        })
    }

    /// The current leader's candidate value, if any.
    ///
    /// # Errors
    ///
    /// [`EtcdError`] when etcd fails.
    pub async fn leader(&self) -> Result<Option<String>, EtcdError> {
        let election = self.client.election_client();
        match self
            .config
            .request("read leader", || {
                let mut election = election.clone();
                let name = self.name.clone();
                async move { election.leader(name).await }
            })
            .await
        {
            Ok(response) => Ok(response
                .kv()
                .map(|pair| String::from_utf8_lossy(pair.value()).into_owned())),
            Err(EtcdError::Client { source, .. }) if source.to_string().contains("no leader") => {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }
}

impl Election {
    /// Follows who leads, as etcd's `Observe` does: the returned observer holds the leader now,
    /// and [`LeaderObserver::changed`] waits for the next one.
    ///
    /// # Errors
    ///
    /// [`EtcdError`] when etcd could not be read within the request timeout.
    pub async fn observe(&self) -> Result<LeaderObserver, EtcdError> {
        LeaderObserver::start(
            self.client.clone(),
            self.config.clone(),
            format!("{}/", self.name),
        )
        .await
    }
}

/// The error of a candidacy whose lease was lost.
fn lost(lease: &KeptLease, detail: &str) -> EtcdError {
    EtcdError::LeaseLost {
        lease: lease.id,
        detail: detail.into(),
    }
}

/// Runs a campaign's request until etcd answers it, through the failover of etcd's members (a
/// request cut by a member that stopped or a Raft leader change is sent again, after a backoff),
/// while `lease` lives.
async fn until_answered<T, F, Fut>(lease: &KeptLease, mut call: F) -> Result<T, EtcdError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let mut backoff = Duration::from_millis(20);
    loop {
        let outcome = tokio::select! {
            outcome = call() => outcome,
            () = lease.lost() => return Err(lost(lease, "lost while campaigning")),
        };
        match outcome {
            Ok(answer) => return Ok(answer),
            Err(source) if lease_not_found(&source) => {
                return Err(lost(lease, "etcd no longer has it"));
            }
            Err(source) if refused_for_good(&source) => {
                return Err(EtcdError::client("campaign", source));
            }
            Err(source) => {
                tracing::debug!(%source, "campaign request cut; sending it again");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = lease.lost() => return Err(lost(lease, "lost while campaigning")),
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Signals once the leader key is deleted (resigned, or its lease expired).
async fn watch_deletion(client: Client, key: Vec<u8>, deleted: tokio::sync::watch::Sender<bool>) {
    let mut backoff = Duration::from_millis(20);
    loop {
        let mut watch_client = crate::clients::watch(&client);
        let mut kv = crate::clients::kv(&client);
        // The key may be gone already (watching from now on would miss its deletion).
        match kv.get(key.clone(), None).await {
            Ok(response) if response.kvs().is_empty() => {
                let _ = deleted.send(true);
                return;
            }
            Ok(response) => {
                let revision = response.header().map_or(0, |header| header.revision()) + 1;
                let options = WatchOptions::new().with_start_revision(revision);
                if let Ok(mut stream) = watch_client.watch(key.clone(), Some(options)).await {
                    backoff = Duration::from_millis(20);
                    while let Ok(Some(message)) = stream.message().await {
                        if message
                            .events()
                            .iter()
                            .any(|event| event.event_type() == EventType::Delete)
                        {
                            let _ = deleted.send(true);
                            return;
                        }
                        if message.canceled() {
                            break;
                        }
                    }
                }
            }
            Err(_) => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

impl Leadership {
    /// Whether this process is still the leader: its lease is renewed and its leader key exists.
    pub fn is_leader(&self) -> bool {
        self.lease.is_alive() && !*self.deleted_signal.borrow()
    }

    /// Waits until leadership is lost: the lease was not renewed within its TTL, or the leader key
    /// was deleted. Work that must run in one place stops when this returns.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn lost(&self) {
        let mut deleted = self.deleted_signal.clone();
        tokio::select! {
            () = self.lease.lost() => {}
            _ = deleted.wait_for(|deleted| *deleted) => {}
        }
    }

    /// The candidate value this leader campaigned with, or last [proclaimed](Self::proclaim)
    /// (what [`Election::leader`] reports while it leads).
    pub fn candidate(&self) -> &str {
        &self.candidate
    }

    /// Changes the value this leader shows ([`Election::leader`], [`LeaderObserver`]) without
    /// a new election, as etcd's `Proclaim` does: the leader key is rewritten only if it is still
    /// the one this leadership won.
    ///
    /// # Errors
    ///
    /// [`EtcdError::LeaseLost`] when the leader key is gone (leadership lost: resigned from
    /// elsewhere, deleted, or its lease expired); [`EtcdError`] when etcd fails.
    pub async fn proclaim(&mut self, value: &str) -> Result<(), EtcdError> {
        let key = self.leader.key().to_vec();
        let rewrite = Txn::new()
            .when([Compare::create_revision(
                key.clone(),
                CompareOp::Equal,
                self.leader.rev(),
            )])
            .and_then([TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_lease(self.lease.id)),
            )]);
        let kv = crate::clients::kv(&self.client);
        // The rewrite changes nothing more when applied twice: resent when cut by a failover.
        let rewritten = self
            .config
            .request_idempotent("proclaim", || {
                let (mut kv, rewrite) = (kv.clone(), rewrite.clone());
                async move { kv.txn(rewrite).await }
            })
            .await?;
        if !rewritten.succeeded() {
            return Err(lost(&self.lease, "the leader key is gone"));
        }
        value.clone_into(&mut self.candidate);
        Ok(())
    }

    /// The etcd key that holds this leadership: the election's prefix and the lease's id. An
    /// operator who deletes it ends the leadership ([`lost`](Self::lost) returns at once).
    pub fn key(&self) -> String {
        String::from_utf8_lossy(self.leader.key()).into_owned()
    }

    /// Hands leadership on.
    ///
    /// # Errors
    ///
    /// [`EtcdError`] when etcd fails (leadership then ends when the lease expires).
    pub async fn resign(self) -> Result<(), EtcdError> {
        self.deleted.abort();
        let election = self.client.election_client();
        let options = ResignOptions::new().with_leader(self.leader.clone());
        // etcd deletes the leader key only while it is the one won: resent when cut by a failover.
        self.config
            .request_idempotent("resign", || {
                let mut election = election.clone();
                let options = options.clone();
                async move { election.resign(Some(options)).await }
            })
            .await?;
        Ok(())
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.deleted.abort();
    }
}
