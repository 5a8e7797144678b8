//! [`Membership`]: a process's agents, registered under a lease so that they vanish with it.

use std::fmt;
use std::time::Duration;

use etcd_client::{Client, GetOptions, PutOptions};
use serde::{Deserialize, Serialize};

use hivekit_hive::AgentId;

use crate::config::EtcdConfig;
use crate::error::EtcdError;
use crate::layout::{prefix_end, Keys};
use crate::lease::KeptLease;

/// One live agent, as listed by [`Membership::members`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The process that registered it.
    pub process: String,
    /// The agent.
    pub agent: u64,
    /// What the process said about it when registering.
    pub info: String,
}

/// A process's membership in a distributed hive: its agents, registered under one lease that a
/// background task keeps alive.
///
/// A process that stops renewing (it was killed, or lost etcd) drops out once the lease's TTL has
/// passed: etcd deletes every key under the lease. Dropping the membership revokes the lease in the
/// background (from hivekit-etcd's revoke thread too, whatever runtime it is dropped on), so its
/// agents go at once while the process lives on; a process that exits right after the drop (the end of `main`)
/// may not get the revoke out, and its agents then go after the TTL. Call
/// [`leave`](Membership::leave) before exiting to be sure.
pub struct Membership {
    client: Client,
    config: EtcdConfig,
    keys: Keys,
    process: String,
    lease: KeptLease,
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership")
            .field("prefix", &self.keys.prefix)
            .field("process", &self.process)
            .field("lease", &self.lease.id)
            .field("alive", &self.lease.is_alive())
            .finish()
    }
}

/// Checks a name used as one segment of a key.
pub(crate) fn check_segment(name: &str) -> Result<(), EtcdError> {
    if name.is_empty() || name.contains('/') {
        return Err(EtcdError::InvalidName {
            name: name.to_string(),
            reason: "a name must be non-empty and contain no `/`",
        });
    }
    Ok(())
}

impl Membership {
    /// Joins the hive under `config`'s prefix as `process` (unique among the processes sharing
    /// it), with a lease of `ttl` (rounded up to whole seconds; etcd raises a TTL below its minimum,
    /// about three election timeouts, and [`ttl`](Membership::ttl) says what it granted).
    ///
    /// # Errors
    ///
    /// [`EtcdError::InvalidName`] for an empty name or one containing `/`; [`EtcdError`] when the
    /// lease cannot be granted.
    pub async fn join(
        client: Client,
        config: &EtcdConfig,
        process: &str,
        ttl: Duration,
    ) -> Result<Self, EtcdError> {
        config.validate()?;
        check_segment(process)?;
        let lease = KeptLease::grant(&client, config, ttl).await?;
        Ok(Membership {
            client,
            config: config.clone(),
            keys: Keys::new(&config.prefix),
            process: process.to_string(),
            lease,
        })
    }

    /// The process's name.
    pub fn process(&self) -> &str {
        &self.process
    }

    /// The lease's TTL as etcd granted it: how long the process stays listed after it stops.
    pub fn ttl(&self) -> Duration {
        self.lease.ttl
    }

    /// Whether the lease is known to be alive (renewed less than a TTL ago).
    pub fn is_alive(&self) -> bool {
        self.lease.is_alive()
    }

    /// Waits until the lease is lost: this process's agents are then no longer listed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn lost(&self) {
        self.lease.lost().await;
    }

    fn key(&self, agent: AgentId) -> String {
        format!("{}{}/{}", self.keys.members_prefix(), self.process, agent.0)
    }

    /// Registers `agent` with a free-form `info`, until it is deregistered or the lease goes.
    ///
    /// # Errors
    ///
    /// [`EtcdError`] when etcd fails, or [`EtcdError::LeaseLost`] when the lease is gone.
    pub async fn register(&self, agent: AgentId, info: &str) -> Result<(), EtcdError> {
        if !self.lease.is_alive() {
            return Err(EtcdError::LeaseLost {
                lease: self.lease.id,
                detail: "not renewed within its ttl".into(),
            });
        }
        let value = serde_json::to_vec(&Member {
            process: self.process.clone(),
            agent: agent.0,
            info: info.to_string(),
        })
        .map_err(|source| EtcdError::Serialize {
            what: "member",
            source,
        })?;
        let kv = crate::clients::kv(&self.client);
        let options = PutOptions::new().with_lease(self.lease.id);
        let key = self.key(agent);
        self.config
            .request("register agent", || {
                let mut kv = kv.clone();
                let (key, value, options) = (key.clone(), value.clone(), options.clone());
                async move { kv.put(key, value, Some(options)).await }
            })
            .await
            .map_err(|error| match error {
                EtcdError::Client { source, .. }
                    if source.to_string().contains("lease not found") =>
                {
                    EtcdError::LeaseLost {
                        lease: self.lease.id,
                        detail: "etcd no longer has it".into(),
                    }
                }
                error => error,
            })?;
        Ok(())
    }

    /// Removes `agent`.
    ///
    /// # Errors
    ///
    /// [`EtcdError`] when etcd fails.
    pub async fn deregister(&self, agent: AgentId) -> Result<(), EtcdError> {
        let kv = crate::clients::kv(&self.client);
        let key = self.key(agent);
        self.config
            .request("deregister agent", || {
                let mut kv = kv.clone();
                let key = key.clone();
                async move { kv.delete(key, None).await }
            })
            .await?;
        Ok(())
    }

    /// Every live agent of every process sharing the prefix.
    ///
    /// # Errors
    ///
    /// [`EtcdError`] when etcd fails or an entry does not deserialize.
    pub async fn members(&self) -> Result<Vec<Member>, EtcdError> {
        Self::list(&self.client, &self.config).await
    }

    /// Every live agent under `config`'s prefix, without joining.
    ///
    /// # Errors
    ///
    /// [`EtcdError`] when etcd fails or an entry does not deserialize.
    pub async fn list(client: &Client, config: &EtcdConfig) -> Result<Vec<Member>, EtcdError> {
        let prefix = Keys::new(&config.prefix).members_prefix();
        let kv = crate::clients::kv(client);
        let options = GetOptions::new().with_range(prefix_end(&prefix));
        let response = config
            .request("list members", || {
                let mut kv = kv.clone();
                let (prefix, options) = (prefix.clone(), options.clone());
                async move { kv.get(prefix, Some(options)).await }
            })
            .await?;
        response
            .kvs()
            .iter()
            .map(|pair| {
                serde_json::from_slice(pair.value()).map_err(|source| EtcdError::Corrupt {
                    key: String::from_utf8_lossy(pair.key()).into_owned(),
                    source,
                })
            })
            .collect()
    }

    /// Leaves: revokes the lease, so that every agent of this process goes at once. After the lease
    /// was lost (expired, or revoked by an operator) its agents are gone already, and leaving is
    /// `Ok`.
    ///
    /// # Errors
    ///
    /// [`EtcdError`] when etcd fails (the agents then go when the lease expires).
    pub async fn leave(self) -> Result<(), EtcdError> {
        let Membership { lease, config, .. } = self;
        lease.revoke(&config).await
    }
}
