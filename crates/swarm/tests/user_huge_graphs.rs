//! Huge and deep graphs: a 10k chain of routers, a 10k chain pruned at its root, a 100x100 diamond lattice passing values, loops nested in loops.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_swarm::{
    Iteration, LoopPolicy, LoopReport, Pipeline, Route, RunOptions, StageContext, StageError,
    StageStatus,
};

const LEN: usize = 10_000;

async fn bounded<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("the run ends")
}

#[tokio::test]
async fn a_ten_thousand_long_chain_of_routers_routes_to_the_end() {
    let mut builder = Pipeline::builder();
    for i in 0..LEN {
        let next = format!("r{}", i + 1);
        let stage = builder.router(format!("r{i}"), move |_: StageContext| {
            let next = next.clone();
            async move { Ok::<_, StageError>(Route::to([next])) }
        });
        builder = if i == 0 {
            stage.into_builder()
        } else {
            stage.after([format!("r{}", i - 1)]).into_builder()
        };
    }
    let pipeline = builder
        .stage(format!("r{LEN}"), |_: StageContext| async {
            Ok::<_, StageError>(7u8)
        })
        .after([format!("r{}", LEN - 1)])
        .build()
        .unwrap();
    let report = bounded(pipeline.run()).await;
    assert!(report.is_success());
    assert_eq!(*report.artifact::<u8>(&format!("r{LEN}")).unwrap(), 7);
}

#[tokio::test]
async fn a_ten_thousand_long_chain_pruned_at_its_root_explains_its_last_stage() {
    let ran = Arc::new(AtomicUsize::new(0));
    let mut builder = Pipeline::builder()
        .stage("c0", |_: StageContext| async { Ok::<_, StageError>(()) })
        .when(|_| false)
        .into_builder();
    for i in 1..LEN {
        let ran = ran.clone();
        builder = builder
            .stage(format!("c{i}"), move |_: StageContext| {
                ran.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, StageError>(()) }
            })
            .after([format!("c{}", i - 1)])
            .into_builder();
    }
    let pipeline = builder.build().unwrap();
    let report = bounded(pipeline.run()).await;
    assert!(report.is_success(), "pruned stages do not fail the run");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let explained = report.explain(&format!("c{}", LEN - 1)).unwrap();
    assert!(explained.ends_with("c0 was skipped because its condition was false"));
    assert_eq!(explained.matches(" was skipped because ").count(), LEN - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_by_hundred_lattice_counts_its_paths() {
    // g{r}_{c} after g{r-1}_{c} and g{r}_{c-1}: each holds the number of paths from g0_0 (mod 2^64).
    let n = 100;
    let mut builder = Pipeline::builder();
    for r in 0..n {
        for c in 0..n {
            let mut after = Vec::new();
            if r > 0 {
                after.push(format!("g{}_{c}", r - 1));
            }
            if c > 0 {
                after.push(format!("g{r}_{}", c - 1));
            }
            let deps = after.clone();
            let stage = builder.stage(format!("g{r}_{c}"), move |ctx: StageContext| {
                let deps = deps.clone();
                async move {
                    if deps.is_empty() {
                        return Ok::<_, StageError>(1u64);
                    }
                    let mut sum = 0u64;
                    for dep in &deps {
                        sum = sum.wrapping_add(*ctx.input::<u64>(dep)?);
                    }
                    Ok(sum)
                }
            });
            let stage = if (r + c) % 7 == 0 {
                stage.spawn()
            } else {
                stage
            };
            builder = stage.after(after).into_builder();
        }
    }
    let pipeline = builder.build().unwrap();
    // Binomial(2(n-1), n-1) mod 2^64, computed the same way.
    let mut grid = vec![vec![0u64; n]; n];
    for r in 0..n {
        for c in 0..n {
            grid[r][c] = if r == 0 && c == 0 {
                1
            } else {
                let up = if r > 0 { grid[r - 1][c] } else { 0 };
                let left = if c > 0 { grid[r][c - 1] } else { 0 };
                up.wrapping_add(left)
            };
        }
    }
    for limit in [1usize, 3, 64] {
        let report = bounded(
            pipeline.run_with(
                RunOptions::default()
                    .with_max_concurrency(hivekit_swarm::ConcurrencyLimit::new(limit).unwrap()),
            ),
        )
        .await;
        assert!(report.is_success(), "limit {limit}");
        assert_eq!(
            *report
                .artifact::<u64>(&format!("g{}_{}", n - 1, n - 1))
                .unwrap(),
            grid[n - 1][n - 1]
        );
    }
}

fn nested_loops(depth: usize) -> Pipeline {
    let mut body = Pipeline::builder()
        .stage("leaf", |ctx: StageContext| async move {
            Ok::<_, StageError>(ctx.run_input::<Iteration>()?.number())
        })
        .build()
        .unwrap();
    for level in 0..depth {
        body = Pipeline::builder()
            .repeat(format!("loop{level}"), body, LoopPolicy::new(2))
            .build()
            .unwrap();
    }
    body
}

fn nested_loops_run(depth: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pipeline = nested_loops(depth);
    let report = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), pipeline.run())
            .await
            .expect("the run ends")
    });
    assert!(report.is_success());
    let top = report
        .artifact::<LoopReport>(&format!("loop{}", depth - 1))
        .unwrap();
    assert_eq!(top.iterations.len(), 2);
    assert!(matches!(
        report.status(&format!("loop{}", depth - 1)),
        Some(StageStatus::Succeeded { attempts: 1 })
    ));
}

#[test]
fn loops_nested_ten_deep_run_on_a_default_thread() {
    // Two iterations per level: 1,024 leaf runs.
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| nested_loops_run(10))
        .unwrap()
        .join()
        .expect("ten nested loops run on a 2 MiB stack");
}

fn nested_runs(depth: usize) -> Pipeline {
    let mut inner = Pipeline::builder()
        .stage("leaf", |_: StageContext| async {
            Ok::<_, StageError>(0usize)
        })
        .build()
        .unwrap();
    for level in 1..=depth {
        let child = inner.clone();
        let previous = if level == 1 {
            "leaf".to_owned()
        } else {
            format!("nest{}", level - 1)
        };
        inner = Pipeline::builder()
            .stage(format!("nest{level}"), move |_: StageContext| {
                let child = child.clone();
                let previous = previous.clone();
                async move {
                    let report = child.run().await;
                    Ok::<_, StageError>(*report.artifact::<usize>(&previous)? + 1)
                }
            })
            .build()
            .unwrap();
    }
    inner
}

#[test]
fn pipelines_nested_as_subgraphs_thirty_two_deep_run_on_a_default_thread() {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let pipeline = nested_runs(32);
            let report = runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(60), pipeline.run())
                    .await
                    .expect("the run ends")
            });
            assert_eq!(*report.artifact::<usize>("nest32").unwrap(), 32);
        })
        .unwrap()
        .join()
        .expect("thirty-two nested pipelines run on a 2 MiB stack");
}
