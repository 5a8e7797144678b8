//! A leader or member partitioned from etcd (a proxy that stops forwarding, connections left open) while its own runtime runs: by the time etcd elects the successor or drops its agents, the partitioned handle already says it lost (no split brain), and it stays lost after the partition heals.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hivekit_etcd::{Election, EtcdConfig, Membership};
use hivekit_hive::AgentId;
use support::{config_under, etcd, unique_prefix};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy in front of etcd that can stop forwarding (a partition: nothing is closed, nothing
/// gets through) and resume.
struct Proxy {
    endpoint: String,
    open: watch::Sender<bool>,
    tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut open: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
        }
        if open.wait_for(|open| *open).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let target = target.trim_start_matches("http://").to_string();
        let (open, gate) = watch::channel(true);
        let tasks: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let tracked = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                let up = tokio::spawn(pump(in_read, out_write, gate.clone()));
                let down = tokio::spawn(pump(out_read, in_write, gate.clone()));
                let mut tracked = tracked.lock().unwrap();
                tracked.push(up.abort_handle());
                tracked.push(down.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Proxy {
            endpoint,
            open,
            tasks,
        }
    }

    fn partition(&self) {
        self.open.send_replace(false);
    }

    fn heal(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

async fn connected(config: &EtcdConfig) -> hivekit_etcd::Client {
    config.connect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_knows_it_lost_before_its_successor_is_elected() {
    let server = etcd();
    let proxy = Proxy::start(server.endpoint()).await;
    let prefix = unique_prefix("partitioned-leader");
    let direct = config_under(vec![server.endpoint()], &prefix);
    let proxied = config_under(vec![proxy.endpoint.clone()], &prefix);
    let ttl = Duration::from_secs(2);

    let alpha = Election::new(connected(&proxied).await, &proxied, "work")
        .unwrap()
        .campaign("alpha", ttl)
        .await
        .unwrap();
    let election = Election::new(connected(&direct).await, &direct, "work").unwrap();
    let beta = {
        let election = election.clone();
        tokio::spawn(async move { election.campaign("beta", Duration::from_secs(10)).await })
    };
    // Beta stands behind alpha.
    tokio::time::timeout(Duration::from_millis(300), async {
        while !beta.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect_err("beta is not elected while alpha leads");

    proxy.partition();
    let beta = tokio::time::timeout(ttl + Duration::from_secs(5), beta)
        .await
        .expect("beta is elected once alpha's lease expired in etcd")
        .unwrap()
        .unwrap();
    // The moment beta leads, alpha (whose runtime ran throughout) must already say it does not.
    let alpha_leads = alpha.is_leader();
    assert!(beta.is_leader());
    assert!(
        !alpha_leads,
        "split brain: partitioned alpha says it leads while beta was elected"
    );
    tokio::time::timeout(Duration::from_millis(100), alpha.lost())
        .await
        .expect("alpha's lost() has returned");

    proxy.heal();
    // After the partition heals alpha stays lost, and etcd reports beta.
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("beta"));
    assert!(!alpha.is_leader());
    drop(alpha);
    assert!(beta.is_leader());
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("beta"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_member_knows_it_lost_before_etcd_drops_its_agents_and_can_rejoin() {
    let server = etcd();
    let proxy = Proxy::start(server.endpoint()).await;
    let prefix = unique_prefix("partitioned-member");
    let direct = config_under(vec![server.endpoint()], &prefix);
    let proxied = config_under(vec![proxy.endpoint.clone()], &prefix);
    let ttl = Duration::from_secs(2);
    let proxied_client = connected(&proxied).await;
    let member = Membership::join(proxied_client.clone(), &proxied, "edge", ttl)
        .await
        .unwrap();
    member.register(AgentId(1), "scout").await.unwrap();
    let observer = connected(&direct).await;
    assert_eq!(Membership::list(&observer, &direct).await.unwrap().len(), 1);

    proxy.partition();
    tokio::time::timeout(ttl + Duration::from_secs(5), async {
        while !Membership::list(&observer, &direct)
            .await
            .unwrap()
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("etcd drops the partitioned member's agents after its ttl");
    assert!(
        !member.is_alive(),
        "etcd dropped the agents but the partitioned member says it is alive"
    );

    proxy.heal();
    let error = member.register(AgentId(2), "late").await.unwrap_err();
    assert!(
        matches!(error, hivekit_etcd::EtcdError::LeaseLost { .. }),
        "{error:?}"
    );
    // Rejoining under the same name works once the partition healed.
    let rejoined = tokio::time::timeout(
        Duration::from_secs(10),
        Membership::join(proxied_client, &proxied, "edge", ttl),
    )
    .await
    .expect("rejoin within 10 s")
    .unwrap();
    rejoined.register(AgentId(1), "scout").await.unwrap();
    drop(member);
    let listed: Vec<(String, u64)> = Membership::list(&observer, &direct)
        .await
        .unwrap()
        .into_iter()
        .map(|member| (member.process, member.agent))
        .collect();
    assert_eq!(listed, [("edge".to_string(), 1)]);
}
