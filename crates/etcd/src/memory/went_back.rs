//! Knowing when the memory went back under this process: its head deleted or created again (the
//! prefix wiped), or etcd holding an older version or another chain of versions (restored from an
//! older backup). From then on nothing is installed and commits fail with
//! [`EtcdError::WentBack`].

#[allow(clippy::wildcard_imports)]
use super::*;

impl<S, L> Shared<S, L>
where
    S: State,
    S::Change: Serialize + DeserializeOwned,
    L: Layout<S>,
{
    /// The error of a memory that went back under this process.
    pub(super) fn went_back_error(&self, local: u64, stored: Option<u64>) -> EtcdError {
        EtcdError::WentBack {
            prefix: self.keys.prefix.clone(),
            local,
            stored,
        }
    }

    /// Records that the memory went back under this process (its head deleted, or created again
    /// at another revision, holding version `stored`): from now on nothing is installed and
    /// commits fail with [`EtcdError::WentBack`].
    pub(super) fn mark_went_back(&self, stored: Option<u64>) -> EtcdError {
        let local = self.cell.version();
        let mut position = self.position.lock();
        if position.went_back.is_none() {
            tracing::error!(
                prefix = %self.keys.prefix,
                local,
                ?stored,
                "the memory went back under this process (deleted, recreated or restored from an older backup); reopen it"
            );
            position.went_back = Some(stored);
        }
        drop(position);
        self.changed.notify_waiters();
        self.went_back_error(local, stored)
    }

    /// [`EtcdError::WentBack`] once the memory went back under this process.
    pub(super) fn check_not_gone_back(&self) -> Result<(), EtcdError> {
        match self.position.lock().went_back {
            Some(stored) => Err(self.went_back_error(self.cell.version(), stored)),
            None => Ok(()),
        }
    }

    /// Whether a `head` key read or watched belongs to the memory this process opened; marks the
    /// memory gone back when not.
    pub(super) fn check_head(&self, pair: &KeyValue, version: u64) -> Result<(), EtcdError> {
        if pair.create_revision() == self.position.lock().head_created {
            return Ok(());
        }
        Err(self.mark_went_back(Some(version)))
    }

    /// Checks that a version etcd holds, read after the local version `base` was installed,
    /// belongs to the chain of versions this process holds: `version`, created by `decision`,
    /// following the version created by `previous` (when known). One older than `base`, or at `base`
    /// or `base + 1` but of another chain, means that etcd went back under this process (restored
    /// from an older backup: the head created at the same revision, its versions committed again by
    /// other decisions), and marks it so. Nothing is checked once the local version moved past
    /// `base` (what moved it read a newer version).
    pub(super) fn check_chain(
        &self,
        base: u64,
        version: u64,
        decision: &str,
        previous: Option<&str>,
    ) -> Result<(), EtcdError> {
        let position = self.position.lock();
        if self.cell.version() != base {
            return Ok(());
        }
        let ours = if version < base {
            false
        } else if version == base {
            decision == position.decision
        } else if version == base + 1 {
            previous.is_none_or(|previous| previous == position.decision)
        } else {
            true
        };
        drop(position);
        if ours {
            Ok(())
        } else {
            Err(self.mark_went_back(Some(version)))
        }
    }

    /// [`check_chain`](Self::check_chain) for a head put the follower watched: one after every
    /// revision seen is newer than the local version in a healthy etcd.
    pub(super) fn check_watched_head(
        &self,
        pair: &KeyValue,
        head: &HeadWithEntry<S::Change>,
    ) -> Result<(), EtcdError> {
        let base = {
            let position = self.position.lock();
            if pair.mod_revision() <= position.seen_through {
                return Ok(());
            }
            self.cell.version()
        };
        self.check_chain(base, head.version, &head.decision, head.previous.as_deref())
    }
}
