//! The parts of `build` that are not the ordering itself: declared reads checked against the
//! dependency graph, and the cycle named when the stages cannot be ordered.

use crate::error::BuildError;
use crate::pipeline::StageSpec;

/// Resolves declared reads to stage indices, checking that each names an ancestor of its reader
/// (a walk up the reader's dependencies, done only for stages that declare reads).
pub(super) fn resolve_reads(
    drafts: &mut [StageSpec],
    read_names: Vec<(u32, Box<str>)>,
    lookup: impl Fn(&str) -> Option<u32>,
    dependency_start: &[u32],
    dependency_list: &[u32],
) -> Result<(), BuildError> {
    if read_names.is_empty() {
        return Ok(());
    }
    let mut seen = vec![u32::MAX; drafts.len()];
    let mut work = Vec::new();
    for (generation, (reader, read)) in read_names.into_iter().enumerate() {
        let generation = generation as u32;
        let reader_name = || drafts[reader as usize].name.to_string();
        let Some(target) = lookup(&read) else {
            return Err(BuildError::UnknownRead {
                stage: reader_name(),
                read: read.into(),
            });
        };
        work.clear();
        work.push(reader);
        let mut found = false;
        while let Some(stage) = work.pop() {
            let row = dependency_start[stage as usize] as usize
                ..dependency_start[stage as usize + 1] as usize;
            for &dependency in &dependency_list[row] {
                if dependency == target {
                    found = true;
                    break;
                }
                if seen[dependency as usize] != generation {
                    seen[dependency as usize] = generation;
                    work.push(dependency);
                }
            }
            if found {
                break;
            }
        }
        if !found {
            return Err(BuildError::NotAnAncestor {
                stage: reader_name(),
                read: read.into(),
            });
        }
        let extras = drafts[reader as usize]
            .extras
            .get_or_insert_with(Default::default);
        if !extras.reads.contains(&target) {
            extras.reads.push(target);
        }
    }
    Ok(())
}

/// A cycle among the stages Kahn's algorithm could not order (`remaining > 0`): every such stage has
/// an unordered dependency, so walking unordered dependencies must revisit a stage. Returns the cycle
/// in execution order, starting and ending at its lowest-index stage.
pub(super) fn find_cycle(
    remaining: &[u32],
    dependency_start: &[u32],
    dependency_list: &[u32],
) -> Vec<u32> {
    let unordered = |stage: usize| remaining[stage] > 0;
    let Some(start) = (0..remaining.len()).find(|&stage| unordered(stage)) else {
        return Vec::new();
    };
    let mut seen_at = vec![usize::MAX; remaining.len()];
    let mut walk: Vec<u32> = Vec::new();
    let mut stage = start;
    while seen_at[stage] == usize::MAX {
        seen_at[stage] = walk.len();
        walk.push(stage as u32);
        let row = dependency_start[stage] as usize..dependency_start[stage + 1] as usize;
        stage = dependency_list[row]
            .iter()
            .map(|&dependency| dependency as usize)
            .find(|&dependency| unordered(dependency))
            .unwrap_or(stage);
    }
    // The walk follows dependencies (backwards in execution order); reverse it.
    let mut cycle: Vec<u32> = walk[seen_at[stage]..].to_vec();
    cycle.reverse();
    let lowest = cycle
        .iter()
        .enumerate()
        .min_by_key(|&(_, &stage)| stage)
        .map_or(0, |(position, _)| position);
    cycle.rotate_left(lowest);
    if let Some(&first) = cycle.first() {
        cycle.push(first);
    }
    cycle
}
