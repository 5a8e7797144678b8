//! The concurrency limit is reached whenever enough stages are ready (and never exceeded), inline or spawned, seeded or not, for stages made ready together after a root and for roots.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{ConcurrencyLimit, Pipeline, RunOptions, StageContext, StageError};
use tokio::sync::{mpsc, Semaphore};

struct Probe {
    now: AtomicUsize,
    peak: AtomicUsize,
    open: Semaphore,
    started: mpsc::UnboundedSender<()>,
    finished: mpsc::UnboundedSender<()>,
}

fn build(probe: &Arc<Probe>, width: usize, spawned: bool, after_root: bool) -> Pipeline {
    let mut builder = Pipeline::builder();
    if after_root {
        let mut root = builder.stage("root", |_: StageContext| async { Ok::<_, StageError>(()) });
        if spawned {
            root = root.spawn();
        }
        builder = root.into();
    }
    for index in 0..width {
        let probe = probe.clone();
        let mut stage = builder.stage(format!("s{index}"), move |_: StageContext| {
            let probe = probe.clone();
            async move {
                let now = probe.now.fetch_add(1, Ordering::SeqCst) + 1;
                probe.peak.fetch_max(now, Ordering::SeqCst);
                let _ = probe.started.send(());
                probe.open.acquire().await.expect("open").forget();
                probe.now.fetch_sub(1, Ordering::SeqCst);
                let _ = probe.finished.send(());
                Ok::<_, StageError>(())
            }
        });
        if after_root {
            stage = stage.after(["root"]);
        }
        if spawned {
            stage = stage.spawn();
        }
        builder = stage.into();
    }
    builder.build().expect("a valid pipeline")
}

async fn check(width: usize, limit: usize, spawned: bool, seed: Option<u64>, after_root: bool) {
    let (started, mut started_rx) = mpsc::unbounded_channel();
    let (finished, mut finished_rx) = mpsc::unbounded_channel();
    let probe = Arc::new(Probe {
        now: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        open: Semaphore::new(0),
        started,
        finished,
    });
    let pipeline = build(&probe, width, spawned, after_root);
    let mut options =
        RunOptions::default().with_max_concurrency(ConcurrencyLimit::new(limit).unwrap());
    options.seed = seed;
    let run = tokio::spawn(async move { pipeline.run_with(options).await });
    let what =
        format!("width {width} limit {limit} spawned {spawned} seed {seed:?} root {after_root}");
    let mut began = 0;
    for done in 0..width {
        let expected = limit.min(width - done);
        while began - done < expected {
            tokio::time::timeout(Duration::from_secs(5), started_rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{what}: only {} of {expected} slots used after {done} ended",
                        began - done
                    )
                })
                .expect("live");
            began += 1;
        }
        assert_eq!(probe.now.load(Ordering::SeqCst), expected, "{what}");
        probe.open.add_permits(1);
        tokio::time::timeout(Duration::from_secs(5), finished_rx.recv())
            .await
            .expect("a stage ends")
            .expect("live");
    }
    let report = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the run ends")
        .unwrap();
    assert!(report.is_success(), "{what}: {report}");
    assert_eq!(began, width);
    assert_eq!(
        probe.peak.load(Ordering::SeqCst),
        limit.min(width),
        "{what}"
    );
}

async fn all(spawned: bool) {
    for after_root in [false, true] {
        for seed in [None, Some(3)] {
            for limit in [1, 2, 3, 7, 20] {
                check(9, limit, spawned, seed, after_root).await;
            }
        }
    }
}

#[tokio::test]
async fn inline_stages_fill_every_slot() {
    all(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_stages_fill_every_slot() {
    all(true).await;
}

#[tokio::test]
async fn spawned_stages_fill_every_slot_on_a_current_thread_runtime() {
    all(true).await;
}
