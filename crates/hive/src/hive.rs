//! The hive: its agents, configuration, collective memory and counters.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use hivekit_lockfree::ResourceCost;
use hivekit_runtime::{ConcurrencyLimit, ConcurrencyLimitError, IntoConcurrencyLimit};
use rustc_hash::FxBuildHasher;

use crate::agent::{Agent, AgentId, DynAgent, Held, Interest, Role};
use crate::ballot::valid_weight;
use crate::decision::ResolutionStrategy;
use crate::error::HiveError;
use crate::events::HiveEventSink;
use crate::hive_memory::HiveMemory;
use crate::memory::{LocalMemory, Memory};
use crate::policy::ConsensusPolicy;
use crate::roster::Roster;
use crate::state::State;
use crate::supervision::{Health, RestartHook, Supervised, Supervision};

/// The default per-call agent timeout.
pub const DEFAULT_AGENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A registered agent: the agent itself and what the hive read about it when it joined.
pub(crate) struct Member<S: State> {
    pub(crate) agent: Arc<dyn DynAgent<S>>,
    pub(crate) weight: f64,
    pub(crate) role: Role,
    pub(crate) heavy: bool,
    pub(crate) votes: bool,
    /// Its supervision record.
    pub(crate) health: Health,
    /// The contests it votes in.
    pub(crate) interest: Interested<S::Key>,
    /// True when it votes on all its contests in one call.
    pub(crate) batch: bool,
}

/// An agent's [`Interest`], as rounds read it (cheap to clone).
pub(crate) enum Interested<K> {
    All,
    Keys(Arc<[K]>),
    Matching,
}

impl<K> Clone for Interested<K> {
    fn clone(&self) -> Self {
        match self {
            Self::All => Self::All,
            Self::Keys(keys) => Self::Keys(Arc::clone(keys)),
            Self::Matching => Self::Matching,
        }
    }
}

impl<K> From<Interest<K>> for Interested<K> {
    fn from(interest: Interest<K>) -> Self {
        match interest {
            Interest::All => Self::All,
            Interest::Keys(keys) => Self::Keys(keys.into()),
            Interest::Matching => Self::Matching,
        }
    }
}

/// Configuration fixed when the hive is built.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) name: Arc<str>,
    pub(crate) policy: ConsensusPolicy,
    pub(crate) resolution: ResolutionStrategy,
    pub(crate) agent_timeout: Duration,
    /// The calls allowed in flight ([`ConcurrencyLimit::slots`]: `usize::MAX` when unbounded).
    pub(crate) max_in_flight: usize,
    pub(crate) voting_roles: Option<Vec<Role>>,
    pub(crate) supervision: Option<Supervision>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) rounds: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) rebases: AtomicU64,
    pub(crate) proposals: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) conflicts: AtomicU64,
    pub(crate) votes: AtomicU64,
    pub(crate) cancelled_votes: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) quarantines: AtomicU64,
    pub(crate) removals: AtomicU64,
}

/// Counters over the hive's life, read with [`Hive::stats`].
///
/// A round's proposals, conflicts and votes are counted when it ends with a decision (committed,
/// or with nothing to commit); a round that is cancelled, dropped or fails to commit adds none of
/// them. Its agent failures are counted as they are reported, so a round stopped after a phase
/// ended still counts that phase's failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HiveStats {
    /// Rounds started.
    pub rounds: u64,
    /// Rounds that committed a new memory version.
    pub commits: u64,
    /// Commits that were rebased on a newer version (another round committed first).
    pub rebases: u64,
    /// Proposals received.
    pub proposals: u64,
    /// Proposals accepted.
    pub accepted: u64,
    /// Proposals rejected.
    pub rejected: u64,
    /// Conflict groups found.
    pub conflicts: u64,
    /// Votes counted.
    pub votes: u64,
    /// Votes no longer waited for because their ballot had settled.
    pub cancelled_votes: u64,
    /// Agent calls that timed out.
    pub timeouts: u64,
    /// Agent calls that panicked.
    pub panics: u64,
    /// Agent calls that returned an error.
    pub errors: u64,
    /// Invalid answers (duplicate proposal ids, votes for non-candidates).
    pub invalid: u64,
    /// Agents quarantined by supervision ([`HiveBuilder::supervision`]).
    #[cfg_attr(feature = "serde", serde(default))]
    pub quarantines: u64,
    /// Agents removed by supervision.
    #[cfg_attr(feature = "serde", serde(default))]
    pub removals: u64,
}

