//! A lease holder whose runtime stalls (a blocked thread, a paused process) past its TTL: once etcd expired the lease and elected a successor, `is_leader()`/`is_alive()` must not still say yes.

mod support;

use std::sync::mpsc;
use std::time::Duration;

use hivekit_etcd::{Election, EtcdConfig, Membership};
use hivekit_hive::AgentId;
use support::{config, etcd};

const TTL: Duration = Duration::from_secs(1);

/// Waits (bounded) until etcd lists `count` candidates under the election's prefix.
async fn wait_for_candidates(config: &EtcdConfig, count: usize) {
    let client = config.connect().await.unwrap();
    let prefix = format!("{}election/", config.prefix());
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let response = client
                .kv_client()
                .get(
                    prefix.clone(),
                    Some(
                        etcd_client::GetOptions::new()
                            .with_prefix()
                            .with_count_only(),
                    ),
                )
                .await
                .unwrap();
            if response.count() as usize >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} candidates never stood"));
}

#[test]
fn a_leader_stalled_past_its_ttl_does_not_say_it_leads_beside_its_elected_successor() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "stalled-leader");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (elected_tx, elected_rx) = mpsc::channel::<()>();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    runtime.block_on(async {
        let client = config.connect().await.unwrap();
        let election = Election::new(client, &config, "work").unwrap();
        let alpha = election.campaign("alpha", TTL).await.unwrap();
        assert!(alpha.is_leader());

        // The successor: another process (its own thread and runtime), waiting behind alpha.
        let successor_config = config.clone();
        let successor = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = successor_config.connect().await.unwrap();
                let election = Election::new(client, &successor_config, "work").unwrap();
                let beta = tokio::time::timeout(
                    Duration::from_secs(10),
                    election.campaign("beta", Duration::from_secs(5)),
                )
                .await
                .expect("beta elected within 10 s")
                .unwrap();
                assert!(beta.is_leader());
                elected_tx.send(()).unwrap();
                // Hold leadership until the main thread is done looking.
                tokio::task::block_in_place(|| {
                    let _ = stop_rx.recv_timeout(Duration::from_secs(10));
                });
                assert!(beta.is_leader(), "beta kept leading throughout");
            });
        });
        wait_for_candidates(&config, 2).await;
        assert!(alpha.is_leader());

        // Alpha's thread blocks (a long synchronous call, a paused process): nothing on its
        // runtime runs, its lease is not renewed, etcd lets it expire and elects beta.
        elected_rx
            .recv_timeout(TTL + Duration::from_secs(5))
            .expect("beta is elected once alpha's lease expired in etcd");

        // Alpha's lease was not renewed for more than its TTL and its key is gone from etcd.
        let alpha_leads = alpha.is_leader();
        stop_tx.send(()).unwrap();
        successor.join().unwrap();
        assert!(
            !alpha_leads,
            "split brain: alpha's is_leader() is true (lease not renewed for over {TTL:?}, key \
             deleted by etcd) while beta is the elected leader"
        );
    });
}

#[test]
fn a_member_stalled_past_its_ttl_does_not_say_it_is_alive_once_etcd_dropped_its_agents() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "stalled-member");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = config.connect().await.unwrap();
        let membership = Membership::join(client, &config, "stalled", TTL)
            .await
            .unwrap();
        membership.register(AgentId(1), "scout").await.unwrap();
        assert!(membership.is_alive());

        // Another process watches the list until the stalled member's agent is gone.
        let observer_config = config.clone();
        let observer = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = observer_config.connect().await.unwrap();
                tokio::time::timeout(Duration::from_secs(8), async {
                    loop {
                        let members = Membership::list(&client, &observer_config).await.unwrap();
                        if members.is_empty() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
                .await
                .is_ok()
            })
        });
        // The member's thread blocks meanwhile.
        let gone = observer.join().unwrap();
        assert!(gone, "the stalled member's agent was never dropped by etcd");
        assert!(
            !membership.is_alive(),
            "is_alive() (\"renewed less than a TTL ago\") is true although the lease was not \
             renewed for over {TTL:?} and etcd no longer lists its agents"
        );
    });
}
