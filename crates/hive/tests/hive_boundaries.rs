//! Boundary values of every hive configuration surface: consensus policies, electorates and their
//! weights, and the hive builder (timeout, in-flight bound, agent weights). Each case ends in a
//! typed error or the documented behaviour; rounds run on a paused clock under a virtual watchdog,
//! so none can hang.

mod support;

use std::time::Duration;

use hivekit_hive::{
    AgentId, Ballot, BallotError, ConcurrencyLimit, ConsensusPolicy, Electorate, Hive, HiveError,
    PolicyError, ProposalId, RejectReason, Tally, Threshold, TieBreak, Vote,
};
use proptest::prelude::*;
use support::{Behaviour, Ledger, Writer};

/// Longer than any round in this file means to take, on the paused clock.
const WATCHDOG: Duration = Duration::from_secs(24 * 60 * 60);

fn paused<F: std::future::Future>(future: F) -> Option<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async { tokio::time::timeout(WATCHDOG, future).await.ok() })
}

#[test]
fn weights_summing_past_f64_max_do_not_fake_a_quorum() {
    let electorate = Electorate::new((0..3).map(|voter| (AgentId(voter), f64::MAX))).unwrap();
    assert!(electorate.total_weight().is_finite());
    let policy = ConsensusPolicy::new(Threshold::Plurality, 1.0).unwrap();
    let mut ballot = Ballot::new(policy, electorate, [ProposalId(1), ProposalId(2)]).unwrap();
    ballot.cast(AgentId(0), Vote::For(ProposalId(1))).unwrap();
    assert!(
        matches!(ballot.tally(), Tally::NoQuorum { .. }),
        "{:?}",
        ballot.tally()
    );
    // With a quorum of a half, two of the three are enough, as with any three equal weights.
    let policy = ConsensusPolicy::new(Threshold::Majority, 0.5).unwrap();
    let electorate = Electorate::new((0..3).map(|voter| (AgentId(voter), f64::MAX))).unwrap();
    let mut ballot = Ballot::new(policy, electorate, [ProposalId(1), ProposalId(2)]).unwrap();
    ballot.cast(AgentId(0), Vote::For(ProposalId(1))).unwrap();
    assert!(matches!(ballot.tally(), Tally::NoQuorum { .. }));
    ballot.cast(AgentId(1), Vote::For(ProposalId(1))).unwrap();
    assert_eq!(ballot.tally().winner(), Some(ProposalId(1)));
}

#[test]
fn three_agents_of_weight_f64_max_with_two_timing_out_do_not_commit() {
    let hive = Hive::builder(Ledger::default())
        .agent_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    hive.spawn_weighted(Writer::new(1, 7), f64::MAX).unwrap();
    hive.spawn_weighted(Writer::new(2, 7).voting(Behaviour::Never), f64::MAX)
        .unwrap();
    hive.spawn_weighted(Writer::silent().voting(Behaviour::Never), f64::MAX)
        .unwrap();
    let decision = paused(hive.decide()).expect("the round ends").unwrap();
    assert!(decision.accepted.is_empty(), "{decision:?}");
    assert_eq!(
        decision.rejection(ProposalId(1)),
        Some(&RejectReason::NoQuorum)
    );
    assert_eq!(hive.memory().version(), 0);
}

fn float_edge() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(1.0),
        Just(0.5),
        Just(1.0 - f64::EPSILON),
        Just(1.0 + f64::EPSILON),
        Just(-1.0),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(f64::MIN_POSITIVE),
        Just(f64::MIN_POSITIVE / 2.0), // subnormal
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
    ]
}

fn u32_edge() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(2),
        Just(3),
        Just(u32::MAX - 1),
        Just(u32::MAX)
    ]
}

fn threshold() -> impl Strategy<Value = Threshold> {
    prop_oneof![
        Just(Threshold::Plurality),
        Just(Threshold::Majority),
        Just(Threshold::Unanimous),
        (u32_edge(), u32_edge()).prop_map(|(num, den)| Threshold::Supermajority { num, den }),
    ]
}

