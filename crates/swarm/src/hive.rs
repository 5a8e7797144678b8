//! A hive round as a stage: `Hive::decide` runs when the stage runs; the decision is its artifact.

use futures::future::BoxFuture;
use futures::FutureExt;
use hivekit_hive::{Decision, Hive, HiveError, State};

use crate::context::StageContext;
use crate::error::StageError;

/// A stage function that runs one round of `hive` ([`Hive::decide`]) per attempt; the stage's
/// artifact is the [`Decision`]. Agents' failures are part of the decision (the round goes on);
/// the stage fails only if the round itself cannot run: without agents or with an invalid policy
/// ([`StageError::Permanent`], not retried), or for another [`HiveError`] (retryable). A commit
/// whose outcome is unknown ([`MemoryError::may_have_committed`]: the memory may hold the change)
/// fails the stage for good too: a retry would be a new decision, and could apply the change a
/// second time.
///
/// [`MemoryError::may_have_committed`]: hivekit_hive::MemoryError::may_have_committed
///
/// The hive is cheap to clone and shared with the caller, so later stages (or the caller) can read
/// its memory, which the round committed to. Add `.export()` to the stage to put the decision (who
/// proposed what, every ballot's voters, the failures) in the report's JSON, when the state's key
/// is `Serialize`.
///
/// # Examples
///
/// ```
/// use hivekit_hive::{Agent, AgentContext, AgentError, Decision, Hive, Proposal, ProposalId, Snapshot, State};
/// use hivekit_swarm::{hive_stage, Pipeline, StageContext, StageError};
///
/// #[derive(Clone, Default, Debug)]
/// struct Counter(i64);
/// impl State for Counter {
///     type Key = &'static str;
///     type Change = i64;
///     fn apply(&mut self, change: &i64) { self.0 += change; }
/// }
/// struct Bump;
/// impl Agent<Counter> for Bump {
///     async fn propose(&self, _ctx: &AgentContext, _: &Snapshot<Counter>) -> Result<Option<Proposal<&'static str, i64>>, AgentError> {
///         Ok(Some(Proposal::new(ProposalId(1), 5).writes(["counter"])))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hive = Hive::builder(Counter::default()).build()?;
/// hive.spawn(Bump);
/// let pipeline = Pipeline::builder()
///     .stage("decide", hive_stage(hive.clone()))
///     .stage("check", |ctx: StageContext| async move {
///         let decision = ctx.input::<Decision<Counter>>("decide")?;
///         Ok::<_, StageError>(decision.accepted.len())
///     })
///     .after(["decide"])
///     .build()?;
/// let report = pipeline.run().await;
/// assert_eq!(*report.artifact::<usize>("check")?, 1);
/// assert_eq!(hive.memory().load().0, 5);
/// # Ok(())
/// # }
/// ```
pub fn hive_stage<S: State>(
    hive: Hive<S>,
) -> impl Fn(StageContext) -> BoxFuture<'static, Result<Decision<S>, StageError>> + Send + Sync + 'static
{
    move |_: StageContext| {
        let hive = hive.clone();
        async move { hive.decide().await.map_err(stage_error) }.boxed()
    }
}

fn stage_error(error: HiveError) -> StageError {
    match error {
        HiveError::NoAgents | HiveError::Policy(_) => StageError::permanent(error),
        HiveError::Memory(ref memory) if memory.may_have_committed() => {
            StageError::permanent(error)
        }
        other => StageError::from_error(other),
    }
}
