//! `aggregate`/`Aggregator::finish` against a sequential model of the resolution rule, on random
//! proposals: every proposal decided exactly once, no two accepted proposals conflict, the rule
//! holds group by group, and the parallel path equals the sequential one.

use hivekit_lockfree::{
    aggregate, Aggregate, Aggregator, Priority, Proposal, ProposalId, RejectReason, Resolution, Sum,
};
use proptest::prelude::*;

mod support;

use support::ProposalSpace;

/// Random proposals over 10 keys (up to 3 reads and 2 writes each), with `Sum` payloads.
fn proposals(max: usize) -> impl Strategy<Value = Vec<Proposal<u8, Sum<u64>>>> {
    support::proposals(
        ProposalSpace {
            max,
            keys: 10,
            reads: 4,
            writes: 3,
        },
        Sum,
    )
}

fn resolution() -> impl Strategy<Value = Resolution> {
    prop_oneof![
        Just(Resolution::HighestPriority),
        Just(Resolution::FirstSubmitted),
        Just(Resolution::RejectAll),
    ]
}

fn conflict(a: &Proposal<u8, Sum<u64>>, b: &Proposal<u8, Sum<u64>>) -> bool {
    a.writes.iter().any(|key| b.touches(key)) || b.writes.iter().any(|key| a.touches(key))
}

/// The documented rule, written the slow way: per contested key, the best member by the
/// resolution's order; a writer winner wins alone, a reader winner wins with every other reader.
fn model(
    proposals: &[Proposal<u8, Sum<u64>>],
    resolution: Resolution,
) -> Vec<Option<RejectReason<u8>>> {
    let mut reasons: Vec<Option<RejectReason<u8>>> = vec![None; proposals.len()];
    // Keys in first-appearance order, as the report orders groups.
    let mut keys = Vec::new();
    for proposal in proposals {
        for key in proposal.writes.iter().chain(&proposal.reads) {
            if !keys.contains(key) {
                keys.push(*key);
            }
        }
    }
    for key in keys {
        let members: Vec<usize> = (0..proposals.len())
            .filter(|&i| proposals[i].touches(&key))
            .collect();
        let writers = members
            .iter()
            .filter(|&&i| proposals[i].writes_key(&key))
            .count();
        if writers == 0 || members.len() < 2 {
            continue;
        }
        let best = match resolution {
            Resolution::RejectAll => {
                for &i in &members {
                    reasons[i].get_or_insert(RejectReason::RejectAll { key });
                }
                continue;
            }
            Resolution::FirstSubmitted => members[0],
            Resolution::HighestPriority => *members
                .iter()
                .min_by_key(|&&i| (std::cmp::Reverse(proposals[i].priority), proposals[i].id))
                .unwrap(),
        };
        let winner = proposals[best].id;
        for &i in &members {
            let loses = if proposals[best].writes_key(&key) {
                i != best
            } else {
                proposals[i].writes_key(&key)
            };
            if loses {
                reasons[i].get_or_insert(RejectReason::LostTo { winner, key });
            }
        }
    }
    reasons
}

fn check(
    proposals: &[Proposal<u8, Sum<u64>>],
    resolution: Resolution,
    outcome: &Aggregate<u8, Sum<u64>>,
) {
    let expected = model(proposals, resolution);
    let expected_accepted: Vec<ProposalId> = proposals
        .iter()
        .zip(&expected)
        .filter(|(_, reason)| reason.is_none())
        .map(|(p, _)| p.id)
        .collect();
    let expected_rejected: Vec<(ProposalId, RejectReason<u8>)> = proposals
        .iter()
        .zip(&expected)
        .filter_map(|(p, reason)| reason.clone().map(|reason| (p.id, reason)))
        .collect();
    assert_eq!(outcome.accepted, expected_accepted);
    assert_eq!(outcome.rejected, expected_rejected);
    assert_eq!(
        outcome.accepted.len() + outcome.rejected.len(),
        proposals.len()
    );
    // No two accepted proposals conflict.
    let accepted: Vec<&Proposal<u8, Sum<u64>>> = proposals
        .iter()
        .filter(|p| outcome.is_accepted(p.id))
        .collect();
    for (i, a) in accepted.iter().enumerate() {
        for b in &accepted[i + 1..] {
            assert!(!conflict(a, b), "{} and {} both accepted", a.id, b.id);
        }
    }
    let sum = accepted.iter().fold(None, |total: Option<u64>, p| {
        Some(total.unwrap_or(0).wrapping_add(p.payload.0))
    });
    assert_eq!(outcome.merged.map(|merged| merged.0), sum);
    // Independent proposals are always accepted.
    for id in &outcome.conflicts.independent {
        assert!(outcome.is_accepted(*id));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn aggregate_follows_the_rule(proposals in proposals(40), resolution in resolution()) {
        let outcome = aggregate(proposals.clone(), resolution).unwrap();
        check(&proposals, resolution, &outcome);
    }

    #[test]
    fn parallel_finish_equals_sequential(proposals in proposals(60), resolution in resolution()) {
        let run = |threshold| {
            let aggregator = Aggregator::with_parallel_threshold(threshold);
            for proposal in proposals.clone() {
                aggregator.submit(proposal).unwrap();
            }
            aggregator.finish(resolution)
        };
        let sequential = run(usize::MAX);
        let parallel = run(0);
        check(&proposals, resolution, &parallel);
        prop_assert_eq!(parallel, sequential);
    }
}

#[test]
fn highest_priority_in_a_chain_is_accepted_even_when_its_victim_wins_elsewhere() {
    // 1 (high) beats 2 on `a`; 2 beats 3 on `b` but is rejected; 3 stays rejected: groups are
    // decided independently and 3 lost `b`.
    let outcome = aggregate(
        vec![
            Proposal::new(1, Sum(1_u64))
                .writes([0u8])
                .priority(Priority::High),
            Proposal::new(2, Sum(2))
                .writes([0u8, 1])
                .priority(Priority::Normal),
            Proposal::new(3, Sum(4))
                .writes([1u8])
                .priority(Priority::Low),
        ],
        Resolution::HighestPriority,
    )
    .unwrap();
    assert_eq!(outcome.accepted, [ProposalId(1)]);
    assert_eq!(
        outcome.rejection(ProposalId(3)),
        Some(&RejectReason::LostTo {
            winner: ProposalId(2),
            key: 1
        })
    );
    assert_eq!(
        outcome
            .rejection(ProposalId(2))
            .map(ToString::to_string)
            .as_deref(),
        Some("lost to #1 on key 0")
    );
}
