//! A report with nested loops, fan-outs, routes, retries and failures reads back from JSON
//! and writes the same JSON again.

use std::time::Duration;

use hivekit_swarm::{
    Backoff, FailurePolicy, FanOut, Iteration, LoopPolicy, Pipeline, RetryPolicy, Route,
    RunOptions, RunReport, StageContext, StageError,
};

#[tokio::test]
async fn a_complex_report_round_trips_through_json_unchanged() {
    let body = Pipeline::builder()
        .stage("step", |ctx: StageContext| async move {
            let iteration = ctx.run_input::<Iteration>()?;
            if iteration.parent().attempt() == 1 && iteration.number() == 2 {
                return Err(StageError::msg("flaky iteration"));
            }
            let items = ctx
                .fan_out(0..3u32, FanOut::new(2).require(2), |item| async move {
                    if item == 1 {
                        Err(StageError::permanent("odd item"))
                    } else {
                        Ok(item)
                    }
                })
                .await?;
            Ok::<_, StageError>(items.succeeded as u32 + iteration.number())
        })
        .build()
        .unwrap();
    let pipeline = Pipeline::builder()
        .name("complex \"one\"")
        .repeat("loop", body, LoopPolicy::new(2))
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::NONE))
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::to(["left"]))
        })
        .after(["loop"])
        .stage("left", |_: StageContext| async {
            Ok::<_, StageError>(String::from("L"))
        })
        .after(["route"])
        .export()
        .stage("right", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["route"])
        .stage("broken", |ctx: StageContext| async move {
            if ctx.attempt() < 3 {
                Err::<(), _>(StageError::msg("again"))
            } else {
                Err(StageError::permanent("gave up"))
            }
        })
        .retry(RetryPolicy::attempts(4).with_backoff(Backoff::fixed(Duration::from_millis(1))))
        .stage("after_broken", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["broken"])
        .build()
        .unwrap();
    let report = tokio::time::timeout(
        Duration::from_secs(5),
        pipeline.run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent)),
    )
    .await
    .expect("run hung");
    let json = report.to_json().unwrap();
    let back = RunReport::from_json(&json).unwrap();
    assert_eq!(back.to_json().unwrap(), json);
    assert_eq!(back.outcome(), report.outcome());
    for stage in report.stages() {
        let name = &*stage.name;
        assert_eq!(back.status(name), Some(&stage.status), "{name}");
        assert_eq!(back.explain(name), report.explain(name), "{name}");
        let other = back.stage(name).unwrap();
        // Durations are whole microseconds in JSON (documented): compare the rest.
        let attempts = |records: &[hivekit_swarm::AttemptRecord]| {
            records
                .iter()
                .map(|record| {
                    (
                        record.attempt,
                        record.failure.clone(),
                        record.backoff.as_micros(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            attempts(&other.failed_attempts),
            attempts(&stage.failed_attempts),
            "{name}"
        );
        assert_eq!(other.fan_out, stage.fan_out, "{name}");
        assert_eq!(other.iterations.len(), stage.iterations.len(), "{name}");
    }
    assert_eq!(back.artifact_json("left").unwrap(), "L");
    assert_eq!(back.to_mermaid(), report.to_mermaid());
}
