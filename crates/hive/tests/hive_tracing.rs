//! What a round logs at info level (its own test binary: tracing's callsite interest is
//! process-wide, so a subscriber set for one test is only reliable when no other test in the
//! process registers the same callsites at the same time).

mod support;

use std::time::Duration;

use hivekit_hive::Hive;
use support::{capture_logs, Behaviour, Ledger, Writer};

#[tokio::test(start_paused = true)]
async fn at_info_level_a_round_logs_its_failures_and_its_commit_in_a_named_span() {
    let (captured, _guard) = capture_logs(tracing::Level::INFO);

    let hive = Hive::builder(Ledger::default())
        .name("reviewers")
        .agent_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    hive.spawn(Writer::new(1, 7));
    hive.spawn(Writer::silent().proposing(Behaviour::Fail));
    hive.spawn(Writer::silent().proposing(Behaviour::Never));
    hive.decide().await.unwrap();

    let log = captured.text();
    let lines: Vec<&str> = log.lines().collect();
    let warnings: Vec<&&str> = lines.iter().filter(|line| line.contains("WARN")).collect();
    assert_eq!(warnings.len(), 2, "{log}");
    assert!(warnings
        .iter()
        .any(|line| line.contains("returned an error: agent failed on purpose in propose")));
    assert!(warnings
        .iter()
        .any(|line| line.contains("timed out in propose")));
    let committed = lines
        .iter()
        .find(|line| line.contains("committed"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(committed.contains("INFO"), "{committed}");
    assert!(
        committed.contains("hive_round{hive=reviewers round=1}"),
        "{committed}"
    );
}
