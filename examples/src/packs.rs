//! The pack-resolution workload: projects require template/ontology packs (a name, a semver
//! requirement, the namespace the pack is mounted under), one [`Resolver`] agent per requirement
//! proposes the newest published version that satisfies it, and the hive settles the conflicts (two
//! requirements on one pack, two packs claiming one namespace) by vote.
//!
//! The `resolve_packs` example runs it once and prints the decision; the hive bench suite's
//! `configuration_analysis` group measures the same agents (it includes this file by path, so the
//! two never drift apart). It depends only on `hivekit-hive` and `semver`.

use std::collections::BTreeMap;
use std::sync::Arc;

use hivekit_hive::{
    Agent, AgentContext, AgentError, Contest, Interest, Proposal, ProposalId, Role, Snapshot,
    State, Vote,
};
use semver::{Version, VersionReq};

/// A project's requirement on a pack.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// The project that needs the pack.
    pub project: String,
    /// The pack's name; several requirements may name the same pack.
    pub pack: String,
    /// The versions the project accepts.
    pub requirement: VersionReq,
    /// Where the project mounts the pack; two packs may claim the same namespace.
    pub namespace: String,
}

impl Requirement {
    /// A requirement of `project` on `pack`, parsing `requirement` (`^1.2`, `>=1.4, <2`).
    ///
    /// # Errors
    ///
    /// The [`semver::Error`] when `requirement` is not a semver requirement.
    pub fn new(
        project: &str,
        pack: &str,
        requirement: &str,
        namespace: &str,
    ) -> Result<Self, semver::Error> {
        Ok(Self {
            project: project.to_owned(),
            pack: pack.to_owned(),
            requirement: VersionReq::parse(requirement)?,
            namespace: namespace.to_owned(),
        })
    }

    /// The newest of `published` that this requirement accepts.
    pub fn newest<'a>(&self, published: &'a [Version]) -> Option<&'a Version> {
        published
            .iter()
            .filter(|version| self.requirement.matches(version))
            .max()
    }

    /// Whether `pin` pins this requirement's pack at a version it accepts.
    pub fn accepts(&self, pin: &Pin) -> bool {
        pin.pack == self.pack && self.requirement.matches(&pin.version)
    }

    /// The keys a pin for this requirement writes: its pack and its namespace.
    pub fn keys(&self) -> [PackKey; 2] {
        [
            PackKey::Pack(self.pack.clone()),
            PackKey::Namespace(self.namespace.clone()),
        ]
    }
}

/// What the hive decides on: the version and namespace chosen for each pack.
#[derive(Debug, Clone, Default)]
pub struct Lockfile {
    /// Pack name to its pinned version and namespace.
    pub packs: BTreeMap<String, (Version, String)>,
}

/// What a pin writes: its pack, and the namespace it claims.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PackKey {
    /// A pack's pinned version.
    Pack(String),
    /// A namespace's owner.
    Namespace(String),
}

/// Pin `pack` at `version` under `namespace`.
#[derive(Debug, Clone)]
pub struct Pin {
    /// The pack.
    pub pack: String,
    /// The version chosen.
    pub version: Version,
    /// Where it is mounted.
    pub namespace: String,
}

impl State for Lockfile {
    type Key = PackKey;
    type Change = Pin;

    fn apply(&mut self, pin: &Pin) {
        self.packs.insert(
            pin.pack.clone(),
            (pin.version.clone(), pin.namespace.clone()),
        );
    }
}

/// One requirement's agent: proposes the newest published version that satisfies it (every round,
/// so a round always has the work to do), and votes for the newest candidate that satisfies it, or
/// abstains.
#[derive(Debug, Clone)]
pub struct Resolver {
    /// The id of the proposal this resolver makes.
    pub id: ProposalId,
    /// The requirement it resolves.
    pub requirement: Requirement,
    /// The versions the registry publishes for the requirement's pack.
    pub published: Arc<[Version]>,
}

impl Resolver {
    /// The pin this resolver proposes: the newest published version its requirement accepts, or
    /// `None` when nothing published satisfies it.
    pub fn pin(&self) -> Option<Pin> {
        let wanted = &self.requirement;
        Some(Pin {
            pack: wanted.pack.clone(),
            version: wanted.newest(&self.published)?.clone(),
            namespace: wanted.namespace.clone(),
        })
    }

    /// The candidate this resolver votes for among `candidates` (proposal id and pin): the newest
    /// version of its pack that its requirement accepts.
    pub fn prefers<'a>(
        &self,
        candidates: impl IntoIterator<Item = (ProposalId, &'a Pin)>,
    ) -> Option<ProposalId> {
        candidates
            .into_iter()
            .filter(|(_, pin)| self.requirement.accepts(pin))
            .max_by(|a, b| a.1.version.cmp(&b.1.version))
            .map(|(id, _)| id)
    }
}

impl Agent<Lockfile> for Resolver {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Lockfile>,
    ) -> Result<Option<Proposal<PackKey, Pin>>, AgentError> {
        let wanted = &self.requirement;
        let Some(pin) = self.pin() else {
            return Err(AgentError::msg(format!(
                "no published version of `{}` satisfies {} (required by {})",
                wanted.pack, wanted.requirement, wanted.project
            )));
        };
        Ok(Some(Proposal::new(self.id, pin).writes(wanted.keys())))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Lockfile>,
        contest: &Contest<Lockfile>,
    ) -> Result<Vote, AgentError> {
        let candidates = contest.candidates.iter();
        let best = self.prefers(candidates.map(|candidate| (candidate.id, &candidate.change)));
        Ok(best.map_or(Vote::Abstain, Vote::For))
    }

    fn role(&self) -> Role {
        Role::Resolver
    }

    /// A resolver votes only on its own pack's version and its own namespace's owner: elsewhere it
    /// has no opinion, and asking it would only cost a call.
    fn interest(&self) -> Interest<PackKey> {
        Interest::Keys(self.requirement.keys().to_vec())
    }
}
