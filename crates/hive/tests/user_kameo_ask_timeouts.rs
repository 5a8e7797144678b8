//! Kameo's ask timeouts (`default_reply_timeout_applies_without_call_site_timeout`,
//! `call_site_reply_timeout_overrides_default`, `bounded_ask_requests_reply_timeout`) and ractor's
//! `test_multi_call` (every actor of a multi-call timing out), ported to agent calls: an agent's
//! call is an ask, `agent_timeout` its reply timeout (`DEFAULT_AGENT_TIMEOUT` when not set), and a
//! round's deadline the call site's. A round asks its agents at once, so a hive of agents that all
//! hang costs one timeout, not one per agent; under `max_in_flight` each wave of calls gets a whole
//! timeout from when it got its slot. Timeouts hold on tokio's paused clock, on a plain thread
//! (hivekit's global runtime) and on a multi-thread runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, DecideOptions, FailureKind, Hive, Phase, ProposalOf,
    ResourceCost, Snapshot, State, DEFAULT_AGENT_TIMEOUT,
};
use parking_lot::Mutex;
use tokio::time::Instant;

const BOUND: Duration = Duration::from_secs(10);

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Answers after `delay` (never, for `None`), adding 1 on its own key; records the time it was
/// given and counts the answers it finished.
struct Replier {
    key: u64,
    delay: Option<Duration>,
    heavy: bool,
    remaining: Arc<Mutex<Vec<Duration>>>,
    finished: Arc<AtomicUsize>,
}

impl Agent<Sum> for Replier {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        self.remaining.lock().push(ctx.remaining());
        match self.delay {
            Some(delay) => tokio::time::sleep(delay).await,
            None => std::future::pending().await,
        }
        self.finished.fetch_add(1, Ordering::SeqCst);
        Ok(Some(ctx.proposal(1).writes([self.key])))
    }

    fn cost(&self) -> ResourceCost {
        if self.heavy {
            ResourceCost::Heavy
        } else {
            ResourceCost::Light
        }
    }
}

#[derive(Default)]
struct Seen {
    remaining: Arc<Mutex<Vec<Duration>>>,
    finished: Arc<AtomicUsize>,
}

impl Seen {
    fn replier(&self, key: u64, delay: Option<Duration>, heavy: bool) -> Replier {
        Replier {
            key,
            delay,
            heavy,
            remaining: Arc::clone(&self.remaining),
            finished: Arc::clone(&self.finished),
        }
    }
}

fn timed_out_proposers(decision: &hivekit_hive::Decision<Sum>) -> usize {
    decision
        .failures
        .iter()
        .filter(|failure| failure.kind == FailureKind::TimedOut && failure.phase == Phase::Propose)
        .count()
}

