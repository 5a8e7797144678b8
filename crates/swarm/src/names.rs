//! Stage names to stage indices.
//!
//! An open-addressing table of 8-byte slots (a 32-bit hash tag and the index), so that resolving the
//! dependencies of a 100k-stage pipeline touches a small, dense table and compares names only when
//! the tags match (almost always the right stage). Names themselves live in the stages.

use std::hash::Hasher;

use rustc_hash::FxHasher;

use crate::seed::mix;

pub(crate) struct NameIndex {
    /// `tag << 32 | (index + 1)`; 0 is an empty slot.
    slots: Vec<u64>,
    mask: usize,
    /// Names inserted.
    len: usize,
}

impl Default for NameIndex {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl NameIndex {
    /// A table for `count` names, at most 7/8 full.
    ///
    /// Dense on purpose: with 100k names the table outgrows the caches and every lookup misses on
    /// its slot, so a table half the size (1 MiB instead of 2) is faster even though linear probing
    /// then looks at a few more slots, which sit side by side in the cache lines already loaded
    /// and are rejected by their tag without touching a name.
    pub(crate) fn with_capacity(count: usize) -> Self {
        let capacity = (count.saturating_mul(8) / 7).next_power_of_two().max(8);
        Self {
            slots: vec![0; capacity],
            mask: capacity - 1,
            len: 0,
        }
    }

    /// Doubles the table when one more name would fill it more than 7/8, re-placing every name
    /// (the slots keep only the high half of a hash, so the names are hashed again).
    #[inline]
    fn reserve_one<'a>(&mut self, name_of: impl Fn(u32) -> &'a str) {
        if (self.len + 1) * 8 > self.slots.len() * 7 {
            self.grow(name_of);
        }
    }

    /// Doubles the table (see `reserve_one`): rare, kept out of the insert path.
    #[cold]
    #[inline(never)]
    fn grow<'a>(&mut self, name_of: impl Fn(u32) -> &'a str) {
        let capacity = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, vec![0; capacity]);
        self.mask = capacity - 1;
        for slot in old.into_iter().filter(|&slot| slot != 0) {
            let hash = Self::hash(name_of((slot as u32).wrapping_sub(1)));
            let mut position = hash as usize & self.mask;
            while self.slots[position] != 0 {
                position = (position + 1) & self.mask;
            }
            self.slots[position] = slot;
        }
    }

    fn hash(name: &str) -> u64 {
        let mut hasher = FxHasher::default();
        hasher.write(name.as_bytes());
        mix(hasher.finish())
    }

    /// Adds `name` as stage `index` (growing the table if needed); if the name is already present,
    /// returns the index holding it. `name_of` gives the names of the indices already inserted.
    // Inlined into the builder's `push`, its only caller: out of line it cost the 100k-stage
    // build 2.6M instructions (1.6%) when the crate's codegen units were split another way.
    #[inline]
    pub(crate) fn insert<'a>(
        &mut self,
        name: &str,
        index: u32,
        name_of: impl Fn(u32) -> &'a str + Copy,
    ) -> Result<(), u32> {
        self.reserve_one(name_of);
        let hash = Self::hash(name);
        let tag = hash >> 32;
        let mut position = hash as usize & self.mask;
        loop {
            let slot = self.slots[position];
            if slot == 0 {
                self.slots[position] = tag << 32 | (u64::from(index) + 1);
                self.len += 1;
                return Ok(());
            }
            let existing = (slot as u32).wrapping_sub(1);
            if slot >> 32 == tag && name_of(existing) == name {
                return Err(existing);
            }
            position = (position + 1) & self.mask;
        }
    }

    /// The index of the stage called `name`.
    // Inlined into `StageBuilder::after`, its hot caller: a call per lookup cost 9M instructions
    // (about 28 per lookup) on the 100k-stage build when codegen stopped inlining it on its own.
    #[inline]
    pub(crate) fn get<'a>(&self, name: &str, name_of: impl Fn(u32) -> &'a str) -> Option<u32> {
        let hash = Self::hash(name);
        let tag = hash >> 32;
        let mut position = hash as usize & self.mask;
        loop {
            let slot = self.slots[position];
            if slot == 0 {
                return None;
            }
            let index = (slot as u32).wrapping_sub(1);
            if slot >> 32 == tag && name_of(index) == name {
                return Some(index);
            }
            position = (position + 1) & self.mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_finds_and_rejects_duplicates() {
        let names: Vec<String> = (0..5_000).map(|index| format!("stage-{index}")).collect();
        let name_of = |index: u32| names[index as usize].as_str();
        let mut table = NameIndex::with_capacity(names.len());
        for (index, name) in names.iter().enumerate() {
            assert_eq!(table.insert(name, index as u32, name_of), Ok(()));
        }
        for (index, name) in names.iter().enumerate() {
            assert_eq!(table.get(name, name_of), Some(index as u32));
            assert_eq!(table.insert(name, 0, name_of), Err(index as u32));
        }
        assert_eq!(table.get("stage-5000", name_of), None);
        assert_eq!(table.get("", name_of), None);
    }

    #[test]
    fn a_tiny_table_still_works() {
        let names = ["only"];
        let mut table = NameIndex::with_capacity(1);
        assert_eq!(
            table.insert("only", 0, |index| names[index as usize]),
            Ok(())
        );
        assert_eq!(table.get("only", |index| names[index as usize]), Some(0));
        assert_eq!(table.get("other", |index| names[index as usize]), None);
    }

    #[test]
    fn grows_from_a_tiny_table_without_losing_names() {
        let names: Vec<String> = (0..5_000).map(|index| format!("grown-{index}")).collect();
        let name_of = |index: u32| names[index as usize].as_str();
        let mut table = NameIndex::default();
        for (index, name) in names.iter().enumerate() {
            assert_eq!(table.insert(name, index as u32, name_of), Ok(()));
            assert!(table.len * 8 <= table.slots.len() * 7, "at most 7/8 full");
        }
        for (index, name) in names.iter().enumerate() {
            assert_eq!(table.get(name, name_of), Some(index as u32));
            assert_eq!(table.insert(name, 0, name_of), Err(index as u32));
        }
        assert_eq!(table.len, names.len());
        assert_eq!(table.get("grown-5000", name_of), None);
    }
}
