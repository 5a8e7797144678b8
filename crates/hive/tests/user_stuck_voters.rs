//! A voter whose `vote` never returns and ignores its token (a hung LLM call behind a heavy agent):
//! once the ballot is settled without it the round stops waiting, records it as not counted (not
//! as a failure) and drops its call; when the ballot needs it, it is timed out in the vote phase,
//! recorded as failed, and its call dropped too. Every wait is bounded.

mod support;

use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, CancellationToken, ConsensusPolicy, Contest, DecideOptions,
    FailureKind, Hive, HiveError, Phase, ProposalOf, ResourceCost, Snapshot, Tally, Vote,
    VoterChoice,
};
use support::Count;
use tokio::sync::{mpsc, watch};

const BOUND: Duration = Duration::from_secs(10);

/// Proposes `change` on key 1 when `change > 0`; votes, once the hung voter has been asked (so
/// that the ballot cannot settle before its call runs), for the candidate with the lowest change.
struct Member {
    change: u64,
    asked: watch::Receiver<bool>,
}

impl Agent<Count> for Member {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        Ok((self.change > 0).then(|| ctx.proposal(self.change).writes([1])))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
        contest: &Contest<Count>,
    ) -> Result<Vote, AgentError> {
        let mut asked = self.asked.clone();
        let _ = tokio::time::timeout(BOUND, asked.wait_for(|asked| *asked)).await;
        let lowest = contest
            .candidates
            .iter()
            .min_by_key(|candidate| candidate.change)
            .expect("candidates");
        Ok(Vote::For(lowest.id))
    }
}

/// Says on its channel when the call holding it is dropped.
struct DropSignal(mpsc::UnboundedSender<()>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Proposes nothing; its `vote` never returns.
struct HungVoter {
    dropped: mpsc::UnboundedSender<()>,
    started: mpsc::UnboundedSender<()>,
    asked: watch::Sender<bool>,
}

impl Agent<Count> for HungVoter {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
    ) -> Result<Option<ProposalOf<Count>>, AgentError> {
        Ok(None)
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Count>,
        _contest: &Contest<Count>,
    ) -> Result<Vote, AgentError> {
        let _signal = DropSignal(self.dropped.clone());
        let _ = self.started.send(());
        self.asked.send_replace(true);
        std::future::pending().await
    }

    fn cost(&self) -> ResourceCost {
        ResourceCost::Heavy
    }
}

type Signals = (mpsc::UnboundedReceiver<()>, mpsc::UnboundedReceiver<()>);

fn hive(policy: ConsensusPolicy, timeout: Duration) -> (Hive<Count>, Signals) {
    let hive = Hive::builder(Count::default())
        .policy(policy)
        .agent_timeout(timeout)
        .build()
        .unwrap();
    let (asked, asked_rx) = watch::channel(false);
    for change in [2, 3, 0, 0, 0] {
        hive.spawn(Member {
            change,
            asked: asked_rx.clone(),
        });
    }
    let (dropped, dropped_rx) = mpsc::unbounded_channel();
    let (started, started_rx) = mpsc::unbounded_channel();
    hive.spawn(HungVoter {
        dropped,
        started,
        asked,
    });
    (hive, (started_rx, dropped_rx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_voter_is_not_waited_for_once_the_ballot_is_settled_and_its_call_is_dropped() {
    let (hive, (mut started, mut dropped)) = hive(
        ConsensusPolicy::majority().with_weighted(false),
        Duration::from_secs(60),
    );
    let hung = *hive.agents().last().unwrap();
    let decision = tokio::time::timeout(BOUND, hive.decide())
        .await
        .expect("a settled ballot does not wait for the hung voter")
        .unwrap();
    assert!(decision.failures.is_empty(), "{:?}", decision.failures);
    assert_eq!(decision.ballots.len(), 1);
    let ballot = &decision.ballots[0];
    assert!(matches!(ballot.tally, Tally::Decided { .. }), "{ballot:?}");
    assert_eq!(ballot.choice_of(hung), Some(VoterChoice::NotCounted));
    let not_counted = ballot
        .voters()
        .filter(|record| record.choice == VoterChoice::NotCounted)
        .count();
    assert!(ballot.cancelled >= 1);
    assert_eq!(ballot.cancelled, not_counted);
    assert_eq!(ballot.votes + ballot.cancelled, 6);
    assert_eq!(hive.memory().load().0, 2);
    assert_eq!(started.try_recv(), Ok(()), "the hung voter was asked");
    tokio::time::timeout(BOUND, dropped.recv())
        .await
        .expect("the hung vote call is dropped")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_voter_a_unanimous_ballot_needs_is_timed_out_in_the_vote_phase_and_dropped() {
    let (hive, (_started, mut dropped)) = hive(
        ConsensusPolicy::unanimous().with_weighted(false),
        Duration::from_millis(200),
    );
    let hung = *hive.agents().last().unwrap();
    let decision = tokio::time::timeout(BOUND, hive.decide())
        .await
        .expect("the hung voter is timed out")
        .unwrap();
    assert_eq!(decision.failures.len(), 1, "{:?}", decision.failures);
    let failure = &decision.failures[0];
    assert_eq!(
        (failure.agent, failure.phase, &failure.kind),
        (hung, Phase::Vote, &FailureKind::TimedOut)
    );
    let ballot = &decision.ballots[0];
    assert_eq!(ballot.choice_of(hung), Some(VoterChoice::Failed));
    // Five of six voters for the same candidate: not the whole electorate.
    assert!(
        matches!(ballot.tally, Tally::NoQuorum { .. }),
        "{:?}",
        ballot.tally
    );
    assert!(decision.accepted.is_empty());
    assert_eq!(hive.memory().version(), 0);
    tokio::time::timeout(BOUND, dropped.recv())
        .await
        .expect("the timed-out vote call is dropped")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_round_while_a_hung_voter_is_asked_commits_nothing_and_drops_the_call() {
    let (hive, (mut started, mut dropped)) = hive(
        ConsensusPolicy::unanimous().with_weighted(false),
        Duration::from_secs(60),
    );
    let cancel = CancellationToken::new();
    let round = hive.decide_with(DecideOptions::default().with_cancel(cancel.clone()));
    let trigger = async {
        tokio::time::timeout(BOUND, started.recv())
            .await
            .expect("the hung voter was asked")
            .unwrap();
        cancel.cancel();
    };
    let (outcome, ()) = tokio::time::timeout(BOUND, async { tokio::join!(round, trigger) })
        .await
        .expect("a cancelled round ends");
    assert!(
        matches!(outcome, Err(HiveError::Cancelled { round: 1 })),
        "{outcome:?}"
    );
    assert_eq!(hive.memory().version(), 0);
    tokio::time::timeout(BOUND, dropped.recv())
        .await
        .expect("the hung vote call is dropped")
        .unwrap();
}
