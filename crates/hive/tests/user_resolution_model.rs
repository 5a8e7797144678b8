//! Every resolution strategy and consensus policy against a hand-written model of one round.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentFailure, AgentId, ConflictKind, ConsensusPolicy, Contest,
    Decision, FailureKind, Hive, HiveEvent, HiveEventSink, Phase, Priority, Proposal, ProposalId,
    ProposalOf, RejectReason, ResolutionStrategy, Snapshot, State, Tally, Threshold, TieBreak,
    Vote, VoterChoice,
};
use proptest::prelude::*;

/// The log of every applied change (a proposal id), in order.
#[derive(Clone, Debug, Default, PartialEq)]
struct Log(Vec<u64>);

impl State for Log {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0.push(*change);
    }
}

const KEYS: u64 = 5;
const INVALID: u64 = 9_999;

#[derive(Debug, Clone)]
enum Rule {
    Pick(usize),
    Abstain,
    Invalid,
    Fail,
}

#[derive(Debug, Clone)]
struct Spec {
    id: u64,
    reads: Vec<u64>,
    writes: Vec<u64>,
    priority: usize,
}

#[derive(Debug, Clone)]
struct Script {
    proposal: Option<Spec>,
    propose_fails: bool,
    /// The rule for a contest on key k.
    votes: Vec<Rule>,
    weight: u32,
}

struct Scripted(Script);

fn vote_of(rule: &Rule, candidates: &[ProposalId]) -> Result<Vote, AgentError> {
    match rule {
        Rule::Pick(i) => Ok(Vote::For(candidates[i % candidates.len()])),
        Rule::Abstain => Ok(Vote::Abstain),
        Rule::Invalid => Ok(Vote::For(ProposalId(INVALID))),
        Rule::Fail => Err(AgentError::msg("scripted vote failure")),
    }
}

impl Agent<Log> for Scripted {
    async fn propose(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Log>,
    ) -> Result<Option<ProposalOf<Log>>, AgentError> {
        if self.0.propose_fails {
            return Err(AgentError::msg("scripted propose failure"));
        }
        Ok(self.0.proposal.as_ref().map(|spec| {
            Proposal::new(ProposalId(spec.id), spec.id)
                .reads(spec.reads.iter().copied())
                .writes(spec.writes.iter().copied())
                .priority(Priority::ALL[spec.priority])
        }))
    }

    async fn vote(
        &self,
        _ctx: &AgentContext,
        _view: &Snapshot<Log>,
        contest: &Contest<Log>,
    ) -> Result<Vote, AgentError> {
        let ids: Vec<ProposalId> = contest.candidates.iter().map(|c| c.id).collect();
        vote_of(&self.0.votes[contest.key as usize], &ids)
    }
}

// ---------------------------------------------------------------- the model

struct Group {
    key: u64,
    kind: ConflictKind,
    members: Vec<(usize, bool)>, // (index into proposals, writes)
}

fn groups_of(proposals: &[&Spec]) -> Vec<Group> {
    let mut order: Vec<u64> = Vec::new();
    for spec in proposals {
        for key in spec.writes.iter().chain(&spec.reads) {
            if !order.contains(key) {
                order.push(*key);
            }
        }
    }
    let mut groups = Vec::new();
    for key in order {
        let members: Vec<(usize, bool)> = proposals
            .iter()
            .enumerate()
            .filter(|(_, s)| s.writes.contains(&key) || s.reads.contains(&key))
            .map(|(i, s)| (i, s.writes.contains(&key)))
            .collect();
        let writers = members.iter().filter(|(_, w)| *w).count();
        if writers >= 1 && members.len() >= 2 {
            groups.push(Group {
                key,
                kind: if writers >= 2 {
                    ConflictKind::WriteWrite
                } else {
                    ConflictKind::ReadWrite
                },
                members,
            });
        }
    }
    groups
}

