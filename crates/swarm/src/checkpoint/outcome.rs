//! How a durable run ended.

use crate::report::RunReport;

/// How a durable run ended.
#[derive(Debug)]
#[non_exhaustive]
#[must_use = "a run's outcome says whether it finished"]
pub enum DurableOutcome {
    /// The run ended (succeeded, failed, cancelled: the report says which). A run in which a stage
    /// interrupted *and* another failed ends here,
    /// [`RunOutcome::Failed`](crate::RunOutcome::Failed); the interrupted stage still takes a value
    /// from [`Durable::resume_with`](super::Durable::resume_with).
    Finished(RunReport),
    /// A stage paused the run with [`StageContext::interrupt`](crate::StageContext::interrupt) and
    /// nothing failed; [`Durable::resume_with`](super::Durable::resume_with) continues it. Exactly
    /// when the report's outcome is [`RunOutcome::Interrupted`](crate::RunOutcome::Interrupted).
    Interrupted {
        /// The stage that paused the run (the first in declaration order, if several did).
        stage: String,
        /// Why, as the stage said.
        reason: String,
        /// The run's report so far: outcome
        /// [`RunOutcome::Interrupted`](crate::RunOutcome::Interrupted), the stage
        /// [`StageStatus::Interrupted`](crate::StageStatus::Interrupted), its dependents skipped.
        report: RunReport,
    },
}

impl DurableOutcome {
    /// The run's report.
    pub fn report(&self) -> &RunReport {
        match self {
            Self::Finished(report) | Self::Interrupted { report, .. } => report,
        }
    }

    /// The run's report, by value.
    pub fn into_report(self) -> RunReport {
        match self {
            Self::Finished(report) | Self::Interrupted { report, .. } => report,
        }
    }

    /// The stage that interrupted the run, if one did.
    pub fn interrupted_stage(&self) -> Option<&str> {
        match self {
            Self::Interrupted { stage, .. } => Some(stage),
            Self::Finished(_) => None,
        }
    }
}
