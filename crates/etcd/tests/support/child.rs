//! Client processes for the multi-process tests: the test binary runs itself again with
//! `HIVEKIT_ETCD_CHILD` set, and the same test function then plays a committing client instead.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hivekit_etcd::testing::ChildGuard;
use hivekit_etcd::{EtcdConfig, EtcdMemory, HistoryEntry, Membership};
use hivekit_hive::{
    Agent, AgentContext, AgentError, Hive, HiveError, Memory, MemoryError, ProposalOf, Snapshot,
    State,
};

use super::{add, Add, Ledger};

const ROLE: &str = "HIVEKIT_ETCD_CHILD";

/// What a client process was told to do.
#[derive(Debug, Clone)]
pub struct ClientPlan {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub index: u64,
    pub agents: u64,
    pub decisions: u64,
    pub lease_ttl_secs: u64,
}

/// The decision id client `index` uses for its `round`th decision.
pub fn decision_id(index: u64, round: u64) -> u128 {
    (u128::from(index) << 32) | u128::from(round + 1)
}

/// Runs the client role when this process is a child, and returns whether it was one.
pub fn run_if_child() -> bool {
    if std::env::var_os(ROLE).is_none() {
        return false;
    }
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    let number = |name: &str| var(name).parse::<u64>().unwrap();
    let plan = ClientPlan {
        endpoints: var("HIVEKIT_ETCD_ENDPOINTS")
            .split(',')
            .map(String::from)
            .collect(),
        prefix: var("HIVEKIT_ETCD_PREFIX"),
        index: number("HIVEKIT_ETCD_INDEX"),
        agents: number("HIVEKIT_ETCD_AGENTS"),
        decisions: number("HIVEKIT_ETCD_DECISIONS"),
        lease_ttl_secs: number("HIVEKIT_ETCD_TTL"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(client(plan));
    true
}

fn report(line: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "HIVEKIT {line}").unwrap();
    stdout.flush().unwrap();
}

async fn client(plan: ClientPlan) {
    let config = EtcdConfig::new(plan.endpoints.clone(), &plan.prefix)
        .connect_timeout(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(2))
        .commit_timeout(Duration::from_secs(15))
        // `verify` audits every version, so no process may trim any.
        .history(usize::MAX);
    let memory = EtcdMemory::<Ledger>::open(config.clone(), Ledger::default())
        .await
        .unwrap();
    let process = format!("p{}", plan.index);
    let membership = Membership::join(
        memory.client().clone(),
        &config,
        &process,
        Duration::from_secs(plan.lease_ttl_secs),
    )
    .await
    .unwrap();
    report("joined");
    let hive = Hive::builder_with_memory(memory).build().unwrap();
    for slot in 0..plan.agents {
        let agent = hive.spawn(Counter {
            process: plan.index,
            slot,
        });
        membership.register(agent, "counter").await.unwrap();
    }
    for _ in 0..plan.decisions {
        match hive.decide().await {
            Ok(decision) => report(&format!("ok {} {}", decision.id, decision.version)),
            Err(HiveError::Memory(MemoryError::OutcomeUnknown { decision_id, .. })) => {
                report(&format!("unknown {decision_id}"))
            }
            Err(error) => report(&format!("failed {error}")),
        }
    }
    report("done");
}

/// One of a client's agents: adds one to its own counter every round, under a proposal id unique
/// across processes (process, round, slot).
struct Counter {
    process: u64,
    slot: u64,
}

impl Agent<Ledger> for Counter {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Ledger>,
    ) -> Result<Option<ProposalOf<Ledger>>, AgentError> {
        let id = self.process * 1_000_000 + ctx.round() * 100 + self.slot;
        Ok(Some(add(id, self.slot, 1)))
    }
}

/// One line a client reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Joined,
    Committed { decision: u128, version: u64 },
    Unknown { decision: u128 },
    Failed,
    Done,
}

fn parse(line: &str) -> Option<Report> {
    let mut words = line.strip_prefix("HIVEKIT ")?.split(' ');
    let kind = words.next()?;
    let mut number = || words.next().and_then(|word| word.parse::<u128>().ok());
    Some(match kind {
        "joined" => Report::Joined,
        "done" => Report::Done,
        "ok" => Report::Committed {
            decision: number()?,
            version: number()? as u64,
        },
        "unknown" => Report::Unknown {
            decision: number()?,
        },
        "failed" => Report::Failed,
        _ => return None,
    })
}

/// A running client process and the reports it sends.
pub struct Client {
    pub guard: ChildGuard,
    pub index: u64,
    reports: mpsc::Receiver<Report>,
    pub seen: Vec<Report>,
}