pub(crate) struct Inner<S: State> {
    pub(crate) memory: HiveMemory<S>,
    pub(crate) agents: DashMap<AgentId, Member<S>, FxBuildHasher>,
    /// The members sorted by id, as rounds read them (rebuilt after changes to `agents`).
    pub(crate) roster: Roster<S>,
    pub(crate) next_agent: AtomicU64,
    /// The next hive-assigned proposal id (without its marker bit).
    pub(crate) next_proposal: AtomicU64,
    pub(crate) config: Config,
    pub(crate) counters: Counters,
    pub(crate) events: Option<HiveEventSink<S::Key>>,
    pub(crate) restart: Option<RestartHook<S>>,
}

impl<S: State> Inner<S> {
    /// Removes a member; true if it was one.
    pub(crate) fn remove_member(&self, id: AgentId) -> bool {
        let removed = self.agents.remove(&id).is_some();
        if removed {
            self.roster.removed();
        }
        removed
    }
}

/// A queen and its agents reaching decisions on shared state.
///
/// Cloning a hive is cheap and shares it (agents, memory, counters). Every method takes `&self`:
/// agents may join and leave while rounds run; a round asks the agents that were members when it
/// started.
///
/// # Examples
///
/// ```
/// use hivekit_hive::{Agent, AgentContext, AgentError, ConsensusPolicy, Hive, Proposal, ProposalId, Snapshot, State};
///
/// #[derive(Clone, Default, Debug)]
/// struct Settings { level: u8 }
///
/// impl State for Settings {
///     type Key = &'static str;
///     type Change = u8;
///     fn apply(&mut self, level: &u8) { self.level = *level; }
/// }
///
/// /// Proposes its own level for the same key: every proposal conflicts, so the hive votes.
/// struct Proposer { id: u64, level: u8 }
///
/// impl Agent<Settings> for Proposer {
///     async fn propose(&self, _ctx: &AgentContext, _: &Snapshot<Settings>)
///         -> Result<Option<Proposal<&'static str, u8>>, AgentError>
///     {
///         Ok(Some(Proposal::new(ProposalId(self.id), self.level).writes(["level"])))
///     }
/// }
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let hive = Hive::builder(Settings::default())
///     .policy(ConsensusPolicy::majority())
///     .build()?;
/// hive.spawn(Proposer { id: 1, level: 3 });
/// hive.spawn(Proposer { id: 2, level: 7 });
/// let decision = hive.decide().await?;
/// // The default vote backs the preferred candidate (equal priority: the lower id).
/// assert_eq!(decision.accepted, vec![ProposalId(1)]);
/// assert_eq!(hive.memory().load().level, 3);
/// assert_eq!(decision.ballots.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Hive<S: State> {
    pub(crate) inner: Arc<Inner<S>>,
}

impl<S: State> Clone for Hive<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// A handle on a hive that does not keep it alive: made by [`Hive::downgrade`]. An agent that
/// needs its hive (to spawn a helper, or to read the memory) holds one of these: an agent holding
/// a [`Hive`] keeps its own hive, and so itself, alive after every other handle is dropped.
///
/// # Examples
///
/// ```
/// use hivekit_hive::Hive;
/// # #[derive(Clone, Default)]
/// # struct Counter(u64);
/// # impl hivekit_hive::State for Counter {
/// #     type Key = ();
/// #     type Change = u64;
/// #     fn apply(&mut self, change: &u64) { self.0 += change; }
/// # }
///
/// let hive = Hive::new(Counter::default());
/// let weak = hive.downgrade();
/// assert!(weak.upgrade().is_some());
/// drop(hive);
/// assert!(weak.upgrade().is_none(), "the weak handle did not keep the hive");
/// ```
pub struct WeakHive<S: State> {
    inner: std::sync::Weak<Inner<S>>,
}

