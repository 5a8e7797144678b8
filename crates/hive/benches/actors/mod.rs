//! kameo and ractor, the actor frameworks a user who does not pick hivekit would pick, as peers
//! of the hive in the same groups, each written the way its documentation teaches:
//!
//! - `kameo`: an agent is a `#[derive(Actor)]` struct holding its spec, with one `Message` impl
//!   per request (`Propose`, `Ballot`); spawned with `Spawn::spawn` (the default bounded mailbox)
//!   and asked with `ActorRef::ask`, the replies of every agent gathered with `try_join_all`.
//! - `ractor`: an agent is a stateless handler whose `State` is its spec and whose messages are
//!   one enum carrying `RpcReplyPort`s; spawned with `Actor::spawn` (which runs `pre_start` before
//!   it returns) and asked with `call!`, gathered with `try_join_all`. Not `rpc::multi_call`: it
//!   spawns a task per reply, which a user gathering many replies soon learns to avoid.
//!
//! A round, for both, is what a user writes around their actors: ask every agent for a proposal,
//! group the proposals by key in a `HashMap` (only groups of two or more are contests), ask every
//! agent once for its votes on all contests, take the most-voted candidate of each contest (lowest
//! id on a tie), and ask a board actor (the state's owner) to apply the accepted keys. Teardown
//! (stopping and awaiting every actor) is never timed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches_common::agents::AgentSpec;
use benches_common::{iter_with_allocations, record_extra, AllocationStats, BenchKey};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId};
use futures::future::try_join_all;
use hivekit_runtime::execute;

use super::seeded_choice;

/// One agent's proposal: its id, the key it writes and its priority level.
#[derive(Debug, Clone, Copy, kameo::Reply)]
pub(crate) struct PeerProposal {
    id: u64,
    key: u64,
    priority: u8,
}

impl PeerProposal {
    fn of(spec: &AgentSpec) -> Self {
        Self {
            id: spec.proposal,
            key: spec.key,
            priority: spec.priority,
        }
    }
}

/// Every contest of a round, each a list of candidates (proposal id, priority, key), as the
/// baseline round hands them to its voters.
type Contests = Arc<[Vec<(u64, u8, u64)>]>;

fn votes_of(spec: &AgentSpec, contests: &Contests) -> Vec<u64> {
    contests
        .iter()
        .map(|candidates| seeded_choice(spec, candidates))
        .collect()
}

/// The board's state, as the hive bench's `Board` applies a key.
#[derive(Debug, Default)]
struct BoardState {
    commits: u64,
    checksum: u64,
}

impl BoardState {
    fn apply(&mut self, keys: &[u64]) {
        for key in keys {
            self.commits += 1;
            self.checksum = self.checksum.wrapping_mul(31).wrapping_add(*key);
        }
    }
}

/// A set of agents, one actor each, plus the board actor, in one actor framework.
pub(crate) trait ActorPeer: Sized + Send + Sync + 'static {
    /// The bench function id.
    const NAME: &'static str;

    /// Spawns one actor per spec and the board; done when every actor can take a message.
    fn spawn(specs: &[AgentSpec]) -> impl Future<Output = Self> + Send;

    /// Asks every agent for its proposal and gathers the replies, in agent order.
    fn propose(&self) -> impl Future<Output = Vec<PeerProposal>> + Send;

    /// Asks every agent for its votes on all contests (one reply per agent, one vote per contest).
    fn vote(&self, contests: &Contests) -> impl Future<Output = Vec<Vec<u64>>> + Send;

    /// Asks the board to apply the accepted keys.
    fn commit(&self, keys: Vec<u64>) -> impl Future<Output = ()> + Send;

    /// Stops every actor and waits until each has stopped.
    fn shutdown(self) -> impl Future<Output = ()> + Send;
}

