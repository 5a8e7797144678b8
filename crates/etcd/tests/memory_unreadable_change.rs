//! A change whose JSON would not read back (serde_json writes a NaN float as `null`) is refused at
//! commit with a typed error and nothing written; before, etcd accepted it and then no other
//! process could follow or reopen the memory (found by qa2).

mod support;

use std::time::Duration;

use hivekit_etcd::{EtcdMemory, Whole};
use hivekit_hive::{Memory, Proposal, ProposalId, ProposalOf, State};
use serde::{Deserialize, Serialize};
use support::{commit, config, etcd};

/// A reading, set by each change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Gauge {
    reading: f64,
    sets: u64,
}

impl State for Gauge {
    type Key = u64;
    type Change = f64;
    fn apply(&mut self, reading: &f64) {
        self.reading = *reading;
        self.sets += 1;
    }
}

fn set(id: u64, reading: f64) -> ProposalOf<Gauge> {
    Proposal::new(ProposalId(id), reading).writes([0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_json_cannot_carry_is_refused_at_commit_and_the_memory_goes_on() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "nan");
    let writer = EtcdMemory::<Gauge, Whole>::open(config.clone(), Gauge::default())
        .await
        .unwrap();
    let follower = EtcdMemory::<Gauge, Whole>::open(config.clone(), Gauge::default())
        .await
        .unwrap();
    let error = commit(&writer, 1, 0, &[set(1, f64::NAN)], 1)
        .await
        .expect_err("a NaN reading does not read back from JSON");
    assert!(!error.may_have_committed(), "{error}");
    assert!(error.to_string().contains("does not read back"), "{error}");
    assert_eq!(writer.snapshot().version(), 0);

    let committed = commit(&writer, 2, 0, &[set(2, 1.5)], 1).await.unwrap();
    assert_eq!(committed.version, 1);
    let followed = tokio::time::timeout(Duration::from_secs(3), follower.changed(0))
        .await
        .expect("the other process followed")
        .unwrap();
    assert_eq!((followed.reading, followed.sets), (1.5, 1));
    let reopened = EtcdMemory::<Gauge, Whole>::open(config.clone(), Gauge::default())
        .await
        .expect("the memory reopens");
    assert_eq!(reopened.snapshot().sets, 1);
}