impl<S: State> WeakHive<S> {
    /// The hive, if any [`Hive`] handle on it is still alive.
    pub fn upgrade(&self) -> Option<Hive<S>> {
        self.inner.upgrade().map(|inner| Hive { inner })
    }
}

impl<S: State> Clone for WeakHive<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S: State> fmt::Debug for WeakHive<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakHive")
            .field("alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl<S: State> fmt::Debug for Hive<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hive")
            .field("agents", &self.len())
            .field("memory", &self.inner.memory)
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Hive`]; start with [`Hive::builder`] (in-process memory) or
/// [`Hive::builder_with_memory`] (any [`Memory`] backend).
pub struct HiveBuilder<S: State> {
    memory: HiveMemory<S>,
    config: Config,
    events: Option<HiveEventSink<S::Key>>,
    restart: Option<RestartHook<S>>,
    /// A `max_in_flight` that is no limit (zero or negative), returned by `build`.
    bad_limit: Option<ConcurrencyLimitError>,
}

impl<S: State> fmt::Debug for HiveBuilder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HiveBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: State> HiveBuilder<S> {
    /// The hive's name, in its tracing spans (default: `hive`).
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.config.name = name.into();
        self
    }

    /// How many committed versions [`HiveMemory::at`](crate::HiveMemory::at) can read back, each
    /// with the decision that produced it (default:
    /// [`DEFAULT_HISTORY`](crate::DEFAULT_HISTORY), none: each kept version costs a copy of its
    /// decision; 0 costs nothing).
    pub fn history(mut self, depth: usize) -> Self {
        self.memory.set_depth(depth);
        self
    }

    /// Where the hive's rounds send their [`HiveEvent`](crate::HiveEvent)s (default: nowhere, and
    /// no event is built).
    pub fn events(mut self, sink: HiveEventSink<S::Key>) -> Self {
        self.events = Some(sink);
        self
    }

    /// The consensus policy of ballots (default: [`ConsensusPolicy::default`]).
    pub fn policy(mut self, policy: ConsensusPolicy) -> Self {
        self.config.policy = policy;
        self
    }

    /// How conflict groups are settled (default: [`ResolutionStrategy::Vote`]).
    pub fn resolution(mut self, resolution: ResolutionStrategy) -> Self {
        self.config.resolution = resolution;
        self
    }

    /// How long one agent call (`propose` or `vote`) may take before it counts as timed out
    /// (default: [`DEFAULT_AGENT_TIMEOUT`]). Zero is [`HiveError::ZeroTimeout`] when built;
    /// `Duration::MAX` (or any limit tokio's timer cannot represent) waits as long as the agent
    /// takes.
    pub fn agent_timeout(mut self, timeout: Duration) -> Self {
        self.config.agent_timeout = timeout;
        self
    }

    /// At most this many agent calls run at once in a round (default:
    /// [`ConcurrencyLimit::Unbounded`]): a number such as `.max_in_flight(8)`, a
    /// [`ConcurrencyLimit`], a `NonZeroUsize` or an `Option<NonZeroUsize>` (see
    /// [`IntoConcurrencyLimit`]). Zero or a negative number is [`HiveError::MaxInFlight`] when
    /// built.
    ///
    /// A call the round stops (its deadline passed, or its ballot settled without it) is over
    /// before another starts in its slot: a light agent's call is dropped there and then. A heavy
    /// agent's call runs as a task of its own, which is aborted and stops at its next await: until
    /// the runtime has run the abort (or, for a call that computes without awaiting, until it
    /// awaits) it may run beside the call started in its slot. The round never waits for it.
    pub fn max_in_flight(mut self, limit: impl IntoConcurrencyLimit) -> Self {
        match limit.into_concurrency_limit() {
            Ok(limit) => {
                self.config.max_in_flight = limit.slots();
                self.bad_limit = None;
            }
            Err(error) => self.bad_limit = Some(error),
        }
        self
    }

    /// Only agents with one of these roles vote (default: every agent votes). Applies to agents
    /// spawned after the hive is built, that is, to all of them.
    pub fn voting_roles(mut self, roles: impl IntoIterator<Item = Role>) -> Self {
        self.config.voting_roles = Some(roles.into_iter().collect());
        self
    }

    /// What to do with agents that keep failing (default: nothing, they are asked every round).
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_hive::{Hive, Supervision};
    /// # #[derive(Clone, Default)]
    /// # struct Counter(u64);
    /// # impl hivekit_hive::State for Counter {
    /// #     type Key = ();
    /// #     type Change = u64;
    /// #     fn apply(&mut self, change: &u64) { self.0 += change; }
    /// # }
    ///
    /// // Three failed rounds in a row: sit out the next two.
    /// let hive = Hive::builder(Counter::default())
    ///     .supervision(Supervision::quarantine(3, 2))
    ///     .on_restart(|_hive, record| eprintln!("{record}"))
    ///     .build()?;
    /// assert_eq!(hive.supervision(), Some(Supervision::quarantine(3, 2)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn supervision(mut self, policy: Supervision) -> Self {
        self.config.supervision = Some(policy);
        self
    }

    /// Called after supervision quarantined or removed an agent (see [`RestartHook`]): reset what
    /// the agent depends on, or spawn a fresh agent in place of a removed one.
    pub fn on_restart(
        mut self,
        hook: impl Fn(&Hive<S>, &Supervised) + Send + Sync + 'static,
    ) -> Self {
        self.restart = Some(Arc::new(hook));
        self
    }

    /// Builds the hive on its memory (for [`Hive::builder`], at version 0 holding the initial state).
    ///
    /// # Errors
    ///
    /// [`HiveError::Policy`] for an invalid policy, [`HiveError::ZeroTimeout`],
    /// [`HiveError::MaxInFlight`] for a `max_in_flight` of zero or below.
    pub fn build(self) -> Result<Hive<S>, HiveError> {
        self.config.policy.validate()?;
        if self.config.agent_timeout.is_zero() {
            return Err(HiveError::ZeroTimeout);
        }
        if let Some(error) = self.bad_limit {
            return Err(HiveError::MaxInFlight(error));
        }
        Ok(Hive {
            inner: Arc::new(Inner {
                memory: self.memory,
                agents: DashMap::with_hasher(FxBuildHasher),
                roster: Roster::new(),
                next_agent: AtomicU64::new(0),
                next_proposal: AtomicU64::new(0),
                config: self.config,
                counters: Counters::default(),
                events: self.events,
                restart: self.restart,
            }),
        })
    }
}

impl<S: State> Hive<S> {
    /// A builder for a hive whose memory, in this process, starts at `initial` (version 0).
    pub fn builder(initial: S) -> HiveBuilder<S> {
        Self::builder_with_memory(LocalMemory::new(initial))
    }

    /// A builder for a hive whose rounds read from and commit to `memory`: another process's
    /// memory (`hivekit-etcd`), or a [`LocalMemory`] shared with other code.
    ///
    /// # Examples
    ///
    /// ```
    /// use hivekit_hive::{Hive, LocalMemory, State};
    ///
    /// #[derive(Clone, Default)]
    /// struct Counter(u64);
    /// impl State for Counter {
    ///     type Key = ();
    ///     type Change = u64;
    ///     fn apply(&mut self, change: &u64) { self.0 += change; }
    /// }
    ///
    /// let hive = Hive::builder_with_memory(LocalMemory::new(Counter(3))).build()?;
    /// assert_eq!(hive.memory().load().0, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder_with_memory(memory: impl Memory<S>) -> HiveBuilder<S> {
        HiveBuilder {
            memory: HiveMemory::new(memory),
            events: None,
            restart: None,
            bad_limit: None,
            config: Config {
                name: Arc::from("hive"),
                policy: ConsensusPolicy::default(),
                resolution: ResolutionStrategy::default(),
                agent_timeout: DEFAULT_AGENT_TIMEOUT,
                max_in_flight: ConcurrencyLimit::Unbounded.slots(),
                voting_roles: None,
                supervision: None,
            },
        }
    }

    /// A hive with the default configuration.
    pub fn new(initial: S) -> Self {
        Self::builder(initial)
            .build()
            .unwrap_or_else(|_| unreachable!("the default configuration is valid"))
    }

    /// A handle that does not keep the hive alive (see [`WeakHive`]): what an agent that calls its
    /// own hive should hold.
    pub fn downgrade(&self) -> WeakHive<S> {
        WeakHive {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Adds an agent with weight 1. Cheap: no task is started until a round needs the agent.
    ///
    /// # Panics
    ///
    /// When the agent's own [`role`](Agent::role), [`cost`](Agent::cost),
    /// [`interest`](Agent::interest) or [`batch_votes`](Agent::batch_votes), read here, panics:
    /// the panic reaches the caller, nothing is registered and the hive is unaffected. The same
    /// holds for [`spawn_weighted`](Self::spawn_weighted) and [`spawn_many`](Self::spawn_many),
    /// which keeps the agents it made before.
    pub fn spawn(&self, agent: impl Agent<S>) -> AgentId {
        self.insert(agent, 1.0)
    }

    /// Adds an agent whose vote weighs `weight` (under a weighted policy). Weights count by their
    /// ratio to one another, from 0 (a voter who counts for nothing) up to `f64::MAX`, however
    /// many agents weigh that much (see [`Electorate`](crate::Electorate)).
    ///
    /// # Errors
    ///
    /// [`HiveError::InvalidWeight`] for a NaN, infinite or negative weight; the agent is dropped.
    pub fn spawn_weighted(&self, agent: impl Agent<S>, weight: f64) -> Result<AgentId, HiveError> {
        if !valid_weight(weight) {
            return Err(HiveError::InvalidWeight { weight });
        }
        Ok(self.insert(agent, weight))
    }

    /// Adds `count` agents made by `make(index)`, each with weight 1, and returns their ids in order.
    pub fn spawn_many<A: Agent<S>>(
        &self,
        count: usize,
        mut make: impl FnMut(usize) -> A,
    ) -> Vec<AgentId> {
        (0..count)
            .map(|index| self.insert(make(index), 1.0))
            .collect()
    }

    fn insert<A: Agent<S>>(&self, agent: A, weight: f64) -> AgentId {
        let role = agent.role();
        let heavy = agent.cost() >= ResourceCost::Moderate;
        let interest = agent.interest().into();
        let batch = agent.batch_votes();
        let votes = self
            .inner
            .config
            .voting_roles
            .as_ref()
            .is_none_or(|roles| roles.contains(&role));
        let id = AgentId(self.inner.next_agent.fetch_add(1, Ordering::Relaxed));
        self.inner.agents.insert(
            id,
            Member {
                agent: Arc::new(Held::new(agent)),
                weight,
                role,
                heavy,
                votes,
                health: Health::default(),
                interest,
                batch,
            },
        );
        self.inner.roster.changed();
        id
    }

    /// Removes an agent; true if it was a member. A round already running keeps asking it.
    pub fn remove(&self, id: AgentId) -> bool {
        self.inner.remove_member(id)
    }

    /// True if the agent is a member.
    pub fn contains(&self, id: AgentId) -> bool {
        self.inner.agents.contains_key(&id)
    }

    /// The number of agents.
    pub fn len(&self) -> usize {
        self.inner.agents.len()
    }

    /// True when the hive has no agents.
    pub fn is_empty(&self) -> bool {
        self.inner.agents.is_empty()
    }

    /// Every agent's id, lowest first.
    pub fn agents(&self) -> Vec<AgentId> {
        let mut ids: Vec<AgentId> = self.inner.agents.iter().map(|entry| *entry.key()).collect();
        ids.sort_unstable();
        ids
    }

    /// The ids of the agents with this role, lowest first.
    pub fn agents_with_role(&self, role: &Role) -> Vec<AgentId> {
        let mut ids: Vec<AgentId> = self
            .inner
            .agents
            .iter()
            .filter(|entry| entry.value().role == *role)
            .map(|entry| *entry.key())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// An agent's role, if it is a member.
    pub fn role(&self, id: AgentId) -> Option<Role> {
        self.inner.agents.get(&id).map(|member| member.role.clone())
    }

    /// An agent's weight, if it is a member.
    pub fn weight(&self, id: AgentId) -> Option<f64> {
        self.inner.agents.get(&id).map(|member| member.weight)
    }

    /// Changes an agent's weight.
    ///
    /// # Errors
    ///
    /// [`HiveError::InvalidWeight`], [`HiveError::UnknownAgent`].
    pub fn set_weight(&self, id: AgentId, weight: f64) -> Result<(), HiveError> {
        if !valid_weight(weight) {
            return Err(HiveError::InvalidWeight { weight });
        }
        let mut member = self
            .inner
            .agents
            .get_mut(&id)
            .ok_or(HiveError::UnknownAgent { agent: id })?;
        member.weight = weight;
        drop(member);
        self.inner.roster.changed();
        Ok(())
    }

    /// The collective memory: the current version of the state, whatever backend holds it, and
    /// the versions its history keeps ([`HiveBuilder::history`]).
    pub fn memory(&self) -> &HiveMemory<S> {
        &self.inner.memory
    }

    /// The hive's name (see [`HiveBuilder::name`]).
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// The consensus policy.
    pub fn policy(&self) -> &ConsensusPolicy {
        &self.inner.config.policy
    }

    /// The resolution strategy.
    pub fn resolution(&self) -> ResolutionStrategy {
        self.inner.config.resolution
    }

    /// The per-call agent timeout.
    pub fn agent_timeout(&self) -> Duration {
        self.inner.config.agent_timeout
    }

    /// The supervision policy, if any (see [`HiveBuilder::supervision`]).
    pub fn supervision(&self) -> Option<Supervision> {
        self.inner.config.supervision
    }

    /// The last round an agent sits out under a supervision quarantine, if it is a member and is
    /// quarantined for rounds not yet started.
    pub fn quarantined_until(&self, id: AgentId) -> Option<u64> {
        let until = self
            .inner
            .agents
            .get(&id)?
            .health
            .quarantined_until
            .load(Ordering::Relaxed);
        let started = self.inner.counters.rounds.load(Ordering::Relaxed);
        (until > started).then_some(until)
    }

    /// The counters so far.
    pub fn stats(&self) -> HiveStats {
        let c = &self.inner.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        HiveStats {
            rounds: load(&c.rounds),
            commits: load(&c.commits),
            rebases: load(&c.rebases),
            proposals: load(&c.proposals),
            accepted: load(&c.accepted),
            rejected: load(&c.rejected),
            conflicts: load(&c.conflicts),
            votes: load(&c.votes),
            cancelled_votes: load(&c.cancelled_votes),
            timeouts: load(&c.timeouts),
            panics: load(&c.panics),
            errors: load(&c.errors),
            invalid: load(&c.invalid),
            quarantines: load(&c.quarantines),
            removals: load(&c.removals),
        }
    }
}
