//! Racing `configure` calls: exactly one wins (fresh process: own file).

use std::sync::Barrier;

use hivekit_runtime::{active_config, configure, RuntimeConfig, RuntimeError};

#[test]
fn exactly_one_racing_configure_wins() {
    let threads = 12;
    let barrier = Barrier::new(threads);
    let results: Vec<(usize, Result<(), RuntimeError>)> = std::thread::scope(|scope| {
        let joins: Vec<_> = (0..threads)
            .map(|index| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let config = RuntimeConfig {
                        worker_threads: Some(1 + index % 3),
                        thread_name: format!("racer-{index}"),
                        ..RuntimeConfig::default()
                    };
                    (index, configure(config))
                })
            })
            .collect();
        joins.into_iter().map(|join| join.join().unwrap()).collect()
    });
    let winners: Vec<usize> = results
        .iter()
        .filter(|(_, result)| result.is_ok())
        .map(|(index, _)| *index)
        .collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert!(results
        .iter()
        .all(|(_, result)| matches!(result, Ok(()) | Err(RuntimeError::AlreadyInitialized))));
    assert_eq!(hivekit_runtime::stats().runtimes_built, 1);

    // The runtime is the winner's.
    let winner = winners[0];
    let config = active_config().unwrap();
    assert_eq!(config.thread_name, format!("racer-{winner}"));
    assert_eq!(config.worker_threads, Some(1 + winner % 3));
    assert_eq!(
        hivekit_runtime::handle().metrics().num_workers(),
        1 + winner % 3
    );
    let name = hivekit_runtime::execute(hivekit_runtime::spawn(async {
        std::thread::current().name().map(str::to_owned)
    }))
    .unwrap();
    assert_eq!(name, Some(format!("racer-{winner}")));
}
