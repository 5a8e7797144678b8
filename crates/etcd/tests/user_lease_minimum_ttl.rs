//! On an etcd with its default election timeout (1 s), etcd raises a lease TTL under its minimum (2 s): `Membership::ttl()` must report the TTL etcd actually holds the agents for.

use std::process::{Command, Stdio};
use std::time::Duration;

use hivekit_etcd::testing::ChildGuard;
use hivekit_etcd::{EtcdConfig, Membership};
use hivekit_hive::AgentId;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A data directory removed when dropped.
struct DataDir(std::path::PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An etcd with its default timing flags (heartbeat 100 ms, election timeout 1000 ms), as
/// deployed; the test harness's servers use faster ones.
fn default_etcd() -> (ChildGuard, DataDir, String) {
    let root = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = DataDir(root.join(format!("hivekit-user-min-ttl-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut command = Command::new("etcd");
    command
        .arg("--name")
        .arg("plain")
        .arg("--data-dir")
        .arg(dir.0.join("data"))
        .arg("--listen-client-urls")
        .arg(&client_url)
        .arg("--advertise-client-urls")
        .arg(&client_url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer_url)
        .arg("--initial-cluster")
        .arg(format!("plain={peer_url}"))
        .arg("--log-level")
        .arg("error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let guard = ChildGuard::spawn(command).expect("etcd runs (apt-get install etcd-server)");
    (guard, dir, client_url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_reports_the_ttl_etcd_granted_its_lease() {
    let (_etcd, _dir, endpoint) = default_etcd();
    let config = EtcdConfig::new([endpoint], "/hivekit-test/min-ttl")
        .connect_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(2));
    // etcd needs a moment to elect itself: connect in a bounded loop.
    let client = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match config.connect().await {
                Ok(client) => return client,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await
    .expect("etcd became healthy within 20 s");

    let membership = Membership::join(client.clone(), &config, "proc", Duration::from_secs(1))
        .await
        .unwrap();
    membership.register(AgentId(1), "scout").await.unwrap();
    let key = format!("{}members/proc/1", config.prefix());
    let response = client.clone().get(key.clone(), None).await.unwrap();
    let lease = response.kvs()[0].lease();
    assert_ne!(lease, 0, "{key} is under a lease");
    let live = client
        .lease_client()
        .time_to_live(lease, None)
        .await
        .unwrap();
    let granted = Duration::from_secs(u64::try_from(live.granted_ttl()).unwrap());
    assert_eq!(
        membership.ttl(),
        granted,
        "ttl() says {:?} but etcd granted the lease {granted:?}: a process that dies stays listed \
         for up to {granted:?}, not within ttl()",
        membership.ttl()
    );
}
