//! The leases the decision keys are written under, so that etcd deletes each one some time after
//! the decision window has passed (see [`EtcdConfig::decision_window`]).
//!
//! A lease is granted with a TTL of `window + window / 4 + commit timeout` and used for the
//! decision keys written in the quarter window after it was granted; a commit that takes a lease
//! writes its key within the commit timeout. So every key outlives its write by at least the
//! window (etcd counts a TTL from the grant, which comes after the moment recorded here, and
//! only ever lengthens it, after a leader change), and the live leases of a process number about
//! five. Leases are never renewed or revoked: a key must outlive the process that wrote it, for a
//! `resolve` from elsewhere.

use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use parking_lot::Mutex;

use super::load::{read_marker, read_range};
use crate::config::{EtcdConfig, MAX_LEASE_TTL_SECONDS};
use crate::error::EtcdError;
use crate::layout::{prefix_end, Keys, Meta, DECISIONS_LEASED};

/// How the decision leases of a configuration are granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeasePlan {
    /// The TTL each lease is granted with, in whole seconds.
    pub(crate) ttl_seconds: i64,
    /// How long after its grant a lease is used for new keys.
    pub(crate) reuse_for: Duration,
}

impl LeasePlan {
    /// The plan for `window` and `commit_timeout`, or `None` when the keys are kept forever (the
    /// TTL would exceed etcd's longest lease).
    pub(crate) fn of(window: Duration, commit_timeout: Duration) -> Option<Self> {
        let reuse_for = window / 4;
        let ttl = window.checked_add(reuse_for)?.checked_add(commit_timeout)?;
        let whole = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        if whole > MAX_LEASE_TTL_SECONDS {
            return None;
        }
        Some(LeasePlan {
            ttl_seconds: i64::try_from(whole.max(1)).ok()?,
            reuse_for,
        })
    }
}

/// The lease new decision keys go under, granted lazily and replaced every quarter window.
#[derive(Debug, Default)]
pub(crate) struct DecisionLeases {
    current: Mutex<Option<(i64, Instant)>>,
}

impl DecisionLeases {
    /// The lease to attach a decision key to now, or `None` when the keys are kept forever.
    ///
    /// # Errors
    ///
    /// [`EtcdError`] when the grant fails (nothing was written then).
    pub(crate) async fn lease(
        &self,
        client: &Client,
        config: &EtcdConfig,
    ) -> Result<Option<i64>, EtcdError> {
        let Some(plan) = LeasePlan::of(config.decision_window, config.commit_timeout) else {
            return Ok(None);
        };
        if let Some((id, granted)) = *self.current.lock() {
            if granted.elapsed() < plan.reuse_for {
                return Ok(Some(id));
            }
        }
        // Taken before the request: etcd starts the TTL later, so the key lives at least as long.
        let asked = Instant::now();
        let lease_client = client.lease_client();
        let granted = config
            .request("grant decision lease", || {
                let mut lease_client = lease_client.clone();
                async move { lease_client.grant(plan.ttl_seconds, None).await }
            })
            .await?;
        let id = granted.id();
        // Two commits that both found the lease stale grant one each; the later store wins and
        // the other lease just expires with its keys.
        *self.current.lock() = Some((id, asked));
        Ok(Some(id))
    }

    /// Forgets the current lease (etcd no longer knows it), so that the next key gets a new one.
    pub(crate) fn forget(&self, id: i64) {
        let mut current = self.current.lock();
        if matches!(*current, Some((current_id, _)) if current_id == id) {
            *current = None;
        }
    }
}

/// Attaches the decision keys written without a lease (by versions before decision keys expired)
/// to the current decision lease, once per memory: the marker then says `"decisions":"leased"`.
/// Returns how many keys were attached. Keys that older processes still sharing the prefix write
/// afterwards stay until they are upgraded too.
pub(crate) async fn lease_old_decisions(
    client: &Client,
    config: &EtcdConfig,
    keys: &Keys,
    leases: &DecisionLeases,
) -> Result<usize, EtcdError> {
    let kv = crate::clients::kv(client);
    let marker = read_marker(client, config, keys).await?;
    let Some(pair) = marker.kvs().first() else {
        return Ok(0);
    };
    let mut meta: Meta =
        serde_json::from_slice(pair.value()).map_err(|source| EtcdError::Corrupt {
            key: keys.meta(),
            source,
        })?;
    if meta.decisions.as_deref() == Some(DECISIONS_LEASED) {
        return Ok(0);
    }
    let marker_revision = pair.mod_revision();
    let Some(lease) = leases.lease(client, config).await? else {
        // The window keeps the keys forever: nothing to attach.
        return Ok(0);
    };
    let prefix = keys.decisions_prefix();
    let (pairs, _) = read_range(
        client,
        config,
        prefix.clone().into_bytes(),
        prefix_end(&prefix),
    )
    .await?;
    let unleased: Vec<Vec<u8>> = pairs
        .iter()
        .filter(|pair| pair.lease() == 0)
        .map(|pair| pair.key().to_vec())
        .collect();
    for batch in unleased.chunks(config.max_txn_ops.max(1)) {
        // Each key keeps its value (`ignore_value`) and gets the lease; a key is never deleted
        // but by its lease, so every put finds its key.
        let operations: Vec<TxnOp> = batch
            .iter()
            .map(|key| {
                let options = PutOptions::new().with_lease(lease).with_ignore_value();
                TxnOp::put(key.clone(), Vec::new(), Some(options))
            })
            .collect();
        let txn = Txn::new().and_then(operations);
        config
            .request("lease old decisions", || {
                let mut kv = kv.clone();
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await?;
    }
    meta.decisions = Some(DECISIONS_LEASED.into());
    let value = serde_json::to_vec(&meta).map_err(|source| EtcdError::Serialize {
        what: "memory marker",
        source,
    })?;
    // Another process may have rewritten the marker meanwhile: then it did this too.
    let txn = Txn::new()
        .when([Compare::mod_revision(
            keys.meta(),
            CompareOp::Equal,
            marker_revision,
        )])
        .and_then([TxnOp::put(keys.meta(), value, None)]);
    config
        .request("mark decisions leased", || {
            let mut kv = kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await?;
    Ok(unleased.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_written_while_its_lease_is_reused_outlives_its_write_by_the_window() {
        let (window, commit) = (Duration::from_secs(600), Duration::from_secs(15));
        let plan = LeasePlan::of(window, commit).expect("a lease");
        assert_eq!(plan.reuse_for, Duration::from_secs(150));
        assert_eq!(plan.ttl_seconds, 765);
        // The latest write under a lease: taken at the end of its reuse, sent a commit timeout on.
        let latest_write = plan.reuse_for + commit;
        assert!(Duration::from_secs(plan.ttl_seconds as u64) >= latest_write + window);
    }

    #[test]
    fn fractions_of_a_second_round_up_and_windows_past_etcds_longest_lease_keep_keys_forever() {
        let plan = LeasePlan::of(Duration::from_millis(1500), Duration::from_millis(100));
        assert_eq!(
            plan.map(|plan| plan.ttl_seconds),
            Some(2),
            "1.975 s rounds up"
        );
        assert_eq!(LeasePlan::of(Duration::MAX, Duration::from_secs(15)), None);
        assert_eq!(
            LeasePlan::of(
                Duration::from_secs(MAX_LEASE_TTL_SECONDS),
                Duration::from_secs(1)
            ),
            None
        );
    }
}
