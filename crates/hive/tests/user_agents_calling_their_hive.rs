//! Agents that hold their own hive, as kameo and ractor actors hold their own `ActorRef`: from
//! inside `propose` and `vote` they read the memory and the stats, spawn a helper, change their
//! weight, remove themselves, and even run a nested round. None of that may deadlock, and each
//! change lands where the docs say (the running round keeps its members; the next one sees the
//! change). Every wait is bounded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Contest, Hive, ProposalOf, Snapshot, State, Vote,
};
use parking_lot::Mutex;

const BOUND: Duration = Duration::from_secs(10);

/// Counters by key.
#[derive(Clone, Default, Debug)]
struct Tally(BTreeMap<u64, i64>);

impl State for Tally {
    type Key = u64;
    type Change = (u64, i64);
    fn apply(&mut self, (key, delta): &(u64, i64)) {
        *self.0.entry(*key).or_default() += delta;
    }
}

/// Where an agent finds its hive (set after the hive is built, cleared at the end of a test to
/// break the cycle hive -> agent -> hive).
type Home = Arc<Mutex<Option<Hive<Tally>>>>;

fn home_of(hive: &Hive<Tally>) -> Home {
    Arc::new(Mutex::new(Some(hive.clone())))
}

fn hive_in(home: &Home) -> Hive<Tally> {
    home.lock().clone().expect("home is set")
}

/// Adds 1 to `key`.
struct Plain {
    key: u64,
}

impl Agent<Tally> for Plain {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Tally>,
    ) -> Result<Option<ProposalOf<Tally>>, AgentError> {
        Ok(Some(ctx.proposal((self.key, 1)).writes([self.key])))
    }
}

/// Inside `propose`: reads its hive, spawns a helper, doubles its own weight, removes itself.
struct Busy {
    home: Home,
    helpers: Arc<AtomicUsize>,
}

