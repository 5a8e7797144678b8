//! The hive's members as rounds read them: a list sorted by id, built once per change of the
//! membership instead of once per round.
//!
//! The agents live in a `DashMap` (cheap concurrent spawns, removals and lookups), which hands its
//! entries back in hash order. A round wants them lowest id first (reproducible rounds), and
//! walking and sorting 1,000 members cost about a fifth of a 1,000-agent round. The roster keeps
//! the sorted list with the generation it was built at; a spawn, a removal or a weight change
//! bumps the generation (one atomic add: spawning stays cheap), and the next round that finds the
//! list older than the generation rebuilds it.
//!
//! The list also keeps what a finished round hands to the next one over the same members (its
//! member array, its answers' vector and its voters' electorate, see [`RoundSpare`]): dropped with
//! the list, so a removed agent is not kept alive by it either. It keeps one per round running at
//! once (up to [`MAX_SPARES`]): with a single one, of four rounds at once only one found it, and
//! the other three each cloned every member's handle and interest (atomic adds on reference counts
//! the other rounds' threads share), allocated a member array and made their electorates again,
//! then dropped all of it when they ended and found the place taken.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;
use rustc_hash::FxBuildHasher;

use crate::agent::{AgentId, DynAgent};
use crate::hive::{Interested, Member};
use crate::round::RoundSpare;
use crate::state::State;

/// A member as every round reads it (what is fixed between changes of the membership).
pub(crate) struct Listed<S: State> {
    pub(crate) id: AgentId,
    pub(crate) agent: Arc<dyn DynAgent<S>>,
    pub(crate) weight: f64,
    pub(crate) heavy: bool,
    pub(crate) votes: bool,
    pub(crate) interest: Interested<S::Key>,
    pub(crate) batch: bool,
}

/// The most [`RoundSpare`]s a roster list keeps: one per round running at once, up to this many
/// (each holds a member array as long as the list).
const MAX_SPARES: usize = 8;

/// A sorted member list and the generation it was built at.
struct Built<S: State> {
    generation: u64,
    list: Arc<[Listed<S>]>,
    /// Left by the last rounds over `list` for the next ones, at most [`MAX_SPARES`] (its
    /// capacity is allocated once, when the list is built).
    spares: Vec<RoundSpare<S>>,
}

/// The sorted member list, rebuilt by the first round after a change.
pub(crate) struct Roster<S: State> {
    /// Bumped after every change to the membership or to a member's weight.
    generation: AtomicU64,
    cached: Mutex<Option<Built<S>>>,
}

impl<S: State> Roster<S> {
    pub(crate) fn new() -> Self {
        Self {
            generation: AtomicU64::new(0),
            cached: Mutex::new(None),
        }
    }

    /// Records a change made to `agents` (call it after the change).
    ///
    /// Release pairs with the acquire load in [`Roster::current`]: a round that sees the new
    /// generation walks a map that holds the change.
    pub(crate) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Records a removal: as [`Roster::changed`], and drops the cached list at once, so that a
    /// removed agent is not kept alive until the next round.
    pub(crate) fn removed(&self) {
        self.changed();
        let dropped = self.cached.lock().take();
        drop(dropped);
    }

    /// The members of `agents`, lowest id first: the cached list if no change was recorded since
    /// it was built, else a new one.
    ///
    /// A change recorded before this call is always in the list. One made while the list is being
    /// rebuilt may or may not be, and leaves the list older than the generation, so the next call
    /// rebuilds it.
    ///
    /// With the cached list comes what a round over it left for the next one, if any (taken: two
    /// rounds at once never share one).
    pub(crate) fn current(
        &self,
        agents: &DashMap<AgentId, Member<S>, FxBuildHasher>,
    ) -> (Arc<[Listed<S>]>, Option<RoundSpare<S>>) {
        let mut cached = self.cached.lock();
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(built) = cached.as_mut() {
            if built.generation == generation {
                return (Arc::clone(&built.list), built.spares.pop());
            }
        }
        let mut list: Vec<Listed<S>> = agents
            .iter()
            .map(|entry| {
                let member = entry.value();
                Listed {
                    id: *entry.key(),
                    agent: Arc::clone(&member.agent),
                    weight: member.weight,
                    heavy: member.heavy,
                    votes: member.votes,
                    interest: member.interest.clone(),
                    batch: member.batch,
                }
            })
            .collect();
        list.sort_unstable_by_key(|member| member.id);
        let list: Arc<[Listed<S>]> = list.into();
        // The old list is dropped after the lock is released.
        let old = cached.replace(Built {
            generation,
            list: Arc::clone(&list),
            spares: Vec::with_capacity(MAX_SPARES),
        });
        drop(cached);
        drop(old);
        (list, None)
    }

    /// Keeps `spare`, left by a round over `list`, for a next round, if `list` is still the
    /// current one and fewer than [`MAX_SPARES`] are kept; else drops it (after releasing the
    /// lock).
    pub(crate) fn keep(&self, list: &Arc<[Listed<S>]>, spare: RoundSpare<S>) {
        let mut cached = self.cached.lock();
        let rejected = match cached.as_mut() {
            Some(built) if Arc::ptr_eq(&built.list, list) && built.spares.len() < MAX_SPARES => {
                built.spares.push(spare);
                None
            }
            _ => Some(spare),
        };
        drop(cached);
        drop(rejected);
    }
}
