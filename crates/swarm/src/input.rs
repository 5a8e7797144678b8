//! A run's input: one value of any type, given to a run in its options and read by every stage.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::checkpoint::LossyNull;
use crate::pipeline::Exporter;

/// The input of one run, shared by every stage as an `Arc` (never copied): the pull request to
/// review, the document to summarise. A pipeline is built once and run many times, concurrently,
/// each run with its own input ([`RunOptions::with_input`](crate::RunOptions::with_input)); stages
/// read it with [`StageContext::run_input`](crate::StageContext::run_input).
///
/// An input made with [`RunInput::serializable`] can also be written as JSON ([`to_json`](RunInput::to_json)),
/// which is what a checkpoint of the run needs.
///
/// # Examples
///
/// ```
/// use hivekit_swarm::{Pipeline, RunOptions, StageContext, StageError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pipeline = Pipeline::builder()
///     .stage("shout", |ctx: StageContext| async move {
///         Ok::<_, StageError>(ctx.run_input::<String>()?.to_uppercase())
///     })
///     .build()?;
/// let (a, b) = tokio::join!(
///     pipeline.run_with(RunOptions::default().with_input(String::from("a"))),
///     pipeline.run_with(RunOptions::default().with_input(String::from("b"))),
/// );
/// assert_eq!(*a.artifact::<String>("shout")?, "A");
/// assert_eq!(*b.artifact::<String>("shout")?, "B");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
#[must_use = "an input does nothing until a run is given it"]
pub struct RunInput {
    value: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
    exporter: Option<Exporter>,
    /// What the value (a `Serialize` one) holds whose JSON `null` would read back as another
    /// value (a non-finite float, a `Some(None)`), if anything.
    lossy_null: Option<fn(&(dyn Any + Send + Sync)) -> Option<LossyNull>>,
}

impl fmt::Debug for RunInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunInput")
            .field("type", &self.type_name)
            .finish_non_exhaustive()
    }
}

impl RunInput {
    /// An input of any type.
    pub fn new<T: Send + Sync + 'static>(value: T) -> Self {
        Self::from_arc(Arc::new(value))
    }

    /// An input already shared.
    pub fn from_arc<T: Send + Sync + 'static>(value: Arc<T>) -> Self {
        Self {
            value,
            type_name: std::any::type_name::<T>(),
            exporter: None,
            lossy_null: None,
        }
    }

    /// An input that [`to_json`](RunInput::to_json) can write.
    pub fn serializable<T: Serialize + Send + Sync + 'static>(value: T) -> Self {
        Self {
            exporter: Some(crate::builder::export_as::<T>),
            lossy_null: Some(|value| {
                value
                    .downcast_ref::<T>()
                    .and_then(crate::checkpoint::lossy_null)
            }),
            ..Self::new(value)
        }
    }

    /// The input as a `T`, or `None` if it is another type.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        Arc::clone(&self.value).downcast::<T>().ok()
    }

    /// The input's type name.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// What the input holds whose JSON `null` reads back as another value or not at all (a
    /// non-finite float, a `Some(None)`), if anything (`None` for an input not made with
    /// [`RunInput::serializable`]).
    pub(crate) fn lossy_null(&self) -> Option<LossyNull> {
        self.lossy_null.and_then(|probe| probe(&*self.value))
    }

    /// The input as JSON, if it was made with [`RunInput::serializable`].
    pub fn to_json(&self) -> Option<Result<serde_json::Value, serde_json::Error>> {
        self.exporter.and_then(|export| export(&*self.value))
    }
}
