//! Stages that will not run: routes not taken, false conditions, and the dependents of a stage
//! that did not succeed.

use super::Run;
use crate::error::StageError;
use crate::events::StageEvent;
use crate::report::{SkipReason, StageStatus};
use crate::route::Route;

impl Run {
    /// Which of a router's dependents its route takes, by position among its dependents.
    pub(super) fn resolve_route(
        &self,
        router: usize,
        route: &(dyn std::any::Any + Send + Sync),
    ) -> Result<Vec<bool>, StageError> {
        let dependents = self.pipeline.dependents(router);
        let name = |stage: u32| &*self.pipeline.stages[stage as usize].name;
        let Some(route) = route.downcast_ref::<Route>().filter(|route| !route.all) else {
            // Not a route, or one taking every dependent: its targets are ignored (as documented
            // on `Route::targets`), not checked.
            return Ok(vec![true; dependents.len()]);
        };
        if let Some(target) = route.targets.iter().find(|target| {
            !dependents
                .iter()
                .any(|&dependent| name(dependent) == *target)
        }) {
            return Err(StageError::InvalidRoute {
                router: self.pipeline.stages[router].name.to_string(),
                target: target.clone(),
            });
        }
        Ok(dependents
            .iter()
            .map(|&dependent| route.takes(name(dependent)))
            .collect())
    }

    /// One dependency of `stage` was pruned (`because` says how, for a direct dependent): the
    /// stage runs if another dependency succeeded, else it is pruned too, and so on downwards.
    pub(super) fn release_pruned(&mut self, stage: u32, because: SkipReason) {
        let mut work = vec![(stage, because)];
        while let Some((stage, because)) = work.pop() {
            let index = stage as usize;
            if self.decided[index] {
                continue;
            }
            self.remaining[index] -= 1;
            self.pruned[index] += 1;
            if self.remaining[index] > 0 {
                continue;
            }
            if self.pruned[index] < self.pipeline.in_degree[index] {
                self.batch.push(stage);
                continue;
            }
            self.skip(index, because);
            let name = self.pipeline.stages[index].name.to_string();
            for &dependent in self.pipeline.dependents(index) {
                work.push((
                    dependent,
                    SkipReason::Pruned {
                        dependency: name.clone(),
                    },
                ));
            }
        }
    }

    /// Prunes a stage whose condition was false, and releases its dependents.
    pub(super) fn prune(&mut self, index: usize, because: SkipReason) {
        self.skip(index, because);
        let name = self.pipeline.stages[index].name.to_string();
        let pipeline = self.pipeline.clone();
        for &dependent in pipeline.dependents(index) {
            self.release_pruned(
                dependent,
                SkipReason::Pruned {
                    dependency: name.clone(),
                },
            );
        }
    }

    /// Skips everything downstream of a stage that did not succeed (iteratively: chains may be long).
    pub(super) fn skip_dependents(&mut self, root: u32) {
        let root_name = self.pipeline.stages[root as usize].name.to_string();
        let root_status = self.stages[root as usize].status.to_string();
        let pipeline = self.pipeline.clone();
        let mut work = std::mem::take(&mut self.scratch);
        work.push(root);
        while let Some(from) = work.pop() {
            for &dependent in pipeline.dependents(from as usize) {
                let index = dependent as usize;
                if self.decided[index] {
                    continue;
                }
                let because = SkipReason::Dependency {
                    dependency: self.pipeline.stages[from as usize].name.to_string(),
                    root: root_name.clone(),
                    root_status: root_status.clone(),
                };
                self.skip(index, because);
                work.push(dependent);
            }
        }
        self.scratch = work;
    }

    pub(super) fn skip(&mut self, index: usize, because: SkipReason) {
        let left_out = matches!(
            because,
            SkipReason::RouteNotTaken { .. }
                | SkipReason::ConditionFalse
                | SkipReason::Pruned { .. }
        );
        self.stages[index].status = StageStatus::Skipped { because };
        self.decided[index] = true;
        self.unfinished -= 1;
        if left_out {
            self.record_left_out(index);
        }
        if self.shared.events.is_some() {
            let StageStatus::Skipped { because } = &self.stages[index].status else {
                return;
            };
            self.emit_decided(index as u32, |done, total| StageEvent::Skipped {
                stage: self.pipeline.stages[index].name.clone(),
                because: because.clone(),
                done,
                total,
            });
        }
    }

    /// Records, in a durable run, a stage left out by a route not taken or a false condition (or
    /// below one), so that the stored run says how it ended
    /// ([`RunState::is_complete`](crate::checkpoint::RunState::is_complete)). A record that cannot
    /// be written is logged and left out: the run is not failed for it (a resume decides the stage
    /// the same way again), and the stored run reads as not complete.
    fn record_left_out(&self, index: usize) {
        let (Some(hooks), false) = (&self.shared.hooks, self.restoring) else {
            return;
        };
        let status = &self.stages[index].status;
        if let Err(error) = hooks.finished(&self.pipeline, index as u32, status, &[], None) {
            tracing::warn!(
                stage = &*self.pipeline.stages[index].name,
                %error,
                "the checkpoint of a stage left out was not written"
            );
        }
    }
}
