//! `sleep` and `sleep_until` time work on any runtime: on the current one's timer when it has one
//! (so paused time controls them), else on the global runtime's.

use std::time::{Duration, Instant};

#[test]
fn a_runtime_without_timers_borrows_the_global_timer() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime without timers");
    let started = Instant::now();
    runtime.block_on(async {
        hivekit_runtime::sleep(Duration::from_millis(10)).await;
        let at = tokio::time::Instant::now() + Duration::from_millis(10);
        hivekit_runtime::sleep_until(at).await;
    });
    assert!(started.elapsed() >= Duration::from_millis(20));
}

#[tokio::test(start_paused = true)]
async fn a_runtime_with_timers_keeps_them_so_paused_time_applies() {
    let started = tokio::time::Instant::now();
    let real = Instant::now();
    hivekit_runtime::sleep(Duration::from_secs(3600)).await;
    assert_eq!(started.elapsed(), Duration::from_secs(3600));
    assert!(real.elapsed() < Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn a_duration_too_long_for_an_instant_sleeps_for_decades() {
    let sleep = hivekit_runtime::sleep(Duration::MAX);
    let years = sleep.deadline() - tokio::time::Instant::now();
    assert!(years >= Duration::from_secs(86_400 * 365 * 29));
}
