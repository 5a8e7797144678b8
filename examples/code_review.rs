//! A code-review pipeline, built once and run for each pull request:
//!
//! ```text
//! fetch -> analyse (fan-out over files) -+-> triage (router) -+-> draft -> critique loop -> post -+-> summary
//!       -> lint (flaky, retry_on) -------+                    +-> approve ------------------------+
//! ```
//!
//! - Each run gets its pull request as the run's input (`ctx.run_input::<PullRequest>()`).
//! - `analyse` fans out over the changed files, four at a time; the analysis service is flaky, and
//!   a failed file is retried on its own (`FanOut::retry`), not the whole stage.
//! - `lint` shells out to a flaky linter: a time-out is retried, a crash is not (`retry_on` looks at
//!   the `io::Error` the stage returned with `?`).
//! - `triage` is a router: with nothing found it routes to `approve` and posting is skipped
//!   ("route not taken").
//! - `critique` is a bounded loop: draft, critique, revise, until the critic approves (at most 4
//!   rounds).
//! - A progress bar (indicatif) follows the run's events; the report is written to JSON, read
//!   back, and drawn as a Mermaid flowchart and a Chrome trace (open it in Perfetto).
//!
//! Everything is simulated in process (no network) and the example runs in well under a second.
//! Run it with `cargo run -p hivekit-examples --example code_review`.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    AttemptFailure, Backoff, EventSink, FanOut, Iteration, LoopPolicy, LoopReport, Pipeline,
    RetryPolicy, Route, RunOptions, RunReport, StageContext, StageError, StageEvent,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// The run's input: one pull request.
#[derive(Debug, Clone, Serialize)]
struct PullRequest {
    number: u32,
    files: Vec<ChangedFile>,
}

#[derive(Debug, Clone, Serialize)]
struct ChangedFile {
    path: String,
    content: String,
}

#[derive(Debug, Clone, Serialize)]
struct Finding {
    path: String,
    line: usize,
    message: String,
}

/// The simulated analysis service: each file's first request fails (it "warms up").
#[derive(Default)]
struct AnalysisService {
    warmed_up: parking_lot::Mutex<HashSet<String>>,
}

impl AnalysisService {
    async fn analyse(&self, file: &ChangedFile) -> Result<Vec<Finding>, StageError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if self.warmed_up.lock().insert(file.path.clone()) && file.path.ends_with("lib.rs") {
            return Err(StageError::msg(format!(
                "analysis of {} timed out upstream",
                file.path
            )));
        }
        Ok(file
            .content
            .lines()
            .enumerate()
            .filter(|(_, line)| line.contains(".unwrap()") || line.contains("TODO"))
            .map(|(index, line)| Finding {
                path: file.path.clone(),
                line: index + 1,
                message: format!("look again at `{}`", line.trim()),
            })
            .collect())
    }
}

/// The simulated linter: its first run for a pull request times out.
fn run_linter(attempt: u32, files: &[ChangedFile]) -> io::Result<Vec<String>> {
    if attempt == 1 {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "linter timed out"));
    }
    Ok(files
        .iter()
        .filter(|file| file.content.lines().any(|line| line.len() > 60))
        .map(|file| format!("{}: line longer than 60 characters", file.path))
        .collect())
}

/// The critique loop's body: revise the draft, then critique it.
fn critique_body() -> Result<Pipeline, hivekit_swarm::BuildError> {
    Pipeline::builder()
        .name("critique")
        .stage("revise", |ctx: StageContext| async move {
            let iteration = ctx.run_input::<Iteration>()?;
            let text = match iteration.previous() {
                Some(previous) => previous.artifact::<String>("revise")?.to_string(),
                None => iteration.parent().input::<String>("draft")?.to_string(),
            };
            tokio::time::sleep(Duration::from_millis(3)).await; // an LLM call, say
            Ok::<_, StageError>(match iteration.number() {
                1 => text,
                2 => format!("{text}\nThanks for the change!"),
                _ => format!("{text}\n(Please ping me when it is updated.)"),
            })
        })
        .stage("critic", |ctx: StageContext| async move {
            let text = ctx.input::<String>("revise")?;
            Ok::<_, StageError>(text.contains("Thanks"))
        })
        .after(["revise"])
        .build()
}

