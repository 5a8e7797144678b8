//! The collective memory's shape: what agents read and what their proposals change.

use std::fmt::Debug;
use std::hash::Hash;

/// The shared state a hive reaches decisions on.
///
/// A round reads the state through a [`Snapshot`](crate::Snapshot), collects proposals that name the
/// keys they read and write ([`State::Key`]) and carry a change ([`State::Change`]), and applies the
/// accepted changes to a copy of the snapshot with [`State::apply`] before committing it as a new
/// version. Keep `Clone` cheap for large states (persistent maps, `Arc`s inside).
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use hivekit_hive::State;
///
/// #[derive(Clone, Default)]
/// struct Config(BTreeMap<String, u32>);
///
/// impl State for Config {
///     type Key = String;
///     type Change = (String, u32);
///     fn apply(&mut self, (key, value): &Self::Change) {
///         self.0.insert(key.clone(), *value);
///     }
/// }
///
/// let mut config = Config::default();
/// config.apply(&("threads".to_string(), 8));
/// assert_eq!(config.0["threads"], 8);
/// ```
pub trait State: Clone + Send + Sync + 'static {
    /// Names a part of the state; proposals conflict when they touch the same key and one writes it.
    type Key: Hash + Eq + Clone + Send + Sync + Debug + 'static;
    /// One accepted change, applied with [`State::apply`].
    type Change: Clone + Send + Sync + 'static;

    /// Applies one accepted change. Accepted changes of a round never conflict, so the order in which
    /// a round applies them does not matter for changes that only touch the keys they declare.
    fn apply(&mut self, change: &Self::Change);
}
