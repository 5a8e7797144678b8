//! Test states and agents shared by the hive integration tests.
#![allow(dead_code, unreachable_pub)] // Each test binary uses a subset.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Contest, Priority, Proposal, ProposalId, ResourceCost, Role,
    Snapshot, State, Vote,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The cost a test agent declares: `Heavy` (its calls run as tasks) or `Light` (polled by the
/// round).
pub fn cost(heavy: bool) -> ResourceCost {
    if heavy {
        ResourceCost::Heavy
    } else {
        ResourceCost::Light
    }
}

/// The vote for a contest's preferred candidate, or an abstention when it has none.
pub fn preferred(contest: &Contest<Ledger>) -> Vote {
    contest.preferred().map_or(Vote::Abstain, Vote::For)
}

/// A ledger: counters by key, and the log of every change applied, in order.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub counters: BTreeMap<u64, i64>,
    pub log: Vec<ProposalId>,
}

/// Adds `delta` to counter `key`; `id` is logged.
#[derive(Debug, Clone)]
pub struct Add {
    pub id: ProposalId,
    pub key: u64,
    pub delta: i64,
}

impl State for Ledger {
    type Key = u64;
    type Change = Add;

    fn apply(&mut self, change: &Add) {
        *self.counters.entry(change.key).or_default() += change.delta;
        self.log.push(change.id);
    }
}

pub type LedgerProposal = Proposal<u64, Add>;

pub fn add(id: u64, key: u64, delta: i64) -> LedgerProposal {
    Proposal::new(
        ProposalId(id),
        Add {
            id: ProposalId(id),
            key,
            delta,
        },
    )
    .writes([key])
}

/// How an agent behaves when asked.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answers at once.
    Instant,
    /// Answers after a delay (tokio time).
    Slow(Duration),
    /// Never answers.
    Never,
    /// Panics.
    Panic,
    /// Returns an error.
    Fail,
}

impl Behaviour {
    async fn perform(&self) -> Result<(), AgentError> {
        match self {
            Behaviour::Instant => Ok(()),
            Behaviour::Slow(delay) => {
                tokio::time::sleep(*delay).await;
                Ok(())
            }
            Behaviour::Never => std::future::pending().await,
            Behaviour::Panic => panic!("agent exploded"),
            Behaviour::Fail => Err(AgentError::msg("agent failed on purpose")),
        }
    }
}

/// Proposes `Add { key, delta: 1 }` with a fixed id (or none), and votes by a fixed rule.
#[derive(Debug)]
pub struct Writer {
    pub proposal: Option<(u64, u64)>,
    pub priority: Priority,
    pub propose: Behaviour,
    pub vote: Behaviour,
    pub choice: Choice,
    pub role: Role,
    pub proposals_made: Arc<AtomicUsize>,
    pub votes_made: Arc<AtomicUsize>,
}

/// What a [`Writer`] votes for.
#[derive(Debug, Clone)]
pub enum Choice {
    /// The contest's preferred candidate (the trait's default rule).
    Preferred,
    /// This proposal if it stands, else abstain.
    For(u64),
    /// Abstain.
    Abstain,
    /// A proposal that is not a candidate.
    Bogus,
    /// A uniformly random candidate, seeded.
    Random(u64),
}

impl Writer {
    /// Proposes `id` writing `key`, instantly, and votes for the preferred candidate.
    pub fn new(id: u64, key: u64) -> Self {
        Self {
            proposal: Some((id, key)),
            ..Self::silent()
        }
    }

    /// Proposes nothing and votes for the preferred candidate.
    pub fn silent() -> Self {
        Self {
            proposal: None,
            priority: Priority::Normal,
            propose: Behaviour::Instant,
            vote: Behaviour::Instant,
            choice: Choice::Preferred,
            role: Role::Analyzer,
            proposals_made: Arc::default(),
            votes_made: Arc::default(),
        }
    }

    pub fn proposing(mut self, behaviour: Behaviour) -> Self {
        self.propose = behaviour;
        self
    }

    pub fn voting(mut self, behaviour: Behaviour) -> Self {
        self.vote = behaviour;
        self
    }

    pub fn choosing(mut self, choice: Choice) -> Self {
        self.choice = choice;
        self
    }

    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    pub fn with_role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    pub fn counting(mut self, proposals: &Arc<AtomicUsize>, votes: &Arc<AtomicUsize>) -> Self {
        self.proposals_made = Arc::clone(proposals);
        self.votes_made = Arc::clone(votes);
        self
    }
}

impl Agent<Ledger> for Writer {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        self.propose.perform().await?;
        self.proposals_made.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .proposal
            .map(|(id, key)| add(id, key, 1).priority(self.priority)))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
        contest: &Contest<Ledger>,
    ) -> Result<Vote, AgentError> {
        self.vote.perform().await?;
        self.votes_made.fetch_add(1, Ordering::SeqCst);
        Ok(match self.choice {
            Choice::Preferred => preferred(contest),
            Choice::For(id) => contest
                .candidate(ProposalId(id))
                .map_or(Vote::Abstain, |candidate| Vote::For(candidate.id)),
            Choice::Abstain => Vote::Abstain,
            Choice::Bogus => Vote::For(ProposalId(u64::MAX)),
            Choice::Random(seed) => {
                let mut rng = SmallRng::seed_from_u64(seed ^ contest.candidates[0].id.0);
                let index = rng.gen_range(0..contest.candidates.len());
                Vote::For(contest.candidates[index].id)
            }
        })
    }

    fn role(&self) -> Role {
        self.role.clone()
    }
}

/// Proposes one `Add` per round on a fresh key with a fresh id from a shared counter, yielding first
/// so that concurrent rounds interleave.
#[derive(Debug)]
pub struct Incrementer {
    pub ids: Arc<AtomicU64>,
    pub heavy: bool,
}

impl Agent<Ledger> for Incrementer {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<LedgerProposal>, AgentError> {
        tokio::task::yield_now().await;
        let id = self.ids.fetch_add(1, Ordering::SeqCst);
        Ok(Some(add(id, id, 1)))
    }

    fn cost(&self) -> ResourceCost {
        cost(self.heavy)
    }
}

/// Collects what a `tracing-subscriber` formatter writes (see [`capture_logs`]).
#[derive(Clone, Default)]
pub struct Captured(Arc<parking_lot::Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().clone()).expect("the formatter writes UTF-8")
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Formats this thread's events at `level` and above, without colours, into the returned
/// [`Captured`] while the guard lives.
pub fn capture_logs(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// A counter: each change adds to it (keys name what a proposal touches).
#[derive(Clone, Default, Debug)]
pub struct Count(pub u64);

impl State for Count {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Silences the panics whose message starts with `marker` (a test's own, expected panics); any
/// other panic is printed as usual. The first call in a test binary sets the hook.
pub fn quiet_panics(marker: &'static str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !text.starts_with(marker) {
                default(info);
            }
        }));
    });
}