fn review_pipeline() -> Result<Pipeline, hivekit_swarm::BuildError> {
    let service = Arc::new(AnalysisService::default());
    Pipeline::builder()
        .name("code-review")
        .default_timeout(Duration::from_secs(5))
        .stage("fetch", |ctx: StageContext| async move {
            let pr = ctx.run_input::<PullRequest>()?;
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, StageError>(pr.files.clone())
        })
        .stage("analyse", move |ctx: StageContext| {
            let service = service.clone();
            async move {
                let files = ctx.input::<Vec<ChangedFile>>("fetch")?;
                let policy = FanOut::new(4).retry(
                    RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_millis(5))),
                );
                let findings = ctx
                    .fan_out(files.iter().cloned(), policy, |file| {
                        let service = service.clone();
                        async move { service.analyse(&file).await }
                    })
                    .await?;
                Ok::<_, StageError>(
                    findings
                        .into_successes()
                        .flatten()
                        .collect::<Vec<Finding>>(),
                )
            }
        })
        .after(["fetch"])
        .export()
        .stage("lint", |ctx: StageContext| async move {
            let files = ctx.input::<Vec<ChangedFile>>("fetch")?;
            Ok::<_, StageError>(run_linter(ctx.attempt(), &files)?)
        })
        .after(["fetch"])
        .retry(RetryPolicy::attempts(3).with_backoff(Backoff::fixed(Duration::from_millis(10))))
        .retry_on(|failure| match failure {
            AttemptFailure::Error { error } => error
                .downcast_ref::<io::Error>()
                .is_some_and(|error| error.kind() == io::ErrorKind::TimedOut),
            _ => true,
        })
        .export()
        .router("triage", |ctx: StageContext| async move {
            let findings = ctx.input::<Vec<Finding>>("analyse")?;
            let warnings = ctx.input::<Vec<String>>("lint")?;
            Ok::<_, StageError>(if findings.is_empty() && warnings.is_empty() {
                Route::to(["approve"])
            } else {
                Route::to(["draft"])
            })
        })
        .after(["analyse", "lint"])
        .stage("draft", |ctx: StageContext| async move {
            let pr = ctx.run_input::<PullRequest>()?;
            let findings = ctx.input::<Vec<Finding>>("analyse")?;
            let warnings = ctx.input::<Vec<String>>("lint")?;
            let mut text = format!("Review of #{}:", pr.number);
            for finding in findings.iter() {
                text.push_str(&format!(
                    "\n- {}:{}: {}",
                    finding.path, finding.line, finding.message
                ));
            }
            for warning in warnings.iter() {
                text.push_str(&format!("\n- {warning}"));
            }
            Ok::<_, StageError>(text)
        })
        .after(["triage"])
        .reads(["analyse", "lint"])
        .repeat(
            "critique",
            critique_body()?,
            LoopPolicy::new(4).until(|round| round.artifact::<bool>("critic").is_ok_and(|ok| *ok)),
        )
        .after(["draft"])
        .stage("post", |ctx: StageContext| async move {
            let pr = ctx.run_input::<PullRequest>()?;
            let critique = ctx.input::<LoopReport>("critique")?;
            let comment = match critique.last() {
                Some(round) => round.artifact::<String>("revise")?.to_string(),
                None => return Err(StageError::permanent("the critique produced no comment")),
            };
            Ok::<_, StageError>(format!("posted to #{}:\n{comment}", pr.number))
        })
        .after(["critique"])
        .export()
        .stage("approve", |ctx: StageContext| async move {
            Ok::<_, StageError>(format!(
                "approved #{}",
                ctx.run_input::<PullRequest>()?.number
            ))
        })
        .after(["triage"])
        .export()
        .stage("summary", |ctx: StageContext| async move {
            let posted = ctx.input::<String>("post").ok();
            let approved = ctx.input::<String>("approve").ok();
            Ok::<_, StageError>(match (posted, approved) {
                (Some(posted), _) => format!("commented ({} lines)", posted.lines().count()),
                (None, Some(approved)) => approved.to_string(),
                (None, None) => "nothing to do".to_owned(),
            })
        })
        .after(["post", "approve"])
        .export()
        .build()
}

