//! [`SnapshotCell::store_at`]: a write that skips versions, for a cell that mirrors versions
//! numbered elsewhere.

use super::{epoch, published, unpublished_value, Arc, Ordering, SnapshotCell, Versioned};

impl<T: Send + Sync + 'static> SnapshotCell<T> {
    /// Installs `value` as `version`, skipping the versions in between, unless the cell is already
    /// at `version` or newer; then the value comes back.
    ///
    /// For a cell that mirrors versions numbered elsewhere and missed some of them: a process that
    /// follows a memory shared with other processes and reloads its whole state when the changes
    /// in between are no longer stored. Versions still only grow, so a reader never sees an older
    /// version after a newer one.
    ///
    /// # Errors
    ///
    /// Gives `value` back when the current version is `version` or newer.
    ///
    /// # Progress
    ///
    /// Lock-free, like [`store`](Self::store): it retries only when another write lands first.
    ///
    /// # Examples
    ///
    /// ```
    /// let cell = hivekit_lockfree::SnapshotCell::with_version("opened", 3);
    /// assert_eq!(cell.store_at(10, "reloaded"), Ok(()));
    /// assert_eq!(cell.read(|value, version| (*value, version)), ("reloaded", 10));
    /// assert_eq!(cell.store_at(10, "late"), Err("late"), "not newer than the current version");
    /// assert_eq!(cell.store("next"), 11);
    /// ```
    pub fn store_at(&self, version: u64, value: T) -> Result<(), T> {
        let guard = epoch::pin();
        let mut current = self.current.load(Ordering::Acquire);
        let mut next = Arc::new(Versioned::new(version, value));
        loop {
            // SAFETY: `current` was loaded while `guard` is pinned (see `read`).
            if unsafe { published(current) }.version >= version {
                return Err(unpublished_value(next));
            }
            match self.publish(current, next, &guard) {
                Ok(()) => return Ok(()),
                Err((actual, unpublished)) => {
                    current = actual;
                    next = unpublished;
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::SnapshotCell;

    #[test]
    fn store_at_skips_versions_and_refuses_one_that_is_not_newer() {
        let cell = SnapshotCell::new(0_u64);
        let before = cell.load();
        assert_eq!(cell.store_at(5, 50), Ok(()));
        assert_eq!(cell.store_at(4, 40), Err(40));
        assert_eq!(cell.store_at(5, 51), Err(51));
        assert_eq!((*before, before.version()), (0, 0), "older snapshots stay");
        assert_eq!(cell.read(|value, version| (*value, version)), (50, 5));
        let snapshot = cell.load();
        assert_eq!(cell.commit(snapshot.stage(60)), Ok(6));
    }
}
