//! Agents resolve a set of template/ontology packs.
//!
//! Several projects each require a pack (a name, a semver requirement and the namespace it will be
//! mounted under). One resolver agent per requirement proposes the newest published version that
//! satisfies it; the hive finds the conflicts (two requirements on the same pack, two packs claiming
//! the same namespace), the agents vote on them, and the accepted choices are committed.
//!
//! Run with `cargo run -p hivekit-hive --example resolve_packs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use hivekit_hive::{
    Agent, AgentContext, AgentError, ConsensusPolicy, Contest, Hive, Proposal, ProposalId,
    RejectReason, Role, Snapshot, State, Vote,
};
use semver::{Version, VersionReq};

/// A project's requirement on a pack.
#[derive(Debug, Clone)]
struct Requirement {
    project: &'static str,
    pack: &'static str,
    requirement: VersionReq,
    namespace: &'static str,
}

/// The versions the registry publishes, per pack.
type Registry = BTreeMap<&'static str, Vec<Version>>;

/// What the hive decides on: the version and namespace chosen for each pack.
#[derive(Debug, Clone, Default)]
struct Lockfile {
    packs: BTreeMap<String, (Version, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pack(String),
    Namespace(String),
}

/// Pin `pack` at `version` under `namespace`.
#[derive(Debug, Clone)]
struct Pin {
    pack: String,
    version: Version,
    namespace: String,
}

impl State for Lockfile {
    type Key = Key;
    type Change = Pin;

    fn apply(&mut self, pin: &Pin) {
        self.packs.insert(
            pin.pack.clone(),
            (pin.version.clone(), pin.namespace.clone()),
        );
    }
}

/// Proposes the newest version satisfying one requirement; votes for a candidate that satisfies
/// its requirement (the newest such), or abstains.
struct Resolver {
    id: u64,
    requirement: Requirement,
    registry: Arc<Registry>,
}

impl Agent<Lockfile> for Resolver {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        view: &Snapshot<Lockfile>,
    ) -> Result<Option<Proposal<Key, Pin>>, AgentError> {
        let wanted = &self.requirement;
        if let Some((version, _)) = view.packs.get(wanted.pack) {
            if wanted.requirement.matches(version) {
                return Ok(None);
            }
        }
        let newest = self.registry.get(wanted.pack).and_then(|versions| {
            versions
                .iter()
                .filter(|version| wanted.requirement.matches(version))
                .max()
        });
        let Some(version) = newest else {
            return Err(AgentError::msg(format!(
                "no published version of `{}` satisfies {} (required by {})",
                wanted.pack, wanted.requirement, wanted.project
            )));
        };
        let pin = Pin {
            pack: wanted.pack.to_string(),
            version: version.clone(),
            namespace: wanted.namespace.to_string(),
        };
        Ok(Some(Proposal::new(ProposalId(self.id), pin).writes([
            Key::Pack(wanted.pack.to_string()),
            Key::Namespace(wanted.namespace.to_string()),
        ])))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Lockfile>,
        contest: &Contest<Lockfile>,
    ) -> Result<Vote, AgentError> {
        let wanted = &self.requirement;
        let acceptable = contest
            .candidates
            .iter()
            .filter(|candidate| {
                candidate.change.pack == wanted.pack
                    && wanted.requirement.matches(&candidate.change.version)
            })
            .max_by(|a, b| a.change.version.cmp(&b.change.version));
        Ok(acceptable.map_or(Vote::Abstain, |candidate| Vote::For(candidate.id)))
    }

    fn role(&self) -> Role {
        Role::Resolver
    }
}

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
    ) -> Result<Option<Proposal<Key, Pin>>, AgentError> {
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
                .filter(|r| r.pack == pin.pack && r.requirement.matches(&pin.version))
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

fn requirement(
    project: &'static str,
    pack: &'static str,
    requirement: &str,
    namespace: &'static str,
) -> Result<Requirement, semver::Error> {
    Ok(Requirement {
        project,
        pack,
        requirement: VersionReq::parse(requirement)?,
        namespace,
    })
}

/// Requirement sets on one pack that no single published version satisfies.
fn unsatisfiable<'a>(requirements: &'a [Requirement], registry: &Registry) -> Vec<&'a str> {
    let mut packs: Vec<&str> = requirements.iter().map(|r| r.pack).collect();
    packs.sort_unstable();
    packs.dedup();
    packs
        .into_iter()
        .filter(|pack| {
            let versions = registry.get(pack).map(Vec::as_slice).unwrap_or_default();
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
    let registry: Arc<Registry> = Arc::new(BTreeMap::from([
        (
            "schema-org",
            vec![version("1.2.0")?, version("1.4.1")?, version("2.0.0")?],
        ),
        ("foaf", vec![version("0.9.0")?, version("1.0.3")?]),
        ("dublin-core", vec![version("1.1.0")?]),
        ("skos", vec![version("2.3.0")?]),
        ("prov-o", vec![version("1.0.0")?]),
    ]));
    let requirements = vec![
        requirement("web", "schema-org", "^1.2", "schema")?,
        requirement("search", "schema-org", ">=1.4, <2", "schema")?,
        requirement("graph", "schema-org", "^2", "schema")?,
        requirement("web", "foaf", "^1", "people")?,
        requirement("graph", "dublin-core", "^1.1", "meta")?,
        // Two different packs want the same namespace.
        requirement("archive", "prov-o", "^1", "meta")?,
        requirement("search", "skos", "^2.3", "concepts")?,
        // Nothing published satisfies this one: the resolver reports an error.
        requirement("legacy", "foaf", "<0.5", "people")?,
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
        hive.spawn(Resolver {
            id: index as u64 + 1,
            requirement: wanted.clone(),
            registry: Arc::clone(&registry),
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