fn tie_break() -> impl Strategy<Value = TieBreak> {
    prop_oneof![Just(TieBreak::LowestId), Just(TieBreak::NoDecision)]
}

/// A weight unit `w` with `w / 2` exact, so that weights `{w / 2, w}` are in the ratio `1 : 2`.
fn unit() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::MAX),
        Just(1.0),
        Just(f64::MIN_POSITIVE * 2.0),
        Just(f64::MIN_POSITIVE),
        Just(f64::from_bits(2)), // the second-smallest subnormal
    ]
}

fn policy_is_valid(threshold: Threshold, quorum: f64) -> bool {
    let fraction = match threshold {
        Threshold::Supermajority { num, den } => den != 0 && num != 0 && num <= den,
        _ => true,
    };
    fraction && quorum > 0.0 && quorum <= 1.0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every threshold fraction and quorum at its edges is either rejected with the error naming it,
    /// or accepted exactly when it is a fraction in (0, 1].
    #[test]
    fn consensus_policies_at_their_edges_are_valid_exactly_when_documented(
        threshold in threshold(),
        quorum in float_edge(),
        weighted in any::<bool>(),
        tie_break in tie_break(),
    ) {
        let built = ConsensusPolicy::new(threshold, quorum)
            .map(|policy| policy.with_weighted(weighted).with_tie_break(tie_break));
        let by_hand = ConsensusPolicy { threshold, quorum, weighted, tie_break };
        prop_assert_eq!(built.is_ok(), policy_is_valid(threshold, quorum));
        prop_assert_eq!(by_hand.validate().is_ok(), built.is_ok());
        match built {
            Ok(_) => {}
            Err(PolicyError::QuorumOutOfRange { quorum: named }) => {
                prop_assert!(named.to_bits() == quorum.to_bits());
            }
            Err(PolicyError::ZeroDenominator { num, den }) | Err(PolicyError::FractionOutOfRange { num, den }) => {
                prop_assert_eq!(threshold, Threshold::Supermajority { num, den });
            }
        }
        // A ballot refuses an invalid policy assembled by hand, too.
        let electorate = Electorate::equal([AgentId(0)]).unwrap();
        let ballot = Ballot::new(by_hand, electorate, [ProposalId(1)]);
        prop_assert_eq!(ballot.is_ok(), policy_is_valid(threshold, quorum));
    }

    /// Weights at their edges: NaN, infinite and negative weights are refused by name; any others,
    /// however large or small, give the outcome their ratios give. Voters weigh `unit / 2` or
    /// `unit`; the ballot must decide as one whose voters weigh 1 or 2.
    #[test]
    fn electorates_at_their_edges_decide_by_the_ratios_of_their_weights(
        unit in unit(),
        heavy in prop::collection::vec(any::<bool>(), 1..8),
        votes in prop::collection::vec(prop::option::of(prop::option::of(0_u64..3)), 8),
        threshold in threshold(),
        quorum in prop_oneof![Just(f64::MIN_POSITIVE), Just(0.25), Just(0.5), Just(1.0)],
        tie_break in tie_break(),
    ) {
        prop_assume!(policy_is_valid(threshold, quorum));
        let policy = ConsensusPolicy { threshold, quorum, weighted: true, tie_break };
        let weights = |scale: f64, half: f64| -> Vec<(AgentId, f64)> {
            heavy.iter().enumerate().map(|(voter, &heavy)| (AgentId(voter as u64), if heavy { scale } else { half })).collect()
        };
        let candidates = [ProposalId(0), ProposalId(1), ProposalId(2)];
        let mut scaled = Ballot::new(policy, Electorate::new(weights(unit, unit / 2.0)).unwrap(), candidates).unwrap();
        let mut model = Ballot::new(policy, Electorate::new(weights(2.0, 1.0)).unwrap(), candidates).unwrap();
        for (voter, vote) in votes.iter().take(heavy.len()).enumerate() {
            let Some(vote) = vote else { continue };
            let vote = vote.map_or(Vote::Abstain, |candidate| Vote::For(ProposalId(candidate)));
            scaled.cast(AgentId(voter as u64), vote).unwrap();
            model.cast(AgentId(voter as u64), vote).unwrap();
        }
        prop_assert!(scaled.tally().same_outcome(&model.tally()), "{:?} vs {:?}", scaled.tally(), model.tally());
    }

    /// A single bad weight anywhere is refused, naming the voter and the weight.
    #[test]
    fn invalid_weights_are_refused_by_name(weight in float_edge(), position in 0_usize..4) {
        let voters: Vec<(AgentId, f64)> = (0..4)
            .map(|voter| (AgentId(voter), if voter as usize == position { weight } else { 1.0 }))
            .collect();
        match Electorate::new(voters) {
            Ok(electorate) => {
                prop_assert!(weight.is_finite() && weight >= 0.0);
                prop_assert!(electorate.total_weight().is_finite() && electorate.total_weight() > 0.0);
            }
            Err(BallotError::InvalidWeight { voter, weight: named }) => {
                prop_assert!(!(weight.is_finite() && weight >= 0.0));
                prop_assert_eq!(voter, AgentId(position as u64));
                prop_assert!(named.to_bits() == weight.to_bits());
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        }
    }

    /// The hive builder and `spawn_weighted` at their edges: typed errors for a zero timeout, a
    /// zero in-flight bound, an invalid policy and invalid weights; otherwise a round that ends,
    /// with a slow agent timed out exactly when the timeout is shorter than it.
    #[test]
    fn hive_builders_at_their_edges_give_a_typed_error_or_a_round_that_ends(
        timeout in prop_oneof![
            Just(Duration::ZERO),
            Just(Duration::from_nanos(1)),
            Just(Duration::from_secs(1)),
            Just(Duration::MAX - Duration::from_nanos(1)),
            Just(Duration::MAX),
        ],
        max_in_flight in prop_oneof![Just(0_usize), Just(1), Just(2), Just(usize::MAX - 1), Just(usize::MAX)],
        quorum in float_edge(),
        weight in float_edge(),
    ) {
        let policy = ConsensusPolicy { quorum, ..ConsensusPolicy::default() };
        // A bound of zero cannot be built: the limit type itself refuses it.
        let limit = match ConcurrencyLimit::new(max_in_flight) {
            Ok(limit) => limit,
            Err(error) => { prop_assert_eq!(max_in_flight, 0, "{}", error); return Ok(()); }
        };
        let built = Hive::builder(Ledger::default())
            .policy(policy)
            .agent_timeout(timeout)
            .max_in_flight(limit)
            .build();
        let hive = match built {
            Ok(hive) => {
                prop_assert!(!timeout.is_zero() && max_in_flight != 0 && policy.validate().is_ok());
                hive
            }
            Err(HiveError::ZeroTimeout) => { prop_assert!(timeout.is_zero()); return Ok(()); }
            Err(HiveError::Policy(_)) => { prop_assert!(policy.validate().is_err()); return Ok(()); }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        };
        let valid_weight = weight.is_finite() && weight >= 0.0;
        match hive.spawn_weighted(Writer::new(1, 7), weight) {
            Ok(_) => prop_assert!(valid_weight),
            Err(HiveError::InvalidWeight { weight: named }) => {
                prop_assert!(!valid_weight);
                prop_assert!(named.to_bits() == weight.to_bits());
                return Ok(());
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        }
        hive.spawn_weighted(Writer::new(2, 7), weight).unwrap();
        let slow = Duration::from_millis(10);
        hive.spawn_weighted(Writer::silent().voting(Behaviour::Slow(slow)), weight).unwrap();
        let decision = paused(hive.decide()).expect("the round ends").unwrap();
        // The slow voter times out exactly when the timeout is shorter than it and it is asked
        // (a ballot is held and has not settled without it).
        prop_assert!(decision.failures.len() <= usize::from(timeout < slow && weight > 0.0), "{:?}", decision.failures);
        // Proposals 1 and 2 conflict on key 7: at most one is accepted, never both.
        prop_assert!(decision.accepted.len() <= 1, "{decision:?}");
        if weight == 0.0 {
            // Nobody weighs anything: no ballot can be held, nothing is committed.
            prop_assert!(decision.accepted.is_empty());
        }
    }
}