fn model_tally(
    policy: &ConsensusPolicy,
    candidates: &[ProposalId],
    answers: &[(Option<Option<ProposalId>>, f64)], // None: absent; Some(None): abstain
) -> Tally {
    let total: f64 = answers.iter().map(|(_, w)| w).sum();
    let turnout: f64 = answers
        .iter()
        .filter(|(a, _)| a.is_some())
        .map(|(_, w)| w)
        .sum();
    if turnout + total * 1e-12 < policy.quorum * total {
        return Tally::NoQuorum {
            turnout,
            required: policy.quorum * total,
        };
    }
    let mut support = vec![0.0; candidates.len()];
    for (answer, w) in answers {
        if let Some(Some(c)) = answer {
            let at = candidates.iter().position(|x| x == c).unwrap();
            support[at] += w;
        }
    }
    let cast: f64 = support.iter().sum();
    let top = support.iter().cloned().fold(0.0, f64::max);
    if top <= 0.0 {
        return Tally::Undecided;
    }
    let meets = match policy.threshold {
        Threshold::Plurality => true,
        Threshold::Majority => top * 2.0 > cast,
        Threshold::Supermajority { num, den } => top * f64::from(den) >= cast * f64::from(num),
        Threshold::Unanimous => top >= cast,
    };
    if !meets {
        return Tally::Undecided;
    }
    let mut tied: Vec<ProposalId> = candidates
        .iter()
        .zip(&support)
        .filter(|(_, s)| **s == top)
        .map(|(c, _)| *c)
        .collect();
    tied.sort();
    if tied.len() == 1 || policy.tie_break == TieBreak::LowestId {
        return Tally::Decided {
            winner: tied[0],
            support: top / cast,
        };
    }
    Tally::Tie { candidates: tied }
}

struct Expected {
    accepted: Vec<ProposalId>,
    rejected: Vec<(ProposalId, RejectReason)>,
    propose_failures: Vec<AgentFailure>,
    groups: Vec<(u64, ConflictKind, Vec<ProposalId>)>,
    tallies: Vec<Tally>,
    proposers: Vec<(ProposalId, AgentId)>,
}

fn model(
    scripts: &[Script],
    ids: &[AgentId],
    resolution: ResolutionStrategy,
    policy: &ConsensusPolicy,
) -> Expected {
    let mut proposals: Vec<&Spec> = Vec::new();
    let mut proposers: Vec<(ProposalId, AgentId)> = Vec::new();
    let mut propose_failures = Vec::new();
    for (i, script) in scripts.iter().enumerate() {
        if script.propose_fails {
            propose_failures.push(AgentFailure {
                agent: ids[i],
                phase: Phase::Propose,
                kind: FailureKind::Errored {
                    error: AgentError::msg("scripted propose failure"),
                },
            });
            continue;
        }
        let Some(spec) = &script.proposal else {
            continue;
        };
        if let Some(held) = proposers.iter().find(|(p, _)| p.0 == spec.id) {
            propose_failures.push(AgentFailure {
                agent: ids[i],
                phase: Phase::Propose,
                kind: FailureKind::DuplicateProposal {
                    id: ProposalId(spec.id),
                    holder: held.1,
                },
            });
            continue;
        }
        proposals.push(spec);
        proposers.push((ProposalId(spec.id), ids[i]));
    }
    let groups = groups_of(&proposals);
    let id = |i: usize| ProposalId(proposals[i].id);
    let mut rejected: Vec<Option<RejectReason>> = vec![None; proposals.len()];
    let mut tallies = Vec::new();
    for group in &groups {
        let reject_losers =
            |rejected: &mut Vec<Option<RejectReason>>, winner: usize, reason: RejectReason| {
                let winner_writes = group.members.iter().find(|(m, _)| *m == winner).unwrap().1;
                for &(m, w) in &group.members {
                    if m != winner && (winner_writes || w) && rejected[m].is_none() {
                        rejected[m] = Some(reason.clone());
                    }
                }
            };
        let reject_all = |rejected: &mut Vec<Option<RejectReason>>, reason: RejectReason| {
            for &(m, _) in &group.members {
                if rejected[m].is_none() {
                    rejected[m] = Some(reason.clone());
                }
            }
        };
        match resolution {
            ResolutionStrategy::Vote => {
                let candidates: Vec<ProposalId> =
                    group.members.iter().map(|(m, _)| id(*m)).collect();
                let answers: Vec<(Option<Option<ProposalId>>, f64)> = scripts
                    .iter()
                    .map(|s| {
                        let w = if policy.weighted {
                            f64::from(s.weight)
                        } else {
                            1.0
                        };
                        let a = match &s.votes[group.key as usize] {
                            Rule::Pick(i) => Some(Some(candidates[i % candidates.len()])),
                            Rule::Abstain => Some(None),
                            Rule::Invalid | Rule::Fail => None,
                        };
                        (a, w)
                    })
                    .collect();
                let tally = model_tally(policy, &candidates, &answers);
                match tally.winner() {
                    Some(winner) => {
                        let at = group
                            .members
                            .iter()
                            .find(|(m, _)| id(*m) == winner)
                            .unwrap()
                            .0;
                        reject_losers(&mut rejected, at, RejectReason::LostVote { winner });
                    }
                    None => {
                        let reason = match tally {
                            Tally::NoQuorum { .. } => RejectReason::NoQuorum,
                            Tally::Tie { .. } => RejectReason::Tie,
                            _ => RejectReason::Undecided,
                        };
                        reject_all(&mut rejected, reason);
                    }
                }
                tallies.push(tally);
            }
            ResolutionStrategy::HighestPriority => {
                let winner = group
                    .members
                    .iter()
                    .map(|(m, _)| *m)
                    .min_by_key(|&m| (std::cmp::Reverse(proposals[m].priority), proposals[m].id))
                    .unwrap();
                reject_losers(
                    &mut rejected,
                    winner,
                    RejectReason::ConflictWith { winner: id(winner) },
                );
            }
            ResolutionStrategy::FirstProposed => {
                let winner = group.members[0].0;
                reject_losers(
                    &mut rejected,
                    winner,
                    RejectReason::ConflictWith { winner: id(winner) },
                );
            }
            ResolutionStrategy::RejectAll => reject_all(&mut rejected, RejectReason::Contested),
        }
    }
    let mut accepted = Vec::new();
    let mut rejections = Vec::new();
    for (i, r) in rejected.into_iter().enumerate() {
        match r {
            None => accepted.push(id(i)),
            Some(reason) => rejections.push((id(i), reason)),
        }
    }
    Expected {
        accepted,
        rejected: rejections,
        propose_failures,
        groups: groups
            .iter()
            .map(|g| {
                (
                    g.key,
                    g.kind,
                    g.members.iter().map(|(m, _)| id(*m)).collect(),
                )
            })
            .collect(),
        tallies,
        proposers,
    }
}

