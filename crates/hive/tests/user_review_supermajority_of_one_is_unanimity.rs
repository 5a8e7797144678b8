//! Review of "a supermajority whose fraction is one (`num == den`) asks for every vote, as
//! `Threshold::Unanimous` does" (`Ballot::needs_every_vote`, crates/hive/src/ballot/mod.rs) and of
//! "a quorum needs a turnout" (`quorum_met`). A differential check over random ballots: after
//! every vote, `Supermajority { k, k }` tallies exactly as `Unanimous`; and whichever threshold,
//! a ballot that says it `is_settled` never changes its outcome (variant and winner) afterwards
//! ("never true for one that can still change", `Ballot::is_settled`).

use hivekit_hive::{
    AgentId, Ballot, ConsensusPolicy, Electorate, ProposalId, Tally, Threshold, TieBreak, Vote,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The outcome without the support figure (which may still move once settled).
fn shape(tally: &Tally) -> String {
    match tally {
        Tally::Decided { winner, .. } => format!("Decided({winner:?})"),
        Tally::NoQuorum { .. } => "NoQuorum".to_owned(),
        Tally::Tie { candidates } => format!("Tie({candidates:?})"),
        Tally::Undecided => "Undecided".to_owned(),
    }
}

struct Case {
    voters: Vec<(AgentId, f64)>,
    candidates: Vec<ProposalId>,
    votes: Vec<(AgentId, Vote)>,
    quorum: f64,
    weighted: bool,
    tie_break: TieBreak,
}

fn random_case(rng: &mut SmallRng) -> Case {
    // Small and large electorates (large ones take the ballot's "quiet" shortcut).
    let size = if rng.gen_bool(0.5) {
        rng.gen_range(1..=6)
    } else {
        rng.gen_range(33..=80)
    };
    let voters: Vec<(AgentId, f64)> = (0..size)
        .map(|voter| {
            let weight = match rng.gen_range(0..4) {
                0 => 1.0,
                1 => rng.gen_range(0.001..10.0),
                2 => 1e12,
                _ => f64::from(rng.gen_range(1_u32..5)),
            };
            (AgentId(voter), weight)
        })
        .collect();
    let candidates: Vec<ProposalId> = (0..rng.gen_range(1..=3_u64))
        .map(|c| ProposalId(c + 1))
        .collect();
    let mut order: Vec<AgentId> = voters.iter().map(|(id, _)| *id).collect();
    // Shuffle, and let some voters never vote.
    for i in (1..order.len()).rev() {
        let j = rng.gen_range(0..=i);
        order.swap(i, j);
    }
    let voting = rng.gen_range(0..=order.len());
    // Mostly for the favourite, with a few dissents and abstentions.
    let favourite = candidates[0];
    let votes = order[..voting]
        .iter()
        .map(|voter| {
            let vote = match rng.gen_range(0..10) {
                0 => Vote::Abstain,
                1 => Vote::For(candidates[rng.gen_range(0..candidates.len())]),
                _ => Vote::For(favourite),
            };
            (*voter, vote)
        })
        .collect();
    Case {
        voters,
        candidates,
        votes,
        quorum: [1e-300, 0.1, 0.5, 1.0][rng.gen_range(0..4)],
        weighted: rng.gen_bool(0.5),
        tie_break: if rng.gen_bool(0.5) {
            TieBreak::LowestId
        } else {
            TieBreak::NoDecision
        },
    }
}

fn ballot(case: &Case, threshold: Threshold) -> Ballot {
    let policy = ConsensusPolicy::new(threshold, case.quorum)
        .expect("valid policy")
        .with_weighted(case.weighted)
        .with_tie_break(case.tie_break);
    let electorate = Electorate::new(case.voters.clone()).expect("valid electorate");
    Ballot::new(policy, electorate, case.candidates.clone()).expect("valid ballot")
}

#[test]
fn a_supermajority_of_k_out_of_k_tallies_as_unanimity_after_every_vote() {
    let mut rng = SmallRng::seed_from_u64(0x5eed_0001);
    let mut wrong = Vec::new();
    for case_number in 0..3_000 {
        let case = random_case(&mut rng);
        let k = rng.gen_range(1..=7_u32);
        let mut unanimous = ballot(&case, Threshold::Unanimous);
        let mut of_one = ballot(&case, Threshold::Supermajority { num: k, den: k });
        for (step, (voter, vote)) in case.votes.iter().enumerate() {
            unanimous.cast(*voter, *vote).expect("a valid vote");
            of_one.cast(*voter, *vote).expect("a valid vote");
            let (u, s) = (shape(&unanimous.tally()), shape(&of_one.tally()));
            if u != s {
                wrong.push(format!(
                    "case {case_number} step {step} {k}/{k}: unanimous {u}, supermajority {s}"
                ));
                break;
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cases differ:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
}

#[test]
fn a_settled_ballot_keeps_its_outcome_whatever_the_remaining_voters_do() {
    let mut rng = SmallRng::seed_from_u64(0x5eed_0002);
    let mut wrong = Vec::new();
    for case_number in 0..3_000 {
        let mut case = random_case(&mut rng);
        // Every voter votes in the end, so the final tally is what settlement must predict.
        let voted: Vec<AgentId> = case.votes.iter().map(|(voter, _)| *voter).collect();
        for (voter, _) in case.voters.clone() {
            if !voted.contains(&voter) {
                let vote = if rng.gen_bool(0.2) {
                    Vote::Abstain
                } else {
                    Vote::For(case.candidates[rng.gen_range(0..case.candidates.len())])
                };
                case.votes.push((voter, vote));
            }
        }
        let k = rng.gen_range(1..=7_u32);
        for threshold in [
            Threshold::Unanimous,
            Threshold::Supermajority { num: k, den: k },
            Threshold::Supermajority { num: 2, den: 3 },
            Threshold::Majority,
            Threshold::Plurality,
        ] {
            let mut ballot = ballot(&case, threshold);
            let mut settled: Option<(usize, String)> = None;
            for (step, (voter, vote)) in case.votes.iter().enumerate() {
                if settled.is_none() && ballot.is_settled() {
                    settled = Some((step, shape(&ballot.tally())));
                }
                ballot.cast(*voter, *vote).expect("a valid vote");
            }
            let last = shape(&ballot.tally());
            if let Some((step, at)) = settled {
                if at != last {
                    wrong.push(format!(
                        "case {case_number} {threshold:?}: settled at vote {step} as {at}, ended {last}"
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} ballots changed after settling:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
}