/// A progress bar that follows the run's events: stages done of the total, fan-out items.
fn progress_bar(stages: usize) -> (ProgressBar, EventSink) {
    let bar = ProgressBar::new(stages as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix("code-review");
    let events_bar = bar.clone();
    let sink = EventSink::callback(move |event| match event {
        StageEvent::Started { stage } => events_bar.set_message(format!("{stage} started")),
        StageEvent::Finished { done, .. }
        | StageEvent::Skipped { done, .. }
        | StageEvent::Cancelled { done, .. } => events_bar.set_position(done as u64),
        StageEvent::ItemFinished {
            stage, done, total, ..
        } => events_bar.set_message(format!("{stage}: {done}/{total} files")),
        StageEvent::Retried { stage, failure, .. } => {
            events_bar.set_message(format!("{stage} retrying: {failure}"))
        }
        _ => {}
    });
    (bar, sink)
}

fn pull_requests() -> Vec<PullRequest> {
    let file = |path: &str, content: &str| ChangedFile {
        path: path.to_owned(),
        content: content.to_owned(),
    };
    vec![
        PullRequest {
            number: 101,
            files: vec![
                file("src/lib.rs", "pub fn parse(text: &str) -> u32 {\n    text.parse().unwrap()\n}"),
                file("src/main.rs", "fn main() {\n    // TODO: flags\n}"),
                file("src/config.rs", "pub const DEFAULT_THREADS: usize = 4; // the number of worker threads to start"),
                file("README.md", "# parser"),
            ],
        },
        PullRequest {
            number: 102,
            files: vec![
                file("src/lib.rs", "pub fn add(a: u32, b: u32) -> u32 {\n    a + b\n}"),
                file("CHANGELOG.md", "- add `add`"),
            ],
        },
    ]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Built once, run for every pull request (concurrently would work as well).
    let pipeline = review_pipeline()?;
    let out_dir = std::env::temp_dir().join("hivekit-code-review");
    std::fs::create_dir_all(&out_dir)?;
    for pr in pull_requests() {
        let number = pr.number;
        let (bar, sink) = progress_bar(pipeline.len());
        let report = pipeline
            .run_with(
                RunOptions::default()
                    .with_input(pr)
                    .with_events(sink)
                    .with_seed(7),
            )
            .await;
        bar.finish_with_message(format!("{:?}", report.outcome()));
        println!("\n#{number}:\n{report}");
        if !report.is_success() {
            return Err(format!("the review of #{number} failed:\n{report}").into());
        }
        println!("summary: {}", report.artifact::<String>("summary")?);
        println!("{}", report.explain("post").unwrap_or_default());

        // The report, written and read back: statuses, failed attempts, exported artifacts.
        let json = report.to_json()?;
        let back = RunReport::from_json(&json)?;
        assert_eq!(back.to_json()?, json);
        let lint = back.stage("lint").ok_or("no lint stage in the report")?;
        for record in &lint.failed_attempts {
            println!(
                "lint attempt {} failed after {:?}: {}",
                record.attempt, record.elapsed, record.failure
            );
        }
        let mermaid = out_dir.join(format!("review-{number}.mmd"));
        std::fs::write(&mermaid, back.to_mermaid())?;
        let trace = out_dir.join(format!("review-{number}.trace.json"));
        std::fs::write(&trace, report.to_chrome_trace())?;
        std::fs::write(out_dir.join(format!("review-{number}.json")), &json)?;
        println!("wrote {} and {}", mermaid.display(), trace.display());
    }
    Ok(())
}
