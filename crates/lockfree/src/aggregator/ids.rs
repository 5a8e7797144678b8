//! Id blocks: runs of 64 consecutive proposal ids. A block picks the shard that stores its ids
//! ([`block_of`]) and is the unit of [`BlockIds`], the set a shard checks duplicates against once
//! its ids stop arriving in increasing order.

use rustc_hash::FxHashMap;

use crate::proposal::ProposalId;

/// Ids per block: `2^BLOCK_BITS`, the bits of one `u64` bitmap.
const BLOCK_BITS: u32 = 6;

/// No block has this number (ids shifted right by [`BLOCK_BITS`] stay below it).
const NO_BLOCK: u64 = u64::MAX;

/// The block holding `id`.
///
/// Shards are chosen by block, not by single id: a thread that submits its own range of ids (a
/// counter per thread) stays on one shard for 64 submissions, so two such threads rarely write
/// the same shard's lock, fields and entries. Hashing single ids sent every thread across every
/// shard, and half of the shard lines a submit touched had last been written by the other core.
/// A small round (fewer than 64 increasing ids) also fills one shard: one or two chunk
/// allocations instead of one per shard (`aggregation_round/hivekit-round/n_10`: 13,631 to
/// 12,398 instructions). Threads whose ids interleave (drawn from one shared counter) submit
/// into the same shard at the same time instead (the
/// `proposal_submission/hivekit-interleaved-ids` rows); with [`BlockIds`] they still cost less
/// than hashed shards with a set of ids did.
#[inline]
pub(super) fn block_of(id: ProposalId) -> u64 {
    id.0 >> BLOCK_BITS
}

/// The bit of `id` in its block's bitmap.
#[inline]
fn bit_of(id: ProposalId) -> u64 {
    1 << (id.0 & ((1 << BLOCK_BITS) - 1))
}

/// A set of ids as one bitmap per block, the position of the block last inserted into kept.
///
/// Ids of one block arrive together (a thread submitting increasing ids fills a block before it
/// moves on, and every thread whose ids fall in a block uses the same shard), so most inserts
/// test and set a bit of the kept block's bitmap: a comparison and two bit operations, no
/// hashing. Only a move to another block looks the block up, once per 64 ids for a thread filling
/// its own blocks. (Ids scattered over the whole range would each take a lookup and a bitmap:
/// a shard that finds its ids so sparse keeps a set of single ids instead, see `Seen`.)
/// A hash set of single ids, which this replaces, hashed and probed on every insert and grew
/// (rehashing every id) as the shard filled; two threads submitting increasing ids of their own
/// put every shard they shared on that path, since one's ids are below the other's. With 2
/// threads of 200k submits each, the set's inserts and rehashes were 14 % of the run (perf,
/// cpu-clock); a submit took about 80 ns of CPU with hashed shards and the set, about 45 ns with
/// shards by block and these bitmaps.
///
/// Bitmaps live in a vector the map points into, not in the map, so that a move to another block
/// is one lookup (keeping the last block's bitmap apart and writing it back took two).
#[derive(Debug)]
pub(super) struct BlockIds {
    /// Per block holding an id, the position of its bitmap in `bitmaps`.
    positions: FxHashMap<u64, usize>,
    /// Bit `id % 64` of its block's bitmap is set when the id is held.
    bitmaps: Vec<u64>,
    /// The block last inserted into, or [`NO_BLOCK`].
    hot_block: u64,
    /// The position of `hot_block`'s bitmap.
    hot: usize,
}

impl Default for BlockIds {
    fn default() -> Self {
        BlockIds {
            positions: FxHashMap::default(),
            bitmaps: Vec::new(),
            hot_block: NO_BLOCK,
            hot: 0,
        }
    }
}

impl BlockIds {
    /// The number of blocks holding an id (or that did).
    pub(super) fn blocks(&self) -> usize {
        self.bitmaps.len()
    }

    /// Makes room for the blocks of `ids` more ids, if they are dense.
    pub(super) fn reserve(&mut self, ids: usize) {
        let blocks = ids.div_ceil(1 << BLOCK_BITS);
        self.positions.reserve(blocks);
        self.bitmaps.reserve(blocks);
    }

    /// Records `id`; false if it was already held.
    #[inline]
    pub(super) fn insert(&mut self, id: ProposalId) -> bool {
        let block = block_of(id);
        if block != self.hot_block {
            self.switch_to(block);
        }
        let bits = &mut self.bitmaps[self.hot];
        let bit = bit_of(id);
        let new = *bits & bit == 0;
        *bits |= bit;
        new
    }

    /// Takes `id` out (it may be absent).
    pub(super) fn remove(&mut self, id: ProposalId) {
        let block = block_of(id);
        let position = if block == self.hot_block {
            Some(self.hot)
        } else {
            self.positions.get(&block).copied()
        };
        if let Some(position) = position {
            self.bitmaps[position] &= !bit_of(id);
        }
    }

    /// Keeps `block`'s bitmap position, adding an empty bitmap for a new block. Out of line: the
    /// common insert is the bit test, and this runs once per block.
    #[inline(never)]
    fn switch_to(&mut self, block: u64) {
        let next = self.bitmaps.len();
        let position = *self.positions.entry(block).or_insert(next);
        if position == next {
            self.bitmaps.push(0);
        }
        self.hot = position;
        self.hot_block = block;
    }
}

impl Extend<ProposalId> for BlockIds {
    fn extend<I: IntoIterator<Item = ProposalId>>(&mut self, ids: I) {
        for id in ids {
            self.insert(id);
        }
    }
}
