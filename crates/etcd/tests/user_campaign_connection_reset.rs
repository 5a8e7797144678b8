//! A waiting candidate whose connection to etcd is reset (a proxy or load balancer dropping it; the etcd member stays up) stands again with the same lease and, as `Election::campaign` promises, keeps its place in the queue.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions};
use hivekit_etcd::{Election, EtcdConfig};
use support::{config_under, etcd, unique_prefix};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy in front of etcd whose connections can all be reset at once.
struct Proxy {
    endpoint: String,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    listener: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let target = target.trim_start_matches("http://").to_string();
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tracked, counted) = (Arc::clone(&connections), Arc::clone(&accepted));
        let listener = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().unwrap().push(task.abort_handle());
            }
        });
        Proxy {
            endpoint,
            connections,
            accepted,
            listener,
        }
    }

    /// Closes every connection through the proxy (new ones are accepted again).
    fn reset(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.listener.abort();
        self.reset();
    }
}

/// The candidates' keys under the election, oldest first: (key, create revision).
async fn candidates(client: &hivekit_etcd::Client, config: &EtcdConfig) -> Vec<(String, i64)> {
    let prefix = format!("{}election/work/", config.prefix());
    let response = client
        .clone()
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_sort(
                etcd_client::SortTarget::Create,
                etcd_client::SortOrder::Ascend,
            )),
        )
        .await
        .unwrap();
    response
        .kvs()
        .iter()
        .map(|pair| {
            (
                String::from_utf8_lossy(pair.key()).into_owned(),
                pair.create_revision(),
            )
        })
        .collect()
}

async fn wait_for_candidates(client: &hivekit_etcd::Client, config: &EtcdConfig, count: usize) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while candidates(client, config).await.len() < count {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} candidates never stood"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_candidate_whose_connection_is_reset_keeps_its_place() {
    let server = etcd();
    let proxy = Proxy::start(server.endpoint()).await;
    let prefix = unique_prefix("campaign-reset");
    let direct = config_under(vec![server.endpoint()], &prefix);
    let proxied = config_under(vec![proxy.endpoint.clone()], &prefix);
    let ttl = Duration::from_secs(5);
    let observer = direct.connect().await.unwrap();

    let alpha = Election::new(direct.connect().await.unwrap(), &direct, "work")
        .unwrap()
        .campaign("alpha", ttl)
        .await
        .unwrap();
    let beta_election = Election::new(proxied.connect().await.unwrap(), &proxied, "work").unwrap();
    let beta = tokio::spawn(async move { beta_election.campaign("beta", ttl).await });
    wait_for_candidates(&observer, &direct, 2).await;
    let gamma_election = Election::new(direct.connect().await.unwrap(), &direct, "work").unwrap();
    let gamma = tokio::spawn(async move { gamma_election.campaign("gamma", ttl).await });
    wait_for_candidates(&observer, &direct, 3).await;
    let before = candidates(&observer, &direct).await;
    let beta_key = before[1].0.clone();

    // Watch beta's key from now on, to know when the reset has played out in etcd.
    let revision = support::current_revision(&observer).await;
    let mut watch = observer
        .watch_client()
        .watch(
            beta_key.clone(),
            Some(WatchOptions::new().with_start_revision(revision + 1)),
        )
        .await
        .unwrap();
    let accepted = proxy.accepted();
    proxy.reset();
    // Beta's client reconnects through the proxy (its lease renewals and its campaign).
    tokio::time::timeout(Duration::from_secs(5), async {
        while proxy.accepted() == accepted {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("beta's client reconnects after the reset");
    // If etcd withdraws beta's candidacy for the cut request, its key is deleted (and put again
    // when beta stands again); give that a bounded moment to show.
    let mut events = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(Some(message)) = watch.message().await {
            for event in message.events() {
                events.push(event.event_type());
            }
            if events.contains(&EventType::Put) {
                return;
            }
        }
    })
    .await;
    let after = candidates(&observer, &direct).await;

    alpha.resign().await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::select! {
            elected = beta => ("beta", elected),
            elected = gamma => ("gamma", elected),
        }
    })
    .await
    .expect("someone is elected after alpha resigns");
    let (name, elected) = next;
    let _leader = elected.unwrap().unwrap();
    assert_eq!(
        name, "beta",
        "beta campaigned before gamma but lost its place after its connection was reset: \
         candidates before {before:?}, after {after:?}, events on beta's key {events:?}"
    );
}