// ---------------------------------------------------------------- strategies

fn keys() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(0..KEYS, 0..3)
}

fn spec() -> impl Strategy<Value = Spec> {
    (1u64..10, keys(), keys(), 0usize..4).prop_map(|(id, reads, writes, priority)| Spec {
        id,
        reads,
        writes,
        priority,
    })
}

fn rule() -> impl Strategy<Value = Rule> {
    prop_oneof![
        6 => (0usize..4).prop_map(Rule::Pick),
        2 => Just(Rule::Abstain),
        1 => Just(Rule::Invalid),
        1 => Just(Rule::Fail),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    (
        prop::option::weighted(0.85, spec()),
        prop::bool::weighted(0.1),
        prop::collection::vec(rule(), KEYS as usize),
        1u32..4,
    )
        .prop_map(|(proposal, propose_fails, votes, weight)| Script {
            proposal,
            propose_fails,
            votes,
            weight,
        })
}

fn policy() -> impl Strategy<Value = ConsensusPolicy> {
    let threshold = prop_oneof![
        Just(Threshold::Plurality),
        Just(Threshold::Majority),
        Just(Threshold::Supermajority { num: 2, den: 3 }),
        Just(Threshold::Unanimous),
    ];
    let quorum = prop_oneof![Just(0.25), Just(0.5), Just(0.75), Just(1.0)];
    let tie = prop_oneof![Just(TieBreak::LowestId), Just(TieBreak::NoDecision)];
    (threshold, quorum, any::<bool>(), tie).prop_map(|(threshold, quorum, weighted, tie)| {
        ConsensusPolicy::new(threshold, quorum)
            .unwrap()
            .with_weighted(weighted)
            .with_tie_break(tie)
    })
}

fn resolution() -> impl Strategy<Value = ResolutionStrategy> {
    prop_oneof![
        3 => Just(ResolutionStrategy::Vote),
        1 => Just(ResolutionStrategy::HighestPriority),
        1 => Just(ResolutionStrategy::FirstProposed),
        1 => Just(ResolutionStrategy::RejectAll),
    ]
}

// ---------------------------------------------------------------- the check

fn run(scripts: Vec<Script>, resolution: ResolutionStrategy, policy: ConsensusPolicy) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let events: Arc<Mutex<Vec<HiveEvent<u64>>>> = Arc::default();
        let sink = {
            let events = Arc::clone(&events);
            HiveEventSink::callback(move |event| events.lock().unwrap().push(event))
        };
        let initial = Log(vec![424_242]);
        let hive = Hive::builder(initial.clone())
            .resolution(resolution)
            .policy(policy)
            .events(sink)
            .history(4)
            .build()
            .unwrap();
        let ids: Vec<AgentId> = scripts
            .iter()
            .map(|s| {
                hive.spawn_weighted(Scripted(s.clone()), f64::from(s.weight))
                    .unwrap()
            })
            .collect();
        let expected = model(&scripts, &ids, resolution, &policy);
        let decision: Decision<Log> =
            tokio::time::timeout(std::time::Duration::from_secs(10), hive.decide())
                .await
                .expect("a round of immediate agents hung")
                .expect("decide failed");
        let context =
            format!("{decision:#}\nscripts: {scripts:#?}\npolicy {policy:?} {resolution:?}");

        assert_eq!(
            decision.proposers, expected.proposers,
            "proposers\n{context}"
        );
        assert_eq!(decision.accepted, expected.accepted, "accepted\n{context}");
        assert_eq!(decision.rejected, expected.rejected, "rejected\n{context}");
        let propose_failures: Vec<AgentFailure> = decision
            .failures
            .iter()
            .filter(|f| f.phase == Phase::Propose)
            .cloned()
            .collect();
        assert_eq!(
            propose_failures, expected.propose_failures,
            "propose failures\n{context}"
        );

        // The state: the initial one with the accepted changes applied in order.
        let mut want = initial.clone();
        for id in &expected.accepted {
            want.apply(&id.0);
        }
        let now = hive.memory().load();
        assert_eq!(*now, want, "state\n{context}");
        let want_version = u64::from(!expected.accepted.is_empty());
        assert_eq!(
            (decision.base_version, decision.version),
            (0, want_version),
            "{context}"
        );
        assert_eq!(now.version(), want_version);
        assert!(!decision.rebased);
        assert_eq!(decision.round, 1);
        assert_eq!(decision.agents, scripts.len());
        assert_eq!(decision.proposals, expected.proposers.len());
        if want_version == 1 {
            let entry = hive
                .memory()
                .at(1)
                .expect("the committed version is in the history");
            assert_eq!(entry.decision.accepted, decision.accepted);
            assert_eq!(*entry.snapshot, want);
        }

        // Ballots: one per group under a vote, none otherwise.
        if resolution == ResolutionStrategy::Vote {
            assert_eq!(decision.ballots.len(), expected.groups.len(), "{context}");
            let mut vote_failed = 0;
            for ((ballot, (key, kind, members)), tally) in decision
                .ballots
                .iter()
                .zip(&expected.groups)
                .zip(&expected.tallies)
            {
                assert_eq!(
                    (&ballot.key, &ballot.kind, &ballot.candidates),
                    (key, kind, members),
                    "{context}"
                );
                assert!(
                    ballot.tally.same_outcome(tally),
                    "tally on key {key}: {:?} vs model {tally:?}\n{context}",
                    ballot.tally
                );
                let voters: Vec<_> = ballot.voters().collect();
                assert_eq!(
                    voters.len(),
                    scripts.len(),
                    "every agent is a voter\n{context}"
                );
                let (mut counted, mut failed, mut not_counted) = (0, 0, 0);
                for record in &voters {
                    let at = ids.iter().position(|id| *id == record.voter).unwrap();
                    let rule = &scripts[at].votes[*key as usize];
                    match record.choice {
                        VoterChoice::For(c) => {
                            counted += 1;
                            assert!(
                                matches!(rule, Rule::Pick(i) if members[i % members.len()] == c),
                                "{record:?} under {rule:?}\n{context}"
                            );
                        }
                        VoterChoice::Abstain => {
                            counted += 1;
                            assert!(
                                matches!(rule, Rule::Abstain),
                                "{record:?} under {rule:?}\n{context}"
                            );
                        }
                        VoterChoice::Failed => {
                            failed += 1;
                            assert!(
                                matches!(rule, Rule::Invalid | Rule::Fail),
                                "{record:?} under {rule:?}\n{context}"
                            );
                        }
                        VoterChoice::NotCounted => not_counted += 1,
                    }
                }
                vote_failed += failed;
                assert_eq!(ballot.votes, counted, "votes\n{context}");
                assert_eq!(ballot.cancelled, not_counted, "cancelled\n{context}");
            }
            let vote_failures: Vec<&AgentFailure> = decision
                .failures
                .iter()
                .filter(|f| f.phase == Phase::Vote)
                .collect();
            assert_eq!(vote_failures.len(), vote_failed, "vote failures\n{context}");
            for failure in vote_failures {
                assert!(
                    matches!(
                        &failure.kind,
                        FailureKind::InvalidVote { candidate } if candidate.0 == INVALID
                    ) || matches!(&failure.kind, FailureKind::Errored { .. }),
                    "{failure:?}\n{context}"
                );
            }
        } else {
            assert!(decision.ballots.is_empty(), "{context}");
            assert!(decision.failures.iter().all(|f| f.phase == Phase::Propose));
        }

        // Stats and events agree with the decision.
        let stats = hive.stats();
        assert_eq!(stats.rounds, 1);
        assert_eq!(stats.commits, want_version);
        assert_eq!(stats.proposals, decision.proposals as u64);
        assert_eq!(stats.accepted, decision.accepted.len() as u64);
        assert_eq!(stats.rejected, decision.rejected.len() as u64);
        assert_eq!(stats.conflicts, expected.groups.len() as u64, "{context}");
        assert_eq!(
            stats.votes,
            decision.ballots.iter().map(|b| b.votes as u64).sum::<u64>()
        );
        assert_eq!(
            stats.cancelled_votes,
            decision
                .ballots
                .iter()
                .map(|b| b.cancelled as u64)
                .sum::<u64>()
        );
        assert_eq!(
            stats.errors + stats.invalid,
            decision.failures.len() as u64,
            "{context}"
        );
        let events = events.lock().unwrap().clone();
        let conflicts: Vec<(u64, ConflictKind, Vec<ProposalId>)> = events
            .iter()
            .filter_map(|e| match e {
                HiveEvent::ConflictFound {
                    key,
                    kind,
                    candidates,
                    ..
                } => Some((*key, *kind, candidates.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(conflicts, expected.groups, "conflict events\n{context}");
        let failed_events = events
            .iter()
            .filter(|e| matches!(e, HiveEvent::AgentFailed { .. }))
            .count();
        assert_eq!(
            failed_events,
            decision.failures.len(),
            "failure events\n{context}"
        );
        let settled: Vec<(u64, Tally, usize)> = events
            .iter()
            .filter_map(|e| match e {
                HiveEvent::BallotSettled {
                    key, tally, votes, ..
                } => Some((*key, tally.clone(), *votes)),
                _ => None,
            })
            .collect();
        let from_ballots: Vec<(u64, Tally, usize)> = decision
            .ballots
            .iter()
            .map(|b| (b.key, b.tally.clone(), b.votes))
            .collect();
        assert_eq!(settled, from_ballots);
        let last = events.last().expect("events");
        if want_version == 1 {
            assert_eq!(
                last,
                &HiveEvent::Committed {
                    round: 1,
                    version: 1,
                    accepted: decision.accepted.len(),
                    rebased: false
                }
            );
        } else {
            assert_eq!(last, &HiveEvent::NothingToCommit { round: 1 });
        }
        let _ = BTreeMap::<u8, u8>::new();

        // A second round on the same hive after the weights changed: the same model, new weights.
        let mut second = scripts.clone();
        for (script, id) in second.iter_mut().zip(&ids) {
            script.weight = 4 - script.weight;
            hive.set_weight(*id, f64::from(script.weight)).unwrap();
        }
        let expected2 = model(&second, &ids, resolution, &policy);
        let decision2 = tokio::time::timeout(std::time::Duration::from_secs(10), hive.decide())
            .await
            .expect("second round hung")
            .expect("second decide failed");
        let context2 =
            format!("{decision2:#}\nscripts: {second:#?}\npolicy {policy:?} {resolution:?}");
        assert_eq!(decision2.round, 2);
        assert_eq!(
            decision2.accepted, expected2.accepted,
            "second round accepted\n{context2}"
        );
        assert_eq!(
            decision2.rejected, expected2.rejected,
            "second round rejected\n{context2}"
        );
        for (ballot, tally) in decision2.ballots.iter().zip(&expected2.tallies) {
            assert!(
                ballot.tally.same_outcome(tally),
                "second round tally {:?} vs {tally:?}\n{context2}",
                ballot.tally
            );
            for record in ballot.voters() {
                let at = ids.iter().position(|id| *id == record.voter).unwrap();
                let want = if policy.weighted {
                    f64::from(second[at].weight)
                } else {
                    1.0
                };
                assert_eq!(
                    record.weight, want,
                    "voter weight after set_weight\n{context2}"
                );
            }
        }
        for id in &expected2.accepted {
            want.apply(&id.0);
        }
        let after = hive.memory().load();
        assert_eq!(*after, want, "state after two rounds\n{context2}");
        let versions = want_version + u64::from(!expected2.accepted.is_empty());
        assert_eq!(
            (decision2.base_version, decision2.version, after.version()),
            (want_version, versions, versions)
        );
        let stats = hive.stats();
        assert_eq!(
            stats.accepted,
            (decision.accepted.len() + decision2.accepted.len()) as u64
        );
        assert_eq!(
            stats.rejected,
            (decision.rejected.len() + decision2.rejected.len()) as u64
        );
        assert_eq!(stats.commits, versions);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_round_decides_what_the_model_decides(
        scripts in prop::collection::vec(script(), 1..7),
        resolution in resolution(),
        policy in policy(),
    ) {
        run(scripts, resolution, policy);
    }
}
