//! A decision's fate is settled once, for every caller, even when callers race: a commit and a
//! `resolve` of the same decision sent at once agree (the commit lands and `resolve` reports its
//! version, or `resolve` fences it and the commit fails `Fenced`), and one decision committed by
//! many callers at once lands exactly once, every caller reporting the version it created.
//!
//! Promises: `EtcdMemory::resolve` "settles the outcome of a decision for good: the version it
//! created, or `None` after fencing it off so that it can never commit"; the `EtcdMemory` docs "the
//! transaction only applies while that id is absent, so it lands at most once, and a retry that
//! finds the id reports the version it created"; `Memory`: "a change is applied exactly once".

mod support;

use std::sync::Arc;
use std::time::Duration;

use hivekit_etcd::{EtcdError, EtcdMemory, Whole};
use hivekit_hive::{Memory, MemoryError};
use support::{add, caught_up, commit, config, etcd, Ledger};

type LedgerMemory = EtcdMemory<Ledger, Whole>;

/// Whether `error` is the memory's "fenced off" refusal.
fn is_fenced(error: &MemoryError) -> bool {
    match error {
        MemoryError::Backend { source } => matches!(
            source.downcast_ref::<EtcdError>(),
            Some(EtcdError::Fenced { .. })
        ),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_and_a_resolve_of_one_decision_sent_at_once_agree_on_its_fate() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "commit-resolve-race");
    let committer = Arc::new(
        LedgerMemory::open(config.clone(), Ledger::default())
            .await
            .unwrap(),
    );
    let resolver = Arc::new(
        LedgerMemory::open(config.clone(), Ledger::default())
            .await
            .unwrap(),
    );
    let mut landed = Vec::new();
    let mut fenced = 0;
    for decision in 1..=30_u64 {
        let id = u128::from(decision) << 70 | 0xd1;
        let (memory, other) = (Arc::clone(&committer), Arc::clone(&resolver));
        let committing = tokio::spawn(async move {
            let base = memory.snapshot().version();
            commit(&*memory, id, base, &[add(decision, 1, 1)], 1).await
        });
        // Give the commit a head start that varies, so that both orders are seen.
        for _ in 0..(decision % 4) {
            tokio::task::yield_now().await;
        }
        let resolving = tokio::spawn(async move { other.resolve(id).await });
        let (committed, resolved) = tokio::time::timeout(Duration::from_secs(20), async {
            (committing.await.unwrap(), resolving.await.unwrap())
        })
        .await
        .expect("the commit and the resolve answered");
        let resolved = resolved.expect("etcd is up: resolve answers");
        match (&committed, resolved) {
            (Ok(done), Some(version)) => {
                assert_eq!(
                    done.version, version,
                    "decision {decision}: resolve names the version the commit created"
                );
                landed.push((id, version));
            }
            (Err(error), None) => {
                assert!(
                    is_fenced(error),
                    "decision {decision}: a fenced commit fails `Fenced`, got {error:?}"
                );
                fenced += 1;
            }
            (committed, resolved) => panic!(
                "decision {decision}: the commit says {committed:?} while resolve says {resolved:?}"
            ),
        }
        // Settled for good: a later resolve, from either handle, answers the same.
        let again = if let Some((_, version)) = landed.last().filter(|(last, _)| *last == id) {
            Some(*version)
        } else {
            None
        };
        assert_eq!(committer.resolve(id).await.unwrap(), again);
        assert_eq!(resolver.resolve(id).await.unwrap(), again);
    }
    // Exactly the landed decisions were applied, each once, in a gapless history.
    let landed_count = landed.len() as u64;
    let state = caught_up(&*resolver, landed_count, Duration::from_secs(10)).await;
    assert_eq!(
        (
            state.version(),
            state.applied,
            state.counters.get(&1).copied()
        ),
        (
            landed_count,
            landed_count,
            (landed_count > 0).then_some(landed_count as i64)
        ),
        "{fenced} fenced, {landed_count} landed"
    );
    let history = resolver.history(1, landed_count).await.unwrap();
    let versions: Vec<u64> = history.iter().map(|entry| entry.version).collect();
    assert_eq!(versions, (1..=landed_count).collect::<Vec<_>>());
    for (id, version) in &landed {
        let entry = &history[(*version - 1) as usize];
        assert_eq!(entry.decision_id, format!("{id:032x}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_decision_committed_by_many_callers_at_once_lands_once_and_each_reports_its_version() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "same-decision-race");
    let handles: Vec<Arc<LedgerMemory>> = vec![
        Arc::new(
            LedgerMemory::open(config.clone(), Ledger::default())
                .await
                .unwrap(),
        ),
        Arc::new(
            LedgerMemory::open(config.clone(), Ledger::default())
                .await
                .unwrap(),
        ),
    ];
    for decision in 1..=8_u64 {
        let id = 0xabc0_u128 + u128::from(decision);
        let base = decision - 1;
        let mut callers = Vec::new();
        for caller in 0..8 {
            let memory = Arc::clone(&handles[caller % 2]);
            callers.push(tokio::spawn(async move {
                commit(&*memory, id, base, &[add(decision, 7, 1)], 1).await
            }));
        }
        let mut versions = Vec::new();
        for caller in callers {
            let committed = tokio::time::timeout(Duration::from_secs(20), caller)
                .await
                .expect("each caller answered")
                .unwrap()
                .unwrap_or_else(|error| panic!("decision {decision}: {error}"));
            versions.push(committed.version);
        }
        assert!(
            versions.iter().all(|version| *version == decision),
            "decision {decision}: every caller reports the one version it created: {versions:?}"
        );
        for memory in &handles {
            let state = caught_up(&**memory, decision, Duration::from_secs(10)).await;
            assert_eq!(
                (state.version(), state.applied, state.counters[&7]),
                (decision, decision, decision as i64),
                "decision {decision} applied exactly once"
            );
        }
    }
    let history = handles[0].history(1, 8).await.unwrap();
    assert_eq!(history.len(), 8, "one version per decision");
}
