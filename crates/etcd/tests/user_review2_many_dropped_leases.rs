//! Review of d4a9d7a (crates/etcd/src/lease.rs, `Drop for KeptLease`): a dropped lease is revoked
//! both with the caller's client on its runtime and from the process's one revoke thread. Checked
//! with many memberships at once: all their leases go at once when dropped together (from a worker
//! and from a plain thread), and however many are dropped at once, there is at most one revoke
//! thread.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hivekit_etcd::Membership;
use hivekit_hive::AgentId;
use support::{config, etcd};

const MEMBERS: usize = 64;
const TTL: Duration = Duration::from_secs(30);

/// The threads of this process named `hivekit-etcd-revoke` now (`comm` keeps 15 bytes).
fn revoke_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim_end().starts_with("hivekit-etcd-re"))
        })
        .count()
}

/// Samples [`revoke_threads`] on a thread of its own until stopped; returns the peak.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    peak.fetch_max(revoke_threads(), Ordering::SeqCst);
                    std::thread::yield_now();
                }
            }
        });
        Self {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn peak(mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        self.peak.load(Ordering::SeqCst)
    }
}

async fn join_many(
    client: &hivekit_etcd::Client,
    config: &hivekit_etcd::EtcdConfig,
) -> Vec<Membership> {
    let mut memberships = Vec::with_capacity(MEMBERS);
    for index in 0..MEMBERS {
        let membership = Membership::join(client.clone(), config, &format!("proc{index}"), TTL)
            .await
            .unwrap();
        membership
            .register(AgentId(index as u64), "scout")
            .await
            .unwrap();
        memberships.push(membership);
    }
    memberships
}

async fn all_gone(client: &hivekit_etcd::Client, config: &hivekit_etcd::EtcdConfig, what: &str) {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if Membership::list(client, config).await.unwrap().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: the dropped memberships stayed listed (TTL {TTL:?})"));
}

/// 64 memberships dropped at once on a worker, then 64 dropped at once on a plain thread: every
/// agent goes at once, and one revoke thread sends every revoke.
#[test]
fn many_memberships_dropped_at_once_all_go_and_leave_no_thread_behind() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "review2-many-dropped");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = runtime.block_on(config.connect()).unwrap();

    let memberships = runtime.block_on(join_many(&client, &config));
    let sampler = Sampler::start();
    runtime.block_on(async {
        tokio::spawn(async move { drop(memberships) })
            .await
            .unwrap();
        all_gone(&client, &config, "dropped on a worker").await;
    });
    let on_worker = sampler.peak();

    let memberships = runtime.block_on(join_many(&client, &config));
    let sampler = Sampler::start();
    std::thread::spawn(move || drop(memberships))
        .join()
        .unwrap();
    runtime.block_on(all_gone(&client, &config, "dropped on a plain thread"));
    let on_thread = sampler.peak();
    assert!(
        on_worker <= 1 && on_thread <= 1,
        "revoke threads at once: {on_worker} (worker drop), {on_thread} (plain thread); one is \
         the most"
    );
    assert_eq!(revoke_threads(), 1, "the revoke thread is the process's");
}