impl Agent<Tally> for Busy {
    async fn propose(
        &self,
        ctx: &AgentContext,
        view: &Snapshot<Tally>,
    ) -> Result<Option<ProposalOf<Tally>>, AgentError> {
        let hive = hive_in(&self.home);
        assert_eq!(hive.memory().version(), view.version());
        let _ = hive.stats();
        let members = hive.agents();
        assert!(members.contains(&ctx.agent()));
        let weight = hive.weight(ctx.agent()).expect("a member has a weight");
        hive.set_weight(ctx.agent(), weight * 2.0)
            .expect("a valid weight");
        let helper = hive.spawn(Plain { key: 100 });
        assert!(hive.contains(helper));
        self.helpers.fetch_add(1, Ordering::SeqCst);
        assert!(hive.remove(ctx.agent()), "it removes itself");
        Ok(Some(ctx.proposal((1, 10)).writes([1])))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_spawns_reweights_and_removes_itself_mid_call_does_not_deadlock() {
    let hive = Hive::builder(Tally::default()).build().unwrap();
    let home = home_of(&hive);
    let helpers = Arc::new(AtomicUsize::new(0));
    let busy = hive.spawn(Busy {
        home: Arc::clone(&home),
        helpers: Arc::clone(&helpers),
    });
    hive.spawn(Plain { key: 2 });

    let first = tokio::time::timeout(BOUND, hive.decide())
        .await
        .expect("no deadlock when an agent calls its hive")
        .unwrap();
    // The running round keeps the members it started with: its own answer counts.
    assert!(first.failures.is_empty(), "{:?}", first.failures);
    assert_eq!(first.accepted.len(), 2, "{first:?}");
    assert_eq!(helpers.load(Ordering::SeqCst), 1);
    assert!(!hive.contains(busy));
    assert_eq!(hive.weight(busy), None);
    let state = hive.memory().load();
    assert_eq!((state.0.get(&1), state.0.get(&2)), (Some(&10), Some(&1)));

    // The next round has the helper and not the agent that left.
    let second = tokio::time::timeout(BOUND, hive.decide())
        .await
        .unwrap()
        .unwrap();
    assert!(second
        .accepted
        .iter()
        .all(|id| second.proposer(*id) != Some(busy)));
    assert_eq!(second.accepted.len(), 2);
    let state = hive.memory().load();
    assert_eq!(
        (state.0.get(&1), state.0.get(&2), state.0.get(&100)),
        (Some(&10), Some(&2), Some(&1))
    );
    assert_eq!(helpers.load(Ordering::SeqCst), 1);
    home.lock().take();
}

/// Runs a nested round of its own hive inside `propose`, once, then proposes on key 1.
struct Nester {
    home: Home,
    nested: Arc<Mutex<Option<(u64, u64)>>>,
}

impl Agent<Tally> for Nester {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Tally>,
    ) -> Result<Option<ProposalOf<Tally>>, AgentError> {
        if self.nested.lock().is_none() {
            *self.nested.lock() = Some((0, 0));
            let hive = hive_in(&self.home);
            let inner = hive
                .decide()
                .await
                .map_err(|error| AgentError::msg(error.to_string()))?;
            *self.nested.lock() = Some((inner.round, inner.version));
            return Ok(None);
        }
        Ok(Some(ctx.proposal((1, 1)).writes([1])))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_running_a_nested_round_of_its_hive_makes_the_outer_round_rebase() {
    let hive = Hive::builder(Tally::default()).build().unwrap();
    let home = home_of(&hive);
    let nested = Arc::new(Mutex::new(None));
    hive.spawn(Nester {
        home: Arc::clone(&home),
        nested: Arc::clone(&nested),
    });
    hive.spawn(Plain { key: 7 });
    let outer = tokio::time::timeout(BOUND, hive.decide())
        .await
        .expect("a nested round does not deadlock the outer one")
        .unwrap();
    // The nested round was round 2 and committed version 1 (the plain agent's +1 on key 7 and the
    // nester's +1 on key 1); the outer round, based on version 0, rebased onto it.
    assert_eq!(*nested.lock(), Some((2, 1)));
    assert!(outer.failures.is_empty(), "{:?}", outer.failures);
    assert_eq!(outer.round, 1);
    assert_eq!(outer.version, 2);
    assert!(outer.rebased);
    let state = hive.memory().load();
    assert_eq!(state.version(), 2);
    assert_eq!((state.0.get(&1), state.0.get(&7)), (Some(&1), Some(&2)));
    home.lock().take();
}

/// Two proposals on key 5; votes for the lower id after reading its hive from inside `vote`.
struct Voter {
    home: Home,
    id: u64,
    votes: Arc<AtomicUsize>,
}

impl Agent<Tally> for Voter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Tally>,
    ) -> Result<Option<ProposalOf<Tally>>, AgentError> {
        Ok(Some(ctx.proposal((5, self.id as i64 * 10)).writes([5])))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Tally>,
        contest: &Contest<Tally>,
    ) -> Result<Vote, AgentError> {
        let hive = hive_in(&self.home);
        let _ = (hive.agents(), hive.stats(), hive.memory().load());
        hive.set_weight(ctx.agent(), 1.0).expect("valid");
        self.votes.fetch_add(1, Ordering::SeqCst);
        let lowest = contest
            .candidates
            .iter()
            .map(|candidate| candidate.id)
            .min()
            .expect("a contest has candidates");
        Ok(Vote::For(lowest))
    }
}

#[tokio::test(start_paused = true)]
async fn voters_that_read_and_reweight_themselves_while_voting_settle_the_ballot() {
    let hive = Hive::builder(Tally::default()).build().unwrap();
    let home = home_of(&hive);
    let votes = Arc::new(AtomicUsize::new(0));
    let ids: Vec<AgentId> = (1..=3)
        .map(|id| {
            hive.spawn(Voter {
                home: Arc::clone(&home),
                id,
                votes: Arc::clone(&votes),
            })
        })
        .collect();
    let decision = tokio::time::timeout(BOUND, hive.decide())
        .await
        .expect("no deadlock")
        .unwrap();
    assert_eq!(decision.ballots.len(), 1, "{decision:?}");
    assert_eq!(decision.accepted.len(), 1);
    let lowest = *decision.ballots[0].candidates.iter().min().unwrap();
    assert_eq!(decision.accepted[0], lowest);
    let winner = decision.proposer(lowest).expect("a proposer");
    let position = ids.iter().position(|id| *id == winner).unwrap() as i64;
    assert!(votes.load(Ordering::SeqCst) >= 2);
    assert_eq!(hive.memory().load().0.get(&5), Some(&((position + 1) * 10)));
    home.lock().take();
}
