//! Two client processes (this test binary run again) deciding on one memory while etcd compacts its
//! revisions again and again (as `--auto-compaction-retention` does): every decision commits, the
//! history stays gapless with every change once, and the stored state is the history replayed.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::child::{run_if_child, verify, Client, ClientPlan};
use support::{config, etcd};

#[test]
fn two_processes_deciding_while_etcd_compacts_lose_nothing_and_share_one_history() {
    if run_if_child() {
        return;
    }
    let server = etcd();
    let config = config(vec![server.endpoint()], "processes-compacting");
    let decisions = 60;
    let mut clients: Vec<Client> = (0..2)
        .map(|index| {
            let plan = ClientPlan {
                endpoints: vec![server.endpoint()],
                prefix: config.prefix().to_string(),
                index,
                agents: 5,
                decisions,
                lease_ttl_secs: 5,
            };
            Client::spawn(
                "two_processes_deciding_while_etcd_compacts_lose_nothing_and_share_one_history",
                &plan,
            )
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let compactions = {
        let (config, done) = (config.clone(), Arc::clone(&done));
        runtime.spawn(async move {
            let client = config.connect().await.unwrap();
            let mut compactions = 0;
            while !done.load(Ordering::Relaxed) {
                support::compact_now(&client).await;
                compactions += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            compactions
        })
    };
    for client in &mut clients {
        client.finish(Duration::from_secs(60));
    }
    done.store(true, Ordering::Relaxed);
    let compactions = runtime.block_on(compactions).unwrap();
    assert!(
        compactions > 2,
        "etcd compacted during the run ({compactions})"
    );
    for client in &clients {
        assert_eq!(
            client.committed().len(),
            decisions as usize,
            "every decision of client {} committed ({:?})",
            client.index,
            client.failed_and_unknown()
        );
    }
    let history = runtime.block_on(verify(&config, &clients, 5));
    assert_eq!(history.len(), 2 * decisions as usize);
}
