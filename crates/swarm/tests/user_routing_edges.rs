//! Routing as LangGraph users write it: a join reading the parent whose route was not taken, a
//! router that succeeds only on a retry, a route naming a successor twice, a router without
//! successors, two routers feeding one join.

use std::time::Duration;

use hivekit_swarm::{
    ArtifactError, Backoff, Pipeline, RetryPolicy, Route, RunReport, SkipReason, StageContext,
    StageError, StageStatus,
};

async fn bounded(pipeline: &Pipeline) -> RunReport {
    tokio::time::timeout(Duration::from_secs(5), pipeline.run())
        .await
        .expect("no hang")
}

#[tokio::test]
async fn a_join_reading_the_parent_not_taken_gets_a_typed_missing_error() {
    let pipeline = Pipeline::builder()
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::to(["left"]))
        })
        .stage("left", |_: StageContext| async {
            Ok::<_, StageError>(1u32)
        })
        .after(["route"])
        .stage("right", |_: StageContext| async {
            Ok::<_, StageError>(2u32)
        })
        .after(["route"])
        .stage("join", |ctx: StageContext| async move {
            let left = *ctx.input::<u32>("left")?;
            let right = ctx.input::<u32>("right").map(|value| *value);
            Ok::<_, StageError>((left, right))
        })
        .after(["left", "right"])
        .build()
        .expect("valid");
    let report = bounded(&pipeline).await;
    assert!(report.is_success());
    let joined = report
        .artifact::<(u32, Result<u32, ArtifactError>)>("join")
        .expect("artifact");
    assert_eq!(joined.0, 1);
    assert!(
        matches!(&joined.1, Err(ArtifactError::Missing { stage }) if stage == "right"),
        "{:?}",
        joined.1
    );
    assert_eq!(
        report.status("right"),
        Some(&StageStatus::Skipped {
            because: SkipReason::RouteNotTaken {
                router: "route".into()
            }
        })
    );
}

#[tokio::test]
async fn a_router_that_succeeds_on_its_retry_routes_by_that_attempt() {
    let pipeline = Pipeline::builder()
        .router("route", |ctx: StageContext| async move {
            if ctx.attempt() == 1 {
                return Err(StageError::msg("classifier busy"));
            }
            Ok::<_, StageError>(Route::to(["b"]))
        })
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .stage("a", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["route"])
        .stage("b", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["route"])
        .build()
        .expect("valid");
    let report = bounded(&pipeline).await;
    assert!(report.is_success());
    assert_eq!(
        report.status("route"),
        Some(&StageStatus::Succeeded { attempts: 2 })
    );
    assert_eq!(
        report.status("b"),
        Some(&StageStatus::Succeeded { attempts: 1 })
    );
    assert!(matches!(
        report.status("a"),
        Some(StageStatus::Skipped {
            because: SkipReason::RouteNotTaken { .. }
        })
    ));
}

#[tokio::test]
async fn a_route_naming_a_successor_twice_runs_it_once() {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    let pipeline = Pipeline::builder()
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::to(["a", "a"]))
        })
        .stage("a", move |_: StageContext| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok::<_, StageError>(()) }
        })
        .after(["route"])
        .build()
        .expect("valid");
    let report = bounded(&pipeline).await;
    assert!(report.is_success());
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_router_without_successors_routing_to_nothing_succeeds() {
    let pipeline = Pipeline::builder()
        .router("lonely", |_: StageContext| async {
            Ok::<_, StageError>(Route::none())
        })
        .stage("other", |_: StageContext| async { Ok::<_, StageError>(()) })
        .build()
        .expect("valid");
    let report = bounded(&pipeline).await;
    assert!(report.is_success());
    assert_eq!(
        *report
            .artifact::<Route>("lonely")
            .expect("the route is its artifact"),
        Route::none()
    );
}

#[tokio::test]
async fn a_join_after_two_routers_runs_if_either_route_is_taken_and_is_pruned_if_neither() {
    fn pipeline(first: bool, second: bool) -> Pipeline {
        Pipeline::builder()
            .router("r1", move |_: StageContext| async move {
                Ok::<_, StageError>(if first { Route::all() } else { Route::none() })
            })
            .router("r2", move |_: StageContext| async move {
                Ok::<_, StageError>(if second { Route::all() } else { Route::none() })
            })
            .stage("x", |_: StageContext| async { Ok::<_, StageError>(()) })
            .after(["r1"])
            .stage("y", |_: StageContext| async { Ok::<_, StageError>(()) })
            .after(["r2"])
            .stage("join", |_: StageContext| async { Ok::<_, StageError>(()) })
            .after(["x", "y"])
            .build()
            .expect("valid")
    }
    for (first, second) in [(true, true), (true, false), (false, true)] {
        let report = bounded(&pipeline(first, second)).await;
        assert!(report.is_success());
        assert_eq!(
            report.status("join"),
            Some(&StageStatus::Succeeded { attempts: 1 }),
            "{first} {second}"
        );
    }
    let report = bounded(&pipeline(false, false)).await;
    assert!(report.is_success());
    assert!(matches!(
        report.status("join"),
        Some(StageStatus::Skipped { because }) if because.is_pruned()
    ));
}
