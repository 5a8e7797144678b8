//! A pipeline on an application's own runtime, adopted by `hivekit_runtime::configure(handle)`:
//! a run with no runtime of its own falls back to the global one, which is now the application's
//! (own process: the global runtime is process-wide).

use std::sync::{Arc, Mutex};

use hivekit_swarm::{Pipeline, RunOutcome, StageContext, StageError};

type Seen = Arc<Mutex<Vec<(tokio::runtime::Id, Option<String>)>>>;

fn record(
    seen: &Seen,
) -> impl Fn(StageContext) -> futures::future::BoxFuture<'static, Result<(), StageError>>
       + Send
       + Sync
       + 'static {
    let seen = Arc::clone(seen);
    move |_ctx: StageContext| {
        let seen = Arc::clone(&seen);
        Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            seen.lock().unwrap().push((
                tokio::runtime::Handle::current().id(),
                std::thread::current().name().map(str::to_owned),
            ));
            Ok(())
        })
    }
}

#[test]
fn a_pipeline_runs_on_an_adopted_application_runtime() {
    let app = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("app-worker")
        .enable_all()
        .build()
        .unwrap();
    hivekit_runtime::configure(app.handle().clone()).unwrap();
    let seen: Seen = Arc::default();
    let pipeline = Pipeline::builder()
        .stage("inline", record(&seen))
        .inline()
        .stage("spawned", record(&seen))
        .after(["inline"])
        .spawn()
        .build()
        .unwrap();
    // Polled by an executor that is no tokio runtime: the run falls back to the global runtime.
    let report = futures::executor::block_on(pipeline.run());
    assert_eq!(report.outcome(), RunOutcome::Succeeded);
    // Through the bridge, too.
    let report = hivekit_runtime::execute(pipeline.run());
    assert_eq!(report.outcome(), RunOutcome::Succeeded);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter().all(|(id, _)| *id == app.handle().id()),
        "{seen:?}"
    );
    // The spawned stage ran on one of the application's workers.
    assert_eq!(seen[1].1.as_deref(), Some("app-worker"));
    assert_eq!(hivekit_runtime::stats().runtimes_built, 0);
}
