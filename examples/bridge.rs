//! Synchronous code calling async code through the global runtime.
//!
//! A plain, blocking "command-line tool" loads agent configurations with async helpers (a timer
//! stands in for I/O), fans work out to tasks, calls back into async code from a blocking thread,
//! and finally shows what the bridge did. Run with `cargo run -p hivekit-examples --example bridge`.

use std::time::Duration;

use hivekit_runtime::{execute, spawn, spawn_blocking, stats, try_execute, RuntimeError};

/// Pretends to fetch an agent's configuration over the network.
async fn fetch_config(agent: u32) -> String {
    tokio::time::sleep(Duration::from_millis(u64::from(agent % 3))).await;
    format!("agent-{agent}: threshold={}", 50 + agent)
}

/// Already in memory: ready on the first poll, so `execute` takes the fast path.
async fn cached_version() -> &'static str {
    "v1.4.2"
}

fn main() -> Result<(), RuntimeError> {
    // Plain synchronous code: no runtime in sight, no `async fn main`.
    let version = execute(cached_version());
    println!("configuration schema {version}");

    let first = execute(fetch_config(1));
    println!("fetched {first}");

    // Fan out on the shared runtime, then wait for all of them from sync code.
    let tasks: Vec<_> = (2..6).map(|agent| spawn(fetch_config(agent))).collect();
    let configs = execute(async {
        let mut configs = Vec::new();
        for task in tasks {
            configs.push(task.await.expect("config task does not panic"));
        }
        configs
    });
    for config in &configs {
        println!("fetched {config}");
    }

    // A blocking job on the runtime's blocking pool may itself bridge back into async code.
    let checksum = execute(spawn_blocking(|| {
        let text = execute(fetch_config(9));
        text.bytes().map(u64::from).sum::<u64>()
    }))
    .expect("blocking job does not panic");
    println!("checksum of agent-9 config: {checksum}");

    // Inside a current-thread runtime blocking would deadlock: the bridge says so instead.
    let local = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let refused = local.block_on(async { try_execute(fetch_config(10)) });
    if let Err(error) = refused {
        println!("refused as expected: {error}");
    }

    // `try_execute` is the non-panicking form.
    let again = try_execute(cached_version())?;
    println!("schema still {again}");

    let counts = stats();
    println!(
        "stats: {} executes ({} on the fast path, {} blocked), {} spawns, {} blocking spawns, \
         {} refused",
        counts.executes,
        counts.fast_path_hits,
        counts.slow_path(),
        counts.spawns,
        counts.blocking_spawns,
        counts.would_deadlock,
    );
    Ok(())
}
