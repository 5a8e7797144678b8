//! Finite floats restored by a resume are the floats the stage returned, bit for bit, in
//! artifacts and in the run input. Before, serde_json's default float parser read about a
//! quarter of them back one ulp off (it now parses with `float_roundtrip`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::checkpoint::{Durable, MemoryStore};
use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};

fn samples() -> Vec<f64> {
    // xorshift64*, seeded: finite f64s of every magnitude.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut out = Vec::new();
    while out.len() < 20_000 {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // Half ordinary scores in [0, 1) (as `rand` makes them), half any finite bit pattern.
        let value = if out.len() % 2 == 0 {
            (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
        } else {
            f64::from_bits(bits)
        };
        if value.is_finite() {
            out.push(value);
        }
    }
    out
}

/// A durable stage computes scores; a crash (here: a failing dependent) and a resume hand the
/// dependents the restored scores. Any user expects the same numbers back: "the report equals an
/// uninterrupted run's apart from timings and the resumed marks".
#[tokio::test]
async fn restored_f64_artifacts_are_bit_for_bit_what_the_stage_returned() {
    let expected = samples();
    let values = expected.clone();
    let broken = Arc::new(AtomicUsize::new(0));
    let gate = broken.clone();
    let pipeline = Pipeline::builder()
        .stage("scores", move |_: StageContext| {
            std::future::ready(Ok::<_, StageError>(values.clone()))
        })
        .durable()
        .stage("use", move |ctx: StageContext| {
            let first = gate.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    return Err(StageError::msg("crash"));
                }
                let scores = ctx.input::<Vec<f64>>("scores")?;
                Ok::<_, StageError>(scores.iter().map(|v| v.to_bits()).collect::<Vec<u64>>())
            }
        })
        .durable()
        .after(["scores"])
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new());
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        durable.start(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("no hang")
    .expect("starts");
    assert!(!first.report().is_success());
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        durable.resume(&pipeline, "r", RunOptions::default()),
    )
    .await
    .expect("no hang")
    .expect("resumes");
    let report = second.report();
    assert!(report.is_success());
    assert!(report.stage("scores").unwrap().resumed);
    let seen = report.artifact::<Vec<u64>>("use").unwrap();
    let wrong: Vec<(f64, f64)> = expected
        .iter()
        .zip(seen.iter())
        .filter(|(e, s)| e.to_bits() != **s)
        .map(|(e, s)| (*e, f64::from_bits(*s)))
        .take(3)
        .collect();
    assert!(
        wrong.is_empty(),
        "restored floats differ from the ones returned (returned, restored): {wrong:?}"
    );
}

/// The same for a run input read back on resume.
#[tokio::test]
async fn a_resumed_run_input_float_is_the_float_given_at_start() {
    let inputs = samples();
    let pipeline = Pipeline::builder()
        .stage("ask", |ctx: StageContext| async move {
            let input = ctx.run_input::<Vec<f64>>()?;
            match ctx.resume_value::<bool>()? {
                Some(_) => {
                    Ok::<_, StageError>(input.iter().map(|v| v.to_bits()).collect::<Vec<u64>>())
                }
                None => Err(ctx.interrupt("approve")),
            }
        })
        .durable()
        .build()
        .expect("valid");
    let durable = Durable::new(MemoryStore::new()).with_input::<Vec<f64>>();
    let options =
        RunOptions::default().with_run_input(hivekit_swarm::RunInput::serializable(inputs.clone()));
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        durable.start(&pipeline, "r", options),
    )
    .await
    .expect("no hang")
    .expect("starts");
    assert_eq!(first.interrupted_stage(), Some("ask"));
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        durable.resume_with(&pipeline, "r", true, RunOptions::default()),
    )
    .await
    .expect("no hang")
    .expect("resumes");
    let seen = second.report().artifact::<Vec<u64>>("ask").unwrap();
    let wrong = inputs
        .iter()
        .zip(seen.iter())
        .filter(|(e, s)| e.to_bits() != **s)
        .count();
    assert_eq!(wrong, 0, "run input floats changed across the checkpoint");
}
