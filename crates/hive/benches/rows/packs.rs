//! The pack-resolution workload of the `resolve_packs` example, shared by the criterion suite
//! (`configuration_analysis`) and the instruction suite (`decide/hivekit-decide/packs_200`): the
//! example's agents, compiled in by path (a bench cannot depend on the examples package, which
//! depends on this crate, and a copy would drift), and one resolver per generated requirement.

use benches_common::agents::PackSpec;
use hivekit_hive::ProposalId;
use semver::Version;

// The example uses what the benches do not.
#[allow(dead_code, unreachable_pub)]
#[path = "../../../../examples/src/packs.rs"]
pub(crate) mod example;

use example::{Requirement, Resolver};

/// One resolver per generated requirement, as in the example.
pub(crate) fn pack_resolvers(packs: &[PackSpec]) -> Vec<Resolver> {
    packs
        .iter()
        .enumerate()
        .map(|(index, pack)| Resolver {
            id: ProposalId(index as u64),
            requirement: Requirement::new(
                &format!("project-{index}"),
                &pack.name,
                &pack.requirement,
                &pack.namespace,
            )
            .expect("generated requirements parse"),
            published: pack
                .published
                .iter()
                .map(|version| Version::parse(version).expect("generated versions parse"))
                .collect(),
        })
        .collect()
}