#[tokio::test(start_paused = true)]
async fn the_default_agent_timeout_applies_when_none_is_configured() {
    assert_eq!(DEFAULT_AGENT_TIMEOUT, Duration::from_secs(30));
    let hive = Hive::new(Sum::default());
    assert_eq!(hive.agent_timeout(), DEFAULT_AGENT_TIMEOUT);
    let seen = Seen::default();
    let prompt = hive.spawn(seen.replier(1, Some(Duration::from_secs(29)), false));
    let late = hive.spawn(seen.replier(2, Some(Duration::from_secs(31)), false));

    let started = Instant::now();
    let decision = tokio::time::timeout(Duration::from_secs(3_600), hive.decide())
        .await
        .expect("the round ends")
        .expect("the round decides");
    assert_eq!(started.elapsed(), DEFAULT_AGENT_TIMEOUT);
    assert_eq!(decision.elapsed, DEFAULT_AGENT_TIMEOUT);
    assert_eq!(decision.accepted.len(), 1, "{decision}");
    assert_eq!(decision.proposer(decision.accepted[0]), Some(prompt));
    assert_eq!(decision.failures.len(), 1, "{decision}");
    assert_eq!(decision.failures[0].agent, late);
    assert_eq!(decision.failures[0].kind, FailureKind::TimedOut);
    assert_eq!(
        *seen.remaining.lock(),
        vec![DEFAULT_AGENT_TIMEOUT, DEFAULT_AGENT_TIMEOUT]
    );
    assert_eq!(seen.finished.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_round_deadline_longer_than_the_agent_timeout_does_not_extend_it() {
    for heavy in [false, true] {
        let hive = Hive::builder(Sum::default())
            .agent_timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let seen = Seen::default();
        hive.spawn(seen.replier(1, Some(Duration::from_secs(2)), heavy));
        hive.spawn(seen.replier(2, Some(Duration::from_millis(500)), heavy));
        let started = Instant::now();
        let decision = tokio::time::timeout(
            Duration::from_secs(3_600),
            hive.decide_with(DecideOptions::default().with_deadline(Duration::from_secs(60))),
        )
        .await
        .expect("the round ends")
        .expect("the round decides");
        assert_eq!(started.elapsed(), Duration::from_secs(1), "heavy {heavy}");
        assert_eq!(
            timed_out_proposers(&decision),
            1,
            "heavy {heavy}: {decision}"
        );
        assert_eq!(decision.accepted.len(), 1, "heavy {heavy}: {decision}");
        assert_eq!(
            *seen.remaining.lock(),
            vec![Duration::from_secs(1); 2],
            "heavy {heavy}: the context shows the earlier of the two limits"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn agents_that_all_hang_time_out_together_and_under_max_in_flight_wave_by_wave() {
    const AGENTS: usize = 9;
    let timeout = Duration::from_secs(1);
    for heavy in [false, true] {
        for (limit, waves) in [(None, 1u32), (Some(3usize), 3), (Some(4), 3), (Some(1), 9)] {
            let mut builder = Hive::builder(Sum::default()).agent_timeout(timeout);
            if let Some(limit) = limit {
                builder = builder.max_in_flight(limit);
            }
            let hive = builder.build().unwrap();
            let seen = Seen::default();
            for key in 0..AGENTS as u64 {
                hive.spawn(seen.replier(key, None, heavy));
            }
            let case = format!("heavy {heavy}, max_in_flight {limit:?}");
            let started = Instant::now();
            let decision = tokio::time::timeout(Duration::from_secs(3_600), hive.decide())
                .await
                .expect("the round ends")
                .expect("the round decides");
            assert_eq!(started.elapsed(), timeout * waves, "{case}");
            assert_eq!(timed_out_proposers(&decision), AGENTS, "{case}: {decision}");
            let mut failed: Vec<_> = decision.failures.iter().map(|f| f.agent).collect();
            failed.sort();
            failed.dedup();
            assert_eq!(failed.len(), AGENTS, "{case}: each agent once");
            assert_eq!(decision.proposals, 0, "{case}");
            assert_eq!(decision.version, 0, "{case}");
            assert_eq!(hive.stats().timeouts, AGENTS as u64, "{case}");
            assert_eq!(
                *seen.remaining.lock(),
                vec![timeout; AGENTS],
                "{case}: every call is given a whole timeout from when it starts"
            );
            assert_eq!(seen.finished.load(Ordering::SeqCst), 0, "{case}");
        }
    }
}

fn hive_of_hangers_and_a_replier(seen: &Seen) -> Hive<Sum> {
    let hive = Hive::builder(Sum::default())
        .agent_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    for key in 0..4 {
        hive.spawn(seen.replier(key, None, key % 2 == 1));
    }
    hive.spawn(seen.replier(9, Some(Duration::from_millis(1)), false));
    hive
}

fn check_real_time_round(decision: &hivekit_hive::Decision<Sum>, context: &str) {
    assert_eq!(timed_out_proposers(decision), 4, "{context}: {decision}");
    assert_eq!(decision.accepted.len(), 1, "{context}: {decision}");
    assert!(
        decision.elapsed >= Duration::from_millis(100),
        "{context}: {:?}",
        decision.elapsed
    );
    assert!(
        decision.elapsed < Duration::from_secs(5),
        "{context}: {:?}",
        decision.elapsed
    );
}

#[test]
fn timeouts_hold_on_a_plain_thread() {
    let seen = Seen::default();
    let hive = hive_of_hangers_and_a_replier(&seen);
    let decision = std::thread::spawn(move || {
        hivekit_runtime::execute(async { tokio::time::timeout(BOUND, hive.decide()).await })
    })
    .join()
    .expect("the thread does not panic")
    .expect("the round ends")
    .expect("the round decides");
    check_real_time_round(&decision, "plain thread");
    assert_eq!(seen.finished.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_hold_on_a_multi_thread_runtime_inside_a_task() {
    let seen = Seen::default();
    let hive = hive_of_hangers_and_a_replier(&seen);
    let decision = tokio::time::timeout(BOUND, tokio::spawn(async move { hive.decide().await }))
        .await
        .expect("the round ends")
        .expect("the task does not panic")
        .expect("the round decides");
    check_real_time_round(&decision, "multi-thread task");
    assert_eq!(seen.finished.load(Ordering::SeqCst), 1);
}
