//! A durable pipeline may hold a loop whose body restores every stage (its iterations are
//! checkpointed and restored one by one), and not one whose body does not. Before, every loop
//! stage failed the durable check (`NotDurable`, for a `LoopReport` that cannot be declared
//! durable).

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{
    BuildError, LoopPolicy, LoopReport, Pipeline, RunOptions, StageContext, StageError,
};

#[test]
fn a_durable_pipeline_may_hold_a_loop_whose_body_is_durable() {
    let body = Pipeline::builder()
        .stage("step", |_: StageContext| async {
            Ok::<_, StageError>(1_u32)
        })
        .durable()
        .build()
        .unwrap();
    let built = Pipeline::builder()
        .durable()
        .repeat("loop", body, LoopPolicy::new(2))
        .build();
    assert!(built.is_ok(), "{:?}", built.err());
}

#[test]
fn a_durable_pipeline_refuses_a_loop_whose_body_has_a_stage_it_cannot_restore() {
    let body = Pipeline::builder()
        .stage("step", |_: StageContext| async {
            Ok::<_, StageError>(1_u32)
        })
        .build()
        .unwrap();
    let built = Pipeline::builder()
        .durable()
        .repeat("loop", body, LoopPolicy::new(2))
        .build();
    assert!(
        matches!(&built, Err(BuildError::NotDurable { stage, .. }) if stage == "loop"),
        "{:?}",
        built.err()
    );
}

#[test]
fn a_durable_pipeline_checks_loops_nested_in_loops() {
    let durable_body = || {
        Pipeline::builder()
            .stage("step", |_: StageContext| async {
                Ok::<_, StageError>(1_u32)
            })
            .durable()
            .build()
            .unwrap()
    };
    let plain_body = Pipeline::builder()
        .stage("step", |_: StageContext| async {
            Ok::<_, StageError>(1_u32)
        })
        .build()
        .unwrap();
    let nested = |body: Pipeline| {
        Pipeline::builder()
            .repeat("inner", body, LoopPolicy::new(2))
            .build()
            .unwrap()
    };
    let outer = |body: Pipeline| {
        Pipeline::builder()
            .durable()
            .repeat("outer", body, LoopPolicy::new(2))
            .build()
    };
    assert!(outer(nested(durable_body())).is_ok());
    assert!(outer(nested(plain_body)).is_err());
}

#[tokio::test]
async fn a_loop_in_a_durable_pipeline_is_restored_iteration_by_iteration() {
    let body = Pipeline::builder()
        .stage("step", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.run_input::<hivekit_swarm::Iteration>()?.number())
        })
        .durable()
        .build()
        .unwrap();
    let pipeline = |broken: bool| {
        Pipeline::builder()
            .durable()
            .repeat("loop", body.clone(), LoopPolicy::new(3))
            .stage("after", move |_: StageContext| async move {
                if broken {
                    return Err(StageError::permanent("not yet"));
                }
                Ok::<_, StageError>(())
            })
            .after(["loop"])
            .build()
            .unwrap()
    };
    let durable = Durable::new(MemoryStore::new());
    let first = durable
        .start(&pipeline(true), "r", RunOptions::default())
        .await
        .unwrap();
    assert!(!first.report().is_success());
    let second = durable
        .resume(&pipeline(false), "r", RunOptions::default())
        .await
        .unwrap();
    let report = second.report();
    assert!(report.is_success(), "{report:?}");
    let looped = report.artifact::<LoopReport>("loop").unwrap();
    assert_eq!(looped.iterations.len(), 3);
    for (at, iteration) in looped.iterations.iter().enumerate() {
        assert!(iteration.stage("step").unwrap().resumed);
        assert_eq!(*iteration.artifact::<u32>("step").unwrap(), at as u32 + 1);
    }
}