impl Client {
    /// Starts client `plan.index` by running `test` in this test binary again.
    pub fn spawn(test: &str, plan: &ClientPlan) -> Client {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE, "client")
            .env("HIVEKIT_ETCD_ENDPOINTS", plan.endpoints.join(","))
            .env("HIVEKIT_ETCD_PREFIX", &plan.prefix)
            .env("HIVEKIT_ETCD_INDEX", plan.index.to_string())
            .env("HIVEKIT_ETCD_AGENTS", plan.agents.to_string())
            .env("HIVEKIT_ETCD_DECISIONS", plan.decisions.to_string())
            .env("HIVEKIT_ETCD_TTL", plan.lease_ttl_secs.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut guard = ChildGuard::spawn(command).unwrap();
        let stdout = guard.child_mut().unwrap().stdout.take().unwrap();
        let (sender, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(report) = parse(&line) {
                    if sender.send(report).is_err() {
                        return;
                    }
                }
            }
        });
        Client {
            guard,
            index: plan.index,
            reports,
            seen: Vec::new(),
        }
    }

    /// Waits for the next report, at most `limit`.
    pub fn next(&mut self, limit: Duration) -> Option<Report> {
        let report = self.reports.recv_timeout(limit).ok()?;
        self.seen.push(report.clone());
        Some(report)
    }

    /// Waits until the client has committed `count` decisions (or reported done).
    pub fn wait_for_commits(&mut self, count: usize, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        while self.committed().len() < count {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.next(left) {
                Some(Report::Done) => return,
                Some(_) => {}
                None => panic!(
                    "client {} reported {} commits in {limit:?}",
                    self.index,
                    self.committed().len()
                ),
            }
        }
    }

    /// Reads reports until the client is done and has exited.
    pub fn finish(&mut self, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.next(left) {
                Some(Report::Done) => break,
                Some(_) => {}
                None => panic!(
                    "client {} did not finish within {limit:?} (or exited first); last report: {:?}",
                    self.index,
                    self.seen.last()
                ),
            }
        }
        let status = self.guard.wait_with_limit(limit).expect("the client exits");
        assert!(
            status.success(),
            "client {} exited with {status}",
            self.index
        );
    }

    /// Whether it reported done.
    pub fn finished(&self) -> bool {
        self.seen.contains(&Report::Done)
    }

    /// The decisions it reported committed, with their versions.
    pub fn committed(&self) -> Vec<(u128, u64)> {
        self.seen
            .iter()
            .filter_map(|report| match report {
                Report::Committed { decision, version } => Some((*decision, *version)),
                _ => None,
            })
            .collect()
    }

    /// How many decisions it reported failed, and the decisions whose outcome it did not know.
    pub fn failed_and_unknown(&self) -> (usize, Vec<u128>) {
        let mut failed = 0;
        let mut unknown = Vec::new();
        for report in &self.seen {
            match report {
                Report::Failed => failed += 1,
                Report::Unknown { decision } => unknown.push(*decision),
                _ => {}
            }
        }
        (failed, unknown)
    }
}

/// Checks the history against what the clients reported, and the stored state against the history
/// applied in order; returns the history.
pub async fn verify(
    config: &EtcdConfig,
    clients: &[Client],
    agents: usize,
) -> Vec<HistoryEntry<Add>> {
    // Every version is audited: opening with a shorter history would trim it.
    let config = config.clone().history(usize::MAX);
    let memory = EtcdMemory::<Ledger>::open(config, Ledger::default())
        .await
        .unwrap();
    let history = memory.history(1, u64::MAX - 1).await.unwrap();
    let mut replayed = Ledger::default();
    let mut proposals = BTreeSet::new();
    let mut by_decision = BTreeMap::new();
    for (index, entry) in history.iter().enumerate() {
        assert_eq!(entry.version, index as u64 + 1, "versions are gapless");
        assert_eq!(
            entry.changes.len(),
            agents,
            "a commit is whole: version {}",
            entry.version
        );
        for change in &entry.changes {
            assert!(
                proposals.insert(change.proposal),
                "change {} applied twice",
                change.proposal
            );
            replayed.apply(&change.change);
        }
        let decision = u128::from_str_radix(&entry.decision_id, 16).unwrap();
        assert!(
            by_decision.insert(decision, entry.version).is_none(),
            "decision {decision:#x} twice"
        );
    }
    let stored = memory.snapshot();
    assert_eq!(stored.version(), history.len() as u64);
    assert_eq!(
        *stored, replayed,
        "the stored state is the history applied in order"
    );
    for client in clients {
        let committed: BTreeMap<u128, u64> = client.committed().into_iter().collect();
        for (decision, version) in &committed {
            assert_eq!(
                by_decision.get(decision),
                Some(version),
                "committed decision {decision:#x} is in the history at its version"
            );
        }
        let (_, unknown) = client.failed_and_unknown();
        let mut settled_committed = BTreeSet::new();
        for decision in unknown {
            let settled = memory.resolve(decision).await.unwrap();
            assert_eq!(
                settled,
                by_decision.get(&decision).copied(),
                "an unknown outcome settles to what the history says"
            );
            settled_committed.insert(decision);
        }
        if client.finished() {
            // Every entry of a client that ran to the end was reported committed or unknown: none
            // it reported failed landed.
            for entry in &history {
                let process = entry.changes[0].proposal / 1_000_000;
                let decision = u128::from_str_radix(&entry.decision_id, 16).unwrap();
                if process == client.index {
                    assert!(
                        committed.contains_key(&decision) || settled_committed.contains(&decision),
                        "version {} of client {} was never reported committed",
                        entry.version,
                        client.index
                    );
                }
            }
        }
    }
    history
}
