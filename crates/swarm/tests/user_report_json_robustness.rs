//! Reports read back from JSON that a user stored, truncated or edited by hand: every prefix and
//! every single-byte corruption of a real report is a typed error or a report whose methods
//! answer, never a panic; a report read back names stages that no longer exist without looping.

use std::time::Duration;

use hivekit_swarm::{
    Backoff, FailurePolicy, Pipeline, RetryPolicy, Route, RunOptions, RunReport, StageContext,
    StageError,
};

async fn sample_report() -> RunReport {
    let pipeline = Pipeline::builder()
        .name("sample \"quoted\" ✓")
        .stage("fetch", |_: StageContext| async {
            Ok::<_, StageError>(vec![1u32, 2, 3])
        })
        .export()
        .stage("flaky", |ctx: StageContext| async move {
            if ctx.attempt() < 2 {
                return Err(StageError::msg("once"));
            }
            Ok::<_, StageError>(())
        })
        .retry(RetryPolicy::attempts(2).with_backoff(Backoff::fixed(Duration::from_millis(1))))
        .after(["fetch"])
        .router("route", |_: StageContext| async {
            Ok::<_, StageError>(Route::to(["kept"]))
        })
        .after(["flaky"])
        .stage("kept", |_: StageContext| async { Ok::<_, StageError>(()) })
        .after(["route"])
        .stage("pruned", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["route"])
        .stage("broken", |_: StageContext| async {
            Err::<(), _>(StageError::msg("bad"))
        })
        .stage("after-broken", |_: StageContext| async {
            Ok::<_, StageError>(())
        })
        .after(["broken"])
        .build()
        .expect("valid");
    pipeline
        .run_with(RunOptions::default().with_failure(FailurePolicy::ContinueIndependent))
        .await
}

/// Calls everything a reader calls on a report.
fn exercise(report: &RunReport) {
    let _ = report.to_string();
    let _ = report.to_mermaid();
    let _ = report.to_dot();
    let _ = report.to_chrome_trace();
    let _ = report.to_json();
    let _ = report.edges();
    for stage in report.stages() {
        let _ = report.explain(&stage.name);
        let _ = report.artifact_json(&stage.name);
    }
}

#[tokio::test(start_paused = true)]
async fn every_prefix_of_a_report_reads_back_or_errs_without_panicking() {
    let json = sample_report().await.to_json().expect("serializes");
    let back = RunReport::from_json(&json).expect("whole report reads back");
    exercise(&back);
    for end in (0..json.len()).filter(|&end| json.is_char_boundary(end)) {
        let outcome = std::panic::catch_unwind(|| {
            if let Ok(report) = RunReport::from_json(&json[..end]) {
                exercise(&report);
            }
        });
        assert!(outcome.is_ok(), "panicked on the prefix of {end} bytes");
    }
}

#[tokio::test(start_paused = true)]
async fn single_byte_corruptions_across_a_report_read_back_or_err_without_panicking() {
    let json = sample_report().await.to_json().expect("serializes");
    let bytes = json.as_bytes();
    for position in (0..bytes.len()).step_by(3) {
        for replacement in [b'9', b'"', b'}'] {
            let mut edited = bytes.to_vec();
            edited[position] = replacement;
            let Ok(text) = String::from_utf8(edited) else {
                continue;
            };
            let outcome = std::panic::catch_unwind(|| {
                if let Ok(report) = RunReport::from_json(&text) {
                    exercise(&report);
                }
            });
            assert!(
                outcome.is_ok(),
                "panicked with byte {position} set to {}",
                replacement as char
            );
        }
    }
}

#[test]
fn a_hand_written_report_whose_skips_form_a_cycle_explains_without_looping() {
    let json = r#"{
        "pipeline": "edited",
        "outcome": "failed",
        "elapsed_us": 18446744073709551615,
        "stages": [
            {"name": "a", "status": {"status": "skipped", "because": {"reason": "dependency", "dependency": "b", "root": "b", "root_status": "failed"}}, "started_us": null, "elapsed_us": null},
            {"name": "b", "status": {"status": "skipped", "because": {"reason": "dependency", "dependency": "a", "root": "a", "root_status": "failed"}}, "started_us": 18446744073709551615, "elapsed_us": 18446744073709551615},
            {"name": "c", "status": {"status": "skipped", "because": {"reason": "pruned", "dependency": "gone"}}, "started_us": null, "elapsed_us": null}
        ],
        "edges": [["a", "b"], ["b", "a"], ["gone", "c"]]
    }"#;
    let report = RunReport::from_json(json).expect("well-formed");
    let explained = report.explain("a").expect("known stage");
    assert!(
        explained.starts_with("a skipped because b was skipped because a"),
        "{explained}"
    );
    assert_eq!(
        report.explain("c").as_deref(),
        Some("c skipped because gone ")
    );
    exercise(&report);
}
