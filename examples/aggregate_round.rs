//! One aggregation round: a swarm of agents proposes changes to a shared configuration from several
//! threads at once, conflicts are found and settled by priority, and the accepted changes merge.
//!
//! Run with `cargo run -p hivekit-examples --example aggregate_round`.

use std::collections::BTreeMap;

use hivekit_lockfree::{detect_conflicts, Aggregator, Priority, Proposal, Resolution, Sum};

/// A change: how much to add to each counter it touches.
type Change = BTreeMap<&'static str, Sum<i64>>;

/// An agent's plan: id, priority, keys read, keys written, amount.
type Plan = (
    u64,
    Priority,
    &'static [&'static str],
    &'static [&'static str],
    i64,
);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let plans: [Plan; 6] = [
        (1, Priority::Normal, &["limits"], &["workers"], 4),
        (2, Priority::High, &[], &["workers"], 8),
        (3, Priority::Normal, &["workers"], &["queue"], 2),
        (4, Priority::Low, &[], &["cache"], 1),
        (5, Priority::Critical, &[], &["cache", "queue"], 16),
        (6, Priority::Normal, &["limits"], &["timeouts"], 3),
    ];
    let proposals: Vec<Proposal<&str, Change>> = plans
        .iter()
        .map(|&(id, priority, reads, writes, amount)| {
            let change = writes.iter().map(|key| (*key, Sum(amount))).collect();
            Proposal::new(id, change)
                .reads(reads.iter().copied())
                .writes(writes.iter().copied())
                .priority(priority)
        })
        .collect();

    // The conflicts alone, without deciding anything.
    let report = detect_conflicts(&proposals)?;
    for group in &report.groups {
        let members: Vec<String> = group.members.iter().map(ToString::to_string).collect();
        println!(
            "{} conflict on {:?}: {}",
            group.kind,
            group.key,
            members.join(", ")
        );
    }

    // A round: agents submit from their own threads; the aggregator settles and merges.
    let round = Aggregator::new();
    std::thread::scope(|scope| {
        for chunk in proposals.chunks(2) {
            let round = &round;
            scope.spawn(move || {
                for proposal in chunk {
                    round.submit(proposal.clone()).expect("ids are distinct");
                }
            });
        }
    });
    let outcome = round.finish(Resolution::HighestPriority);
    for (id, reason) in &outcome.rejected {
        println!("rejected {id}: {reason}");
    }
    let accepted: Vec<String> = outcome.accepted.iter().map(ToString::to_string).collect();
    println!("accepted {}", accepted.join(", "));
    println!("merged change {:?}", outcome.merged.unwrap_or_default());
    Ok(())
}
