//! Large artifacts through the on-disk store: a stage's megabyte artifact and a fan-out's
//! large items are checkpointed whole and read back whole on resume, from a reopened file.

mod support;

use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, RedbStore};
use hivekit_swarm::{FanOut, Pipeline, RunOptions, StageContext, StageError};

fn pipeline(broken: bool) -> Pipeline {
    Pipeline::builder()
        .stage("big", |_: StageContext| async {
            // One megabyte of text that is not one repeated byte.
            let text: String = (0..1024 * 1024_u32)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            Ok::<_, StageError>(text)
        })
        .durable()
        .stage("items", |ctx: StageContext| async move {
            let report = ctx
                .durable_fan_out(0..4_u32, FanOut::new(2), |item| async move {
                    Ok::<_, StageError>(vec![item; 64 * 1024])
                })
                .await?;
            Ok::<_, StageError>(
                report
                    .into_successes()
                    .map(|item| item.len())
                    .sum::<usize>(),
            )
        })
        .durable()
        .stage("last", move |ctx: StageContext| async move {
            if broken {
                return Err(StageError::permanent("not yet"));
            }
            Ok::<_, StageError>(ctx.input::<String>("big")?.len() + *ctx.input::<usize>("items")?)
        })
        .durable()
        .after(["big", "items"])
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabyte_artifacts_and_items_read_back_whole_from_a_reopened_file() {
    let dir = support::crash::scratch(); // tmpfs when there is one: fsyncs are not what is tested
    let path = dir.path().join("runs.redb");
    {
        let durable = Durable::new(RedbStore::open(&path).unwrap());
        let first = tokio::time::timeout(
            Duration::from_secs(30),
            durable.start(&pipeline(true), "big", RunOptions::default()),
        )
        .await
        .expect("ended")
        .expect("started");
        assert!(!first.report().is_success());
    }
    let durable = Durable::new(RedbStore::open(&path).unwrap());
    let resumed = tokio::time::timeout(
        Duration::from_secs(30),
        durable.resume(&pipeline(false), "big", RunOptions::default()),
    )
    .await
    .expect("ended")
    .expect("resumed");
    let report = resumed.report();
    assert!(report.is_success(), "{report:?}");
    assert!(report.stage("big").unwrap().resumed);
    assert!(report.stage("items").unwrap().resumed);
    let big = report.artifact::<String>("big").unwrap();
    assert_eq!(big.len(), 1024 * 1024);
    assert!(big
        .bytes()
        .enumerate()
        .all(|(i, b)| b == b'a' + (i % 26) as u8));
    assert_eq!(
        *report.artifact::<usize>("last").unwrap(),
        1024 * 1024 + 4 * 64 * 1024
    );
}