/// One round over the peer's agents; returns the number of accepted proposals.
pub(crate) async fn round<P: ActorPeer>(peer: &P) -> usize {
    let proposals = peer.propose().await;
    let mut by_key: HashMap<u64, Vec<usize>> = HashMap::with_capacity(proposals.len());
    for (index, proposal) in proposals.iter().enumerate() {
        by_key.entry(proposal.key).or_default().push(index);
    }
    let groups: Vec<Vec<usize>> = by_key
        .into_values()
        .filter(|members| members.len() > 1)
        .collect();
    let mut accepted = vec![true; proposals.len()];
    if !groups.is_empty() {
        let contests: Contests = groups
            .iter()
            .map(|members| {
                members
                    .iter()
                    .map(|&member| {
                        let proposal = &proposals[member];
                        (proposal.id, proposal.priority, proposal.key)
                    })
                    .collect()
            })
            .collect();
        let ballots = peer.vote(&contests).await;
        for (contest, members) in groups.iter().enumerate() {
            let mut counts = vec![0usize; members.len()];
            for ballot in &ballots {
                let choice = ballot[contest];
                if let Some(position) = members.iter().position(|&m| proposals[m].id == choice) {
                    counts[position] += 1;
                }
            }
            let winner = (0..members.len())
                .max_by(|&a, &b| {
                    let (a_id, b_id) = (proposals[members[a]].id, proposals[members[b]].id);
                    counts[a].cmp(&counts[b]).then(b_id.cmp(&a_id))
                })
                .map(|position| members[position]);
            for &member in members {
                accepted[member] = Some(member) == winner;
            }
        }
    }
    let keys: Vec<u64> = proposals
        .iter()
        .zip(&accepted)
        .filter(|(_, accepted)| **accepted)
        .map(|(proposal, _)| proposal.key)
        .collect();
    let count = keys.len();
    peer.commit(keys).await;
    count
}

// ---- kameo ----

mod with_kameo {
    use kameo::actor::{ActorRef, Spawn};
    use kameo::message::{Context, Message};
    use kameo::Actor;

    use super::{votes_of, AgentSpec, BoardState, Contests, PeerProposal};

    #[derive(Actor)]
    pub(super) struct Agent {
        pub(super) spec: AgentSpec,
    }

    #[derive(Debug)]
    pub(super) struct Propose;

    impl Message<Propose> for Agent {
        type Reply = PeerProposal;

        async fn handle(
            &mut self,
            _: Propose,
            _: &mut Context<Self, PeerProposal>,
        ) -> PeerProposal {
            PeerProposal::of(&self.spec)
        }
    }

    #[derive(Debug)]
    pub(super) struct Ballot(pub(super) Contests);

    impl Message<Ballot> for Agent {
        type Reply = Vec<u64>;

        async fn handle(&mut self, ballot: Ballot, _: &mut Context<Self, Vec<u64>>) -> Vec<u64> {
            votes_of(&self.spec, &ballot.0)
        }
    }

    #[derive(Actor, Default)]
    pub(super) struct Board {
        state: BoardState,
    }

    #[derive(Debug)]
    pub(super) struct Commit(pub(super) Vec<u64>);

    impl Message<Commit> for Board {
        type Reply = ();

        async fn handle(&mut self, commit: Commit, _: &mut Context<Self, ()>) {
            self.state.apply(&commit.0);
        }
    }

    pub(super) fn spawn(spec: &AgentSpec) -> ActorRef<Agent> {
        Agent::spawn(Agent { spec: spec.clone() })
    }

    pub(super) fn spawn_board() -> ActorRef<Board> {
        Board::spawn_default()
    }
}

/// The agents as kameo actors.
pub(crate) struct Kameo {
    agents: Vec<kameo::actor::ActorRef<with_kameo::Agent>>,
    board: kameo::actor::ActorRef<with_kameo::Board>,
}

impl ActorPeer for Kameo {
    const NAME: &'static str = "kameo";

    async fn spawn(specs: &[AgentSpec]) -> Self {
        let agents: Vec<_> = specs.iter().map(with_kameo::spawn).collect();
        let board = with_kameo::spawn_board();
        for agent in &agents {
            agent.wait_for_startup().await;
        }
        board.wait_for_startup().await;
        Self { agents, board }
    }

