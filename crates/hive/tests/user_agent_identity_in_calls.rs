//! Agents that know who they are: the context of every call names the agent the hive spawned, the
//! round the decision reports, and a proposal id the hive assigned to that agent for that round,
//! the same in the propose and the vote phase, unique across agents, rounds, removals and
//! re-spawns, with or without supervision.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::{
    Agent, AgentContext, AgentError, AgentId, Contest, Decision, Hive, ProposalId, ProposalOf,
    Snapshot, State, Supervision, Vote,
};
use parking_lot::Mutex;

#[derive(Clone, Default, Debug)]
struct Sum(u64);

impl State for Sum {
    type Key = u64;
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Propose {
        agent: AgentId,
        round: u64,
        id: ProposalId,
    },
    Vote {
        agent: AgentId,
        round: u64,
        id: ProposalId,
        own: Option<ProposalId>,
    },
}

/// Proposes under its hive-assigned id on key 0 (so every round holds a ballot) and records what
/// its contexts say.
struct Recorder {
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Agent<Sum> for Recorder {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Sum>,
    ) -> Result<Option<ProposalOf<Sum>>, AgentError> {
        self.log.lock().push(Seen::Propose {
            agent: ctx.agent(),
            round: ctx.round(),
            id: ctx.proposal_id(),
        });
        Ok(Some(ctx.proposal(1).writes([0])))
    }

    async fn vote(
        &self,
        ctx: &AgentContext,
        _: &Snapshot<Sum>,
        contest: &Contest<Sum>,
    ) -> Result<Vote, AgentError> {
        self.log.lock().push(Seen::Vote {
            agent: ctx.agent(),
            round: ctx.round(),
            id: ctx.proposal_id(),
            own: ctx.own(contest).map(|candidate| candidate.id),
        });
        Ok(contest.preferred().map_or(Vote::Abstain, Vote::For))
    }
}

async fn decide(hive: &Hive<Sum>) -> Decision<Sum> {
    tokio::time::timeout(Duration::from_secs(5), hive.decide())
        .await
        .expect("the round ends")
        .expect("the round decides")
}

/// Checks one round's log against its decision; returns the proposal ids the round assigned.
fn check_round(decision: &Decision<Sum>, members: &[AgentId], log: &[Seen]) -> Vec<ProposalId> {
    let mut assigned = Vec::new();
    for &agent in members {
        let proposed: Vec<ProposalId> = log
            .iter()
            .filter_map(|seen| match *seen {
                Seen::Propose {
                    agent: who,
                    round,
                    id,
                } if who == agent => {
                    assert_eq!(round, decision.round, "{agent}'s propose context round");
                    Some(id)
                }
                _ => None,
            })
            .collect();
        assert_eq!(proposed.len(), 1, "{agent} asked to propose once: {log:?}");
        let id = proposed[0];
        assert_eq!(
            decision.proposer(id),
            Some(agent),
            "the decision names {agent} as the proposer of its context's id"
        );
        for seen in log {
            if let Seen::Vote {
                agent: who,
                round,
                id: vote_id,
                own,
            } = *seen
            {
                if who == agent {
                    assert_eq!(round, decision.round, "{agent}'s vote context round");
                    assert_eq!(vote_id, id, "{agent}'s vote context keeps its proposal id");
                    assert_eq!(own, Some(id), "{agent} finds its own candidate");
                }
            }
        }
        assigned.push(id);
    }
    for seen in log {
        let agent = match *seen {
            Seen::Propose { agent, .. } | Seen::Vote { agent, .. } => agent,
        };
        assert!(members.contains(&agent), "{agent} is not a member: {log:?}");
    }
    assigned
}

async fn run(supervised: bool) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut builder = Hive::builder(Sum::default());
    if supervised {
        builder = builder.supervision(Supervision::quarantine(3, 1));
    }
    let hive = builder.build().unwrap();
    let recorder = || Recorder { log: log.clone() };
    let mut members: Vec<AgentId> = (0..3).map(|_| hive.spawn(recorder())).collect();
    let mut every_id = BTreeSet::new();
    let mut every_agent: BTreeSet<AgentId> = members.iter().copied().collect();
    for step in 0..6 {
        log.lock().clear();
        let decision = decide(&hive).await;
        assert_eq!(decision.agents, members.len());
        let seen = log.lock().clone();
        for id in check_round(&decision, &members, &seen) {
            assert!(every_id.insert(id), "proposal id {id} assigned twice");
        }
        match step % 3 {
            // Remove the lowest member and spawn a new one.
            0 => {
                assert!(hive.remove(members.remove(0)));
                let fresh = hive.spawn(recorder());
                assert!(every_agent.insert(fresh), "agent id {fresh} reused");
                members.push(fresh);
            }
            // Only spawn.
            1 => {
                let fresh = hive.spawn(recorder());
                assert!(every_agent.insert(fresh), "agent id {fresh} reused");
                members.push(fresh);
            }
            // Same members again.
            _ => {}
        }
        assert_eq!(hive.agents(), members);
    }
}

#[tokio::test]
async fn contexts_name_the_agent_its_round_and_one_proposal_id_per_round() {
    run(false).await;
}

#[tokio::test]
async fn contexts_name_the_agent_its_round_and_one_proposal_id_per_round_under_supervision() {
    run(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_rounds_assign_distinct_proposal_ids_and_their_own_round_numbers() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let hive = Hive::builder(Sum::default()).build().unwrap();
    for _ in 0..5 {
        hive.spawn(Recorder { log: log.clone() });
    }
    let rounds: Vec<Decision<Sum>> = futures_join(&hive, 4).await;
    let mut numbers: Vec<u64> = rounds.iter().map(|decision| decision.round).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3, 4]);
    let seen = log.lock().clone();
    let mut ids = BTreeSet::new();
    for seen in &seen {
        if let Seen::Propose { agent, round, id } = *seen {
            assert!(ids.insert(id), "proposal id {id} assigned twice");
            let decision = rounds.iter().find(|d| d.round == round).unwrap();
            assert_eq!(decision.proposer(id), Some(agent));
        }
    }
    assert_eq!(ids.len(), 20);
}

async fn futures_join(hive: &Hive<Sum>, count: usize) -> Vec<Decision<Sum>> {
    let handles: Vec<_> = (0..count)
        .map(|_| {
            let hive = hive.clone();
            tokio::spawn(async move { decide(&hive).await })
        })
        .collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}
