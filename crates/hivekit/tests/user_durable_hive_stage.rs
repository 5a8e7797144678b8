//! A durable pipeline whose hive_stage committed before a crash is restored on resume, not decided (and committed) a second time.
#![cfg(all(
    feature = "durable",
    feature = "serde",
    feature = "runtime",
    feature = "hive"
))]

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hivekit::hive::{
    Agent, AgentContext, AgentError, Decision, Hive, Proposal, ProposalId, Snapshot, State,
};
use hivekit::runtime::execute;
use hivekit::swarm::checkpoint::{Durable, RedbStore};
use hivekit::swarm::{
    hive_stage, EventSink, Pipeline, RunOptions, StageContext, StageError, StageEvent,
};

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Default)]
struct Ledger(Vec<i64>);

impl State for Ledger {
    type Key = String;
    type Change = i64;
    fn apply(&mut self, change: &i64) {
        self.0.push(*change);
    }
}

struct Payer(Arc<AtomicUsize>);

impl Agent<Ledger> for Payer {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<Proposal<String, i64>>, AgentError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Some(
            Proposal::new(ProposalId(1), 7).writes(["ledger".to_owned()]),
        ))
    }
}

async fn within<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut sleep = std::pin::pin!(hivekit::runtime::sleep(TIMEOUT));
    let output = std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await;
    output.unwrap_or_else(|| panic!("did not finish within {TIMEOUT:?}"))
}

fn pipeline(hive: &Hive<Ledger>, block: Arc<AtomicBool>) -> Pipeline {
    Pipeline::builder()
        .durable()
        .stage("pay", hive_stage(hive.clone()))
        .durable()
        .stage("confirm", move |ctx: StageContext| {
            let block = block.clone();
            async move {
                let decision = ctx.input::<Decision<Ledger>>("pay")?;
                if block.load(Ordering::SeqCst) {
                    ctx.progress(1, 1);
                    std::future::pending::<()>().await;
                }
                Ok::<_, StageError>(decision.version)
            }
        })
        .durable()
        .after(["pay"])
        .build()
        .expect("a durable pipeline with a hive stage")
}

#[test]
fn a_committed_round_is_not_decided_again_on_resume() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("hivekit-user-durable-hive-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let proposals = Arc::new(AtomicUsize::new(0));
    let hive = Hive::builder(Ledger::default()).build().unwrap();
    hive.spawn(Payer(proposals.clone()));
    let durable = Durable::new(RedbStore::open(dir.join("runs.redb")).unwrap());

    execute(async {
        let block = Arc::new(AtomicBool::new(true));
        let crashing = pipeline(&hive, block.clone());
        let (sink, mut events) = EventSink::channel();
        {
            let mut run = std::pin::pin!(durable.start(
                &crashing,
                "payment-1",
                RunOptions::default().with_events(sink)
            ));
            let mut in_flight = std::pin::pin!(async {
                while let Some(event) = events.recv().await {
                    if matches!(event, StageEvent::Progress { .. }) {
                        return;
                    }
                }
                panic!("no stage reported progress");
            });
            within(std::future::poll_fn(|cx| {
                if run.as_mut().poll(cx).is_ready() {
                    panic!("the run ended although confirm blocks");
                }
                in_flight.as_mut().poll(cx)
            }))
            .await;
        } // the run is dropped here: the crash
        assert_eq!(hive.memory().load().0, vec![7]);
        assert_eq!(proposals.load(Ordering::SeqCst), 1);

        block.store(false, Ordering::SeqCst);
        let report = within(durable.resume(&crashing, "payment-1", RunOptions::default()))
            .await
            .expect("the run resumes")
            .into_report();
        assert!(report.is_success(), "{report}");
        assert!(
            report.stage("pay").unwrap().resumed,
            "the paid round is restored"
        );
        assert_eq!(
            proposals.load(Ordering::SeqCst),
            1,
            "no second round was held"
        );
        assert_eq!(
            hive.memory().load().0,
            vec![7],
            "the payment was committed once"
        );
        assert_eq!(*report.artifact::<u64>("confirm").unwrap(), 1);
        let restored = report.artifact::<Decision<Ledger>>("pay").unwrap();
        assert_eq!(restored.version, 1);
        assert_eq!(restored.accepted, vec![ProposalId(1)]);
    });
    let _ = std::fs::remove_dir_all(&dir);
}