    async fn propose(&self) -> Vec<PeerProposal> {
        try_join_all(
            self.agents
                .iter()
                .map(|agent| agent.ask(with_kameo::Propose).send()),
        )
        .await
        .expect("every kameo agent replies")
    }

    async fn vote(&self, contests: &Contests) -> Vec<Vec<u64>> {
        try_join_all(
            self.agents
                .iter()
                .map(|agent| agent.ask(with_kameo::Ballot(Arc::clone(contests))).send()),
        )
        .await
        .expect("every kameo agent votes")
    }

    async fn commit(&self, keys: Vec<u64>) {
        self.board
            .ask(with_kameo::Commit(keys))
            .await
            .expect("the kameo board applies");
    }

    async fn shutdown(self) {
        for agent in &self.agents {
            agent.kill();
        }
        self.board.kill();
        for agent in &self.agents {
            agent.wait_for_shutdown().await;
        }
        self.board.wait_for_shutdown().await;
    }
}

// ---- ractor ----

mod with_ractor {
    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

    use super::{votes_of, AgentSpec, BoardState, Contests, PeerProposal};

    pub(super) struct Agent;

    pub(super) enum AgentMessage {
        Propose(RpcReplyPort<PeerProposal>),
        Vote(Contests, RpcReplyPort<Vec<u64>>),
    }

    impl Actor for Agent {
        type Msg = AgentMessage;
        type State = AgentSpec;
        type Arguments = AgentSpec;

        async fn pre_start(
            &self,
            _: ActorRef<AgentMessage>,
            spec: AgentSpec,
        ) -> Result<AgentSpec, ActorProcessingErr> {
            Ok(spec)
        }

        async fn handle(
            &self,
            _: ActorRef<AgentMessage>,
            message: AgentMessage,
            spec: &mut AgentSpec,
        ) -> Result<(), ActorProcessingErr> {
            match message {
                AgentMessage::Propose(reply) => reply.send(PeerProposal::of(spec))?,
                AgentMessage::Vote(contests, reply) => reply.send(votes_of(spec, &contests))?,
            }
            Ok(())
        }
    }

    pub(super) struct Board;

    pub(super) enum BoardMessage {
        Commit(Vec<u64>, RpcReplyPort<()>),
    }

    impl Actor for Board {
        type Msg = BoardMessage;
        type State = BoardState;
        type Arguments = ();

        async fn pre_start(
            &self,
            _: ActorRef<BoardMessage>,
            (): (),
        ) -> Result<BoardState, ActorProcessingErr> {
            Ok(BoardState::default())
        }

        async fn handle(
            &self,
            _: ActorRef<BoardMessage>,
            message: BoardMessage,
            state: &mut BoardState,
        ) -> Result<(), ActorProcessingErr> {
            match message {
                BoardMessage::Commit(keys, reply) => {
                    state.apply(&keys);
                    reply.send(())?;
                }
            }
            Ok(())
        }
    }
}

