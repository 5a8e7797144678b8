//! Agents resolve a set of template/ontology packs.
//!
//! Several projects each require a pack (a name, a semver requirement and the namespace it will be
//! mounted under). One resolver agent per requirement proposes the newest published version that
//! satisfies it; the hive finds the conflicts (two requirements on the same pack, two packs claiming
//! the same namespace), the agents vote on them, and the accepted choices are committed.
//!
//! Run with `cargo run -p hivekit-examples --example resolve_packs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use hivekit_examples::packs::{Lockfile, PackKey, Pin, Requirement, Resolver};
use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Contest, Hive, Proposal, ProposalId,
    RejectReason, Role, Snapshot, Vote,
};
use semver::Version;

/// The versions the registry publishes, per pack.
type Registry = BTreeMap<&'static str, Vec<Version>>;

/// Knows every requirement; votes for the candidate that satisfies the most of them (then the
/// newest version), so a pin that serves several projects beats one that serves one.
struct ConflictDetector {
    requirements: Arc<Vec<Requirement>>,
}

impl Agent<Lockfile> for ConflictDetector {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Lockfile>,
    ) -> Result<Option<Proposal<PackKey, Pin>>, AgentError> {
        Ok(None)
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Lockfile>,
        contest: &Contest<Lockfile>,
    ) -> Result<Vote, AgentError> {
        let served = |pin: &Pin| {
            self.requirements
                .iter()
                .filter(|requirement| requirement.accepts(pin))
                .count()
        };
        let best = contest.candidates.iter().max_by(|a, b| {
            served(&a.change)
                .cmp(&served(&b.change))
                .then(a.change.version.cmp(&b.change.version))
                .then(b.id.cmp(&a.id))
        });
        Ok(best.map_or(Vote::Abstain, |candidate| Vote::For(candidate.id)))
    }

    fn role(&self) -> Role {
        Role::ConflictDetector
    }
}

fn version(text: &str) -> Result<Version, semver::Error> {
    Version::parse(text)
}

/// Requirement sets on one pack that no single published version satisfies.
fn unsatisfiable<'a>(requirements: &'a [Requirement], registry: &Registry) -> Vec<&'a str> {
    let mut packs: Vec<&str> = requirements.iter().map(|r| r.pack.as_str()).collect();
    packs.sort_unstable();
    packs.dedup();
    packs
        .into_iter()
        .filter(|pack| {
            let versions = registry.get(*pack).map(Vec::as_slice).unwrap_or_default();
            !versions.iter().any(|version| {
                requirements
                    .iter()
                    .filter(|r| r.pack == *pack)
                    .all(|r| r.requirement.matches(version))
            })
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry: Registry = BTreeMap::from([
        (
            "schema-org",
            vec![version("1.2.0")?, version("1.4.1")?, version("2.0.0")?],
        ),
        ("foaf", vec![version("0.9.0")?, version("1.0.3")?]),
        ("dublin-core", vec![version("1.1.0")?]),
        ("skos", vec![version("2.3.0")?]),
        ("prov-o", vec![version("1.0.0")?]),
    ]);
    let requirements = vec![
        Requirement::new("web", "schema-org", "^1.2", "schema")?,
        Requirement::new("search", "schema-org", ">=1.4, <2", "schema")?,
        Requirement::new("graph", "schema-org", "^2", "schema")?,
        Requirement::new("web", "foaf", "^1", "people")?,
        Requirement::new("graph", "dublin-core", "^1.1", "meta")?,
        // Two different packs want the same namespace.
        Requirement::new("archive", "prov-o", "^1", "meta")?,
        Requirement::new("search", "skos", "^2.3", "concepts")?,
        // Nothing published satisfies this one: the resolver reports an error.
        Requirement::new("legacy", "foaf", "<0.5", "people")?,
    ];

    println!("Requirements:");
    for r in &requirements {
        println!(
            "  {:8} needs {:12} {:10} as `{}`",
            r.project,
            r.pack,
            r.requirement.to_string(),
            r.namespace
        );
    }
    for pack in unsatisfiable(&requirements, &registry) {
        println!("No single version of `{pack}` satisfies every requirement: the hive votes.");
    }

    let hive = Hive::builder(Lockfile::default())
        .policy(ConsensusPolicy::default())
        .build()?;
    let requirements = Arc::new(requirements);
    for (index, wanted) in requirements.iter().enumerate() {
        let published = registry.get(wanted.pack.as_str()).cloned();
        hive.spawn(Resolver {
            id: ProposalId(index as u64 + 1),
            requirement: wanted.clone(),
            published: published.unwrap_or_default().into(),
        });
    }
    // The detector sees the whole picture, so it weighs as much as two resolvers.
    hive.spawn_weighted(
        ConflictDetector {
            requirements: Arc::clone(&requirements),
        },
        2.0,
    )?;

    let runtime = tokio::runtime::Runtime::new()?;
    let decision = runtime.block_on(hive.decide())?;

    println!(
        "\nRound {} ({} agents, {} proposals, {:?}):",
        decision.round, decision.agents, decision.proposals, decision.elapsed
    );
    let describe = |id: ProposalId| {
        let wanted = &requirements[id.0 as usize - 1];
        format!(
            "{} ({} {} as `{}`)",
            id, wanted.pack, wanted.requirement, wanted.namespace
        )
    };
    for ballot in &decision.ballots {
        println!(
            "  ballot on {:?} between {:?}: {:?}",
            ballot.key, ballot.candidates, ballot.tally
        );
    }
    for id in &decision.accepted {
        println!("  accepted {}", describe(*id));
    }
    for (id, reason) in &decision.rejected {
        let because = match reason {
            RejectReason::LostVote { winner } => format!("lost the vote to {winner}"),
            other => other.to_string(),
        };
        println!("  rejected {}: {because}", describe(*id));
    }
    for failure in &decision.failures {
        println!("  {} failed: {:?}", failure.agent, failure.kind);
    }

    let lockfile = hive.memory().load();
    println!("\nLockfile at version {}:", lockfile.version());
    for (pack, (version, namespace)) in &lockfile.packs {
        println!("  {pack:12} {version:8} as `{namespace}`");
    }
    Ok(())
}
