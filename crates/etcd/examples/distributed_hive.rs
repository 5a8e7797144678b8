//! Two processes, one hive memory: each process runs its own hive of agents on an etcd memory
//! they share, and the common history is printed at the end.
//!
//! The example starts its own etcd (the Debian `etcd-server` package:
//! `apt-get install -y etcd-server protobuf-compiler`), runs itself twice more as the two member
//! processes, and stops etcd when it is done.
//!
//! ```text
//! cargo run -p hivekit-etcd --example distributed_hive
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::process::Command;
use std::time::Duration;

use hivekit_etcd::testing::{ChildGuard, EtcdServer};
use hivekit_etcd::{EtcdConfig, EtcdMemory, Membership};
use hivekit_hive::{Agent, AgentContext, AgentError, Hive, Memory, ProposalOf, Snapshot, State};
use serde::{Deserialize, Serialize};

/// Stock by item.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Inventory(BTreeMap<String, i64>);

impl State for Inventory {
    type Key = String;
    type Change = (String, i64);
    fn apply(&mut self, (item, delta): &(String, i64)) {
        *self.0.entry(item.clone()).or_default() += delta;
    }
}

/// Restocks one item by one unit every round.
struct Restocker {
    item: &'static str,
}

impl Agent<Inventory> for Restocker {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Inventory>,
    ) -> Result<Option<ProposalOf<Inventory>>, AgentError> {
        Ok(Some(
            ctx.proposal((self.item.to_string(), 1))
                .writes([self.item.to_string()]),
        ))
    }
}

const ROUNDS: usize = 5;

fn config(endpoint: &str, prefix: &str) -> EtcdConfig {
    EtcdConfig::new([endpoint], prefix).connect_timeout(Duration::from_secs(3))
}

/// One member process: a hive of two restockers on the shared memory.
async fn member(endpoint: &str, prefix: &str, name: &str) -> Result<(), Box<dyn Error>> {
    let config = config(endpoint, prefix);
    let memory = EtcdMemory::<Inventory>::open(config.clone(), Inventory::default()).await?;
    let membership = Membership::join(
        memory.client().clone(),
        &config,
        name,
        Duration::from_secs(5),
    )
    .await?;
    let items: &[&'static str] = if name == "east" {
        &["bolts", "nuts"]
    } else {
        &["nuts", "gears"]
    };
    let hive = Hive::builder_with_memory(memory).build()?;
    for item in items {
        let agent = hive.spawn(Restocker { item });
        membership.register(agent, item).await?;
    }
    let members = membership.members().await?;
    println!("[{name}] sees {} agents in the hive", members.len());
    for _ in 0..ROUNDS {
        let decision = hive.decide().await?;
        println!(
            "[{name}] round {} committed version {}{}",
            decision.round,
            decision.version,
            if decision.rebased {
                " (rebased on the other process's commit)"
            } else {
                ""
            }
        );
    }
    membership.leave().await?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Runtime::new()?;
    if let [_, flag, endpoint, prefix, name] = args.as_slice() {
        if flag == "--member" {
            return runtime.block_on(member(endpoint, prefix, name));
        }
    }

    let server = EtcdServer::start()?;
    let prefix = format!("/hivekit-example/{}", std::process::id());
    println!(
        "etcd at {} (data in {})",
        server.endpoint(),
        server.data_dir().display()
    );
    let mut members = ["east", "west"]
        .into_iter()
        .map(|name| {
            let mut command = Command::new(std::env::current_exe()?);
            command.args(["--member", &server.endpoint(), &prefix, name]);
            ChildGuard::spawn(command)
        })
        .collect::<Result<Vec<_>, _>>()?;
    for member in &mut members {
        let status = member
            .wait_with_limit(Duration::from_secs(30))
            .ok_or("a member process did not finish in 30 s")?;
        if !status.success() {
            return Err(format!("a member process failed: {status}").into());
        }
    }

    runtime.block_on(async {
        let memory = EtcdMemory::<Inventory>::open(
            config(&server.endpoint(), &prefix),
            Inventory::default(),
        )
        .await?;
        println!("common history:");
        for entry in memory.history(1, memory.version()).await? {
            let changes: Vec<String> = entry
                .changes
                .iter()
                .map(|change| format!("{} +{}", change.change.0, change.change.1))
                .collect();
            println!(
                "  version {:>2}  decision ..{}  base {:>2}{}  {}",
                entry.version,
                &entry.decision_id[entry.decision_id.len().saturating_sub(8)..],
                entry.base,
                if entry.rebased {
                    " rebased"
                } else {
                    "        "
                },
                changes.join(", ")
            );
        }
        println!("final stock: {:?}", memory.snapshot().0);
        Ok::<(), Box<dyn Error>>(())
    })
}