/// The agents as ractor actors.
pub(crate) struct Ractor {
    agents: Vec<ractor::ActorRef<with_ractor::AgentMessage>>,
    board: ractor::ActorRef<with_ractor::BoardMessage>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl ActorPeer for Ractor {
    const NAME: &'static str = "ractor";

    async fn spawn(specs: &[AgentSpec]) -> Self {
        use ractor::Actor;
        let mut agents = Vec::with_capacity(specs.len());
        let mut handles = Vec::with_capacity(specs.len() + 1);
        for spec in specs {
            let (agent, handle) = Actor::spawn(None, with_ractor::Agent, spec.clone())
                .await
                .expect("a ractor agent starts");
            agents.push(agent);
            handles.push(handle);
        }
        let (board, handle) = Actor::spawn(None, with_ractor::Board, ())
            .await
            .expect("the ractor board starts");
        handles.push(handle);
        Self {
            agents,
            board,
            handles,
        }
    }

    async fn propose(&self) -> Vec<PeerProposal> {
        try_join_all(
            self.agents.iter().map(|agent| async move {
                ractor::call!(agent, with_ractor::AgentMessage::Propose)
            }),
        )
        .await
        .expect("every ractor agent replies")
    }

    async fn vote(&self, contests: &Contests) -> Vec<Vec<u64>> {
        try_join_all(self.agents.iter().map(|agent| async move {
            ractor::call!(agent, with_ractor::AgentMessage::Vote, Arc::clone(contests))
        }))
        .await
        .expect("every ractor agent votes")
    }

    async fn commit(&self, keys: Vec<u64>) {
        ractor::call!(self.board, with_ractor::BoardMessage::Commit, keys)
            .expect("the ractor board applies");
    }

    async fn shutdown(self) {
        for agent in &self.agents {
            agent.stop(None);
        }
        self.board.stop(None);
        for handle in self.handles {
            handle.await.expect("a ractor actor stops");
        }
    }
}

// ---- the rows, one function per group ----

/// `agent_spawning/{kameo,ractor}/N`: spawning N agent actors (and the board) until each can take
/// a message. Stopping them is not timed.
pub(crate) fn spawning<P: ActorPeer>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    specs: &[AgentSpec],
) {
    group.bench_with_input(BenchmarkId::new(P::NAME, specs.len()), specs, |b, specs| {
        b.iter_custom(|iterations| {
            let mut timed = Duration::ZERO;
            for _ in 0..iterations {
                let start = Instant::now();
                let peer = execute(P::spawn(specs));
                timed += start.elapsed();
                execute(peer.shutdown());
            }
            timed
        })
    });
}

/// `memory_overhead/{kameo,ractor}/N`: bytes allocated per idle agent actor (`bytes_per_agent`),
/// counted while spawning (the actors are kept alive and stopped after counting); the time row is
/// the spawn.
pub(crate) fn memory<P: ActorPeer>(group: &mut BenchmarkGroup<'_, WallTime>, specs: &[AgentSpec]) {
    const SPAWNS: usize = 10;
    let agents = specs.len();
    let key = BenchKey::from(("memory_overhead", P::NAME, agents));
    let mut kept = Vec::with_capacity(SPAWNS);
    let stats = AllocationStats::measure(SPAWNS as u64, || kept.push(execute(P::spawn(specs))));
    for peer in kept {
        execute(peer.shutdown());
    }
    stats.record(key.clone());
    record_extra(&key, "bytes_per_agent", stats.bytes_per_op / agents as f64);
    spawning::<P>(group, specs);
}

/// `consensus_latency/{kameo,ractor}/N`: the propose phase only, every agent asked for its
/// proposal and the replies gathered (the hive's row is a whole round).
pub(crate) fn propose<P: ActorPeer>(group: &mut BenchmarkGroup<'_, WallTime>, specs: &[AgentSpec]) {
    let agents = specs.len();
    let peer = execute(P::spawn(specs));
    group.bench_with_input(BenchmarkId::new(P::NAME, agents), &agents, |b, _| {
        iter_with_allocations(b, ("consensus_latency", P::NAME, agents), || {
            execute(peer.propose())
        })
    });
    execute(peer.shutdown());
}

/// `orchestration_throughput/{kameo,ractor}/C`: `rounds` whole rounds (see [`round`]), in
/// `concurrent` tasks at once over the same agents and board.
pub(crate) fn rounds<P: ActorPeer>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    specs: &[AgentSpec],
    concurrent: usize,
    rounds: usize,
) {
    let peer = Arc::new(execute(P::spawn(specs)));
    group.bench_with_input(
        BenchmarkId::new(P::NAME, concurrent),
        &concurrent,
        |b, _| {
            b.iter(|| {
                execute(async {
                    let streams: Vec<_> = (0..concurrent)
                        .map(|_| {
                            let peer = Arc::clone(&peer);
                            tokio::spawn(async move {
                                for _ in 0..rounds / concurrent {
                                    round(&*peer).await;
                                }
                            })
                        })
                        .collect();
                    for stream in streams {
                        stream.await.expect("a stream of rounds");
                    }
                })
            })
        },
    );
    if let Ok(peer) = Arc::try_unwrap(peer) {
        execute(peer.shutdown());
    }
}
