//! The key layout under a memory's prefix, the records stored there, and how a state is laid out
//! over keys ([`Whole`] or [`Keyed`]).
//!
//! ```text
//! <prefix>meta                     marker: {"format":"hivekit-memory","format_version":1,"layout":..,
//!                                  "decisions":"leased"}
//! <prefix>head                     {"version":V,"decision":"<hex>"}: the counter every commit compares
//!                                  (with a history depth of 0 also "entry": version V's history entry)
//! <prefix>state/<key>              the state at version V (one key, or one key per entry)
//! <prefix>history/<V, 20 digits>   one entry per version: the accepted changes and who proposed them;
//!                                  only the newest `depth` versions are kept (`EtcdConfig::history`)
//! <prefix>decisions/<id, 32 hex>   the version a decision created ("fenced" when it never may),
//!                                  under a lease that expires after `EtcdConfig::decision_window`
//! <prefix>members/<process>/<agent> one key per live agent, under its process's lease
//! <prefix>election/<name>          etcd's election keys
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use hivekit_hive::{AcceptedChange, State};

use crate::error::EtcdError;

/// What the marker's `format` field says.
pub(crate) const FORMAT: &str = "hivekit-memory";
/// The layout version this crate writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// The marker's `decisions` field in a memory whose decision keys all expire.
pub(crate) const DECISIONS_LEASED: &str = "leased";
/// The value of a decision key fenced off by `resolve`.
pub(crate) const FENCED: &str = "fenced";

/// Every key of one memory.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub(crate) fn meta(&self) -> String {
        format!("{}meta", self.prefix)
    }

    pub(crate) fn head(&self) -> String {
        format!("{}head", self.prefix)
    }

    pub(crate) fn state_prefix(&self) -> String {
        format!("{}state/", self.prefix)
    }

    pub(crate) fn state(&self, relative: &str) -> String {
        format!("{}state/{relative}", self.prefix)
    }

    pub(crate) fn history_prefix(&self) -> String {
        format!("{}history/", self.prefix)
    }

    pub(crate) fn history(&self, version: u64) -> String {
        format!("{}history/{version:020}", self.prefix)
    }

    /// The version whose history entry falls out of a `depth`-version window when `version` is
    /// committed (version 0 has no entry; with depth 0 nothing is written, so nothing falls out).
    pub(crate) fn trimmed_by(version: u64, depth: usize) -> Option<u64> {
        let depth = u64::try_from(depth).unwrap_or(u64::MAX);
        match version.checked_sub(depth) {
            Some(trimmed) if trimmed > 0 && depth > 0 => Some(trimmed),
            _ => None,
        }
    }

    /// The first version a `depth`-version window ending at `version` keeps.
    pub(crate) fn oldest_kept(version: u64, depth: usize) -> u64 {
        let depth = u64::try_from(depth).unwrap_or(u64::MAX);
        version.saturating_sub(depth).saturating_add(1)
    }

    pub(crate) fn decisions_prefix(&self) -> String {
        format!("{}decisions/", self.prefix)
    }

    pub(crate) fn decision(&self, decision_id: u128) -> String {
        format!("{}decisions/{decision_id:032x}", self.prefix)
    }

    pub(crate) fn members_prefix(&self) -> String {
        format!("{}members/", self.prefix)
    }

    pub(crate) fn election(&self, name: &str) -> String {
        format!("{}election/{name}", self.prefix)
    }
}

/// The end of the range of keys starting with `prefix` (etcd's `range_end`).
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The marker that says a prefix holds a hivekit memory.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) format: String,
    pub(crate) format_version: u32,
    pub(crate) layout: String,
    /// [`DECISIONS_LEASED`] once every decision key is written under a lease: absent in memories
    /// created before decision keys expired, whose old keys the next open attaches to a lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) decisions: Option<String>,
}

/// The version counter.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Head {
    pub(crate) version: u64,
    pub(crate) decision: String,
}

/// The head as a commit writes it: with a history depth of 0 it carries the new version's history
/// entry, which followers then read from the head's watch events.
#[derive(Serialize)]
pub(crate) struct HeadRef<'a, E> {
    pub(crate) version: u64,
    pub(crate) decision: &'a str,
    /// The decision that created the version before: what links the versions into one chain, so
    /// that a process ahead of an etcd restored from an older backup (the head created at the same
    /// revision, its versions committed again by other decisions) sees that its own version is not
    /// the one this version follows.
    pub(crate) previous: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) entry: Option<&'a E>,
}

/// The head as a follower reads it: the version, and its history entry when the head carries it.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "C: DeserializeOwned"))]
pub(crate) struct HeadWithEntry<C> {
    pub(crate) version: u64,
    #[serde(default)]
    pub(crate) decision: String,
    /// Absent in heads written before it was (serde reads a missing `Option` as `None`).
    pub(crate) previous: Option<String>,
    /// Absent unless the history depth is 0 (serde reads a missing `Option` as `None`).
    pub(crate) entry: Option<HistoryEntry<C>>,
}

/// One version in a memory's history: what the decision that created it accepted, and who
/// proposed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "C: DeserializeOwned"))]
pub struct HistoryEntry<C> {
    /// The version this entry created.
    pub version: u64,
    /// The decision that created it (hexadecimal, as in its key).
    pub decision_id: String,
    /// The deciding hive's round number.
    pub round: u64,
    /// The version the round read.
    pub base: u64,
    /// Whether the changes were applied to a newer version than the one read.
    pub rebased: bool,
    /// Milliseconds since the Unix epoch when the commit was sent.
    pub time_ms: u64,
    /// The accepted changes, in the order they were applied.
    pub changes: Vec<HistoryChange<C>>,
}

/// One accepted change in a [`HistoryEntry`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryChange<C> {
    /// The proposal's id.
    pub proposal: u64,
    /// The agent that proposed it, when an agent did.
    pub proposer: Option<u64>,
    /// The change.
    pub change: C,
}

/// The serialized form of a history entry, borrowing the changes being committed.
#[derive(Serialize)]
pub(crate) struct HistoryEntryRef<'a, C> {
    pub(crate) version: u64,
    pub(crate) decision_id: &'a str,
    pub(crate) round: u64,
    pub(crate) base: u64,
    pub(crate) rebased: bool,
    pub(crate) time_ms: u64,
    pub(crate) changes: &'a [HistoryChange<&'a C>],
}

/// How a state is laid out over etcd keys: the whole state under one key ([`Whole`]), or one key
/// per entry so that a commit writes only the entries it touched ([`Keyed`]).
pub trait Layout<S: State>: Send + Sync + 'static {
    /// The name stored in the memory's marker; opening with another layout fails.
    const NAME: &'static str;

    /// The whole state as (key below `state/`, value) pairs.
    ///
    /// # Errors
    ///
    /// [`EtcdError::Serialize`] when a value does not serialize, [`EtcdError::Unreadable`] when it
    /// would not read back.
    fn encode_state(state: &S) -> Result<Vec<(String, Vec<u8>)>, EtcdError>;

    /// The state from every pair stored below `state/` (`key_of` gives a pair's full etcd key for
    /// error messages).
    ///
    /// # Errors
    ///
    /// [`EtcdError::Corrupt`] naming the key whose value does not deserialize.
    fn decode_state(
        pairs: Vec<(String, Vec<u8>)>,
        key_of: &dyn Fn(&str) -> String,
    ) -> Result<S, EtcdError>;

    /// What a commit writes below `state/` once `accepted` is applied and the state is `next`:
    /// `Some(value)` to put, `None` to delete.
    ///
    /// # Errors
    ///
    /// [`EtcdError::Serialize`] when a value does not serialize, [`EtcdError::Unreadable`] when it
    /// would not read back.
    #[allow(clippy::type_complexity)] // a pair list, named by the doc above
    fn encode_commit(
        next: &S,
        accepted: &[AcceptedChange<'_, S>],
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, EtcdError>;
}

/// The whole state as one JSON value under `state/value`: simple, and a commit rewrites all of it
/// (so the state must stay under etcd's request limit).
#[derive(Debug, Clone, Copy, Default)]
pub struct Whole;

impl<S> Layout<S> for Whole
where
    S: State + Serialize + DeserializeOwned,
{
    const NAME: &'static str = "whole";

    fn encode_state(state: &S) -> Result<Vec<(String, Vec<u8>)>, EtcdError> {
        Ok(vec![("value".to_string(), json::<S, S>("state", state)?)])
    }

    fn decode_state(
        pairs: Vec<(String, Vec<u8>)>,
        key_of: &dyn Fn(&str) -> String,
    ) -> Result<S, EtcdError> {
        let Some((key, value)) = pairs.into_iter().find(|(key, _)| key == "value") else {
            return Err(EtcdError::NotAMemory {
                prefix: key_of(""),
                found: "a memory marker without its state".into(),
            });
        };
        serde_json::from_slice(&value).map_err(|source| EtcdError::Corrupt {
            key: key_of(&key),
            source,
        })
    }

    fn encode_commit(
        next: &S,
        _accepted: &[AcceptedChange<'_, S>],
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, EtcdError> {
        Ok(Self::encode_state(next)?
            .into_iter()
            .map(|(key, value)| (key, Some(value)))
            .collect())
    }
}

/// A state made of entries by key, stored one etcd key per entry with [`Keyed`].
///
/// A commit writes, for every key the accepted proposals declare in `writes`, that entry's value
/// after the changes (or deletes it when the state no longer has it), so its cost grows with what
/// it touched, not with the state. Changes must therefore touch only the keys they declare.
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use hivekit_etcd::KeyedState;
/// use hivekit_hive::State;
///
/// #[derive(Clone, Default)]
/// struct Stock(BTreeMap<String, i64>);
///
/// impl State for Stock {
///     type Key = String;
///     type Change = (String, i64);
///     fn apply(&mut self, (item, delta): &(String, i64)) {
///         *self.0.entry(item.clone()).or_default() += delta;
///     }
/// }
///
/// impl KeyedState for Stock {
///     type Value = i64;
///     fn entry(&self, key: &String) -> Option<i64> {
///         self.0.get(key).copied()
///     }
///     fn entries(&self) -> Vec<(String, i64)> {
///         self.0.iter().map(|(key, value)| (key.clone(), *value)).collect()
///     }
///     fn from_entries(entries: Vec<(String, i64)>) -> Self {
///         Stock(entries.into_iter().collect())
///     }
/// }
/// ```
pub trait KeyedState: State
where
    Self::Key: Serialize + DeserializeOwned,
{
    /// One entry's value.
    type Value: Serialize + DeserializeOwned;

    /// The entry at `key`, if any.
    fn entry(&self, key: &Self::Key) -> Option<Self::Value>;

    /// Every entry.
    fn entries(&self) -> Vec<(Self::Key, Self::Value)>;

    /// The state holding exactly `entries`.
    fn from_entries(entries: Vec<(Self::Key, Self::Value)>) -> Self;
}

/// One etcd key per entry of a [`KeyedState`] (`state/<key as JSON>`): a commit writes only the
/// entries its proposals declare they write.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keyed;

/// `value` as JSON, refused with [`EtcdError::Unreadable`] when it would not read back as an `R`.
///
/// etcd would accept it, and then every follower and every later open would fail on it. What does
/// not read back cannot be told from the text (a NaN or infinite float is written as `null`, but a
/// `u128` inside an internally tagged enum is written as a plain number that serde cannot buffer,
/// and a type's own `Serialize` and `Deserialize` may disagree), so every value written is read
/// back: a parse per value, beside the commit's round trip to etcd.
pub(crate) fn json<T, R>(what: &'static str, value: &T) -> Result<Vec<u8>, EtcdError>
where
    T: Serialize + ?Sized,
    R: DeserializeOwned,
{
    let bytes =
        serde_json::to_vec(value).map_err(|source| EtcdError::Serialize { what, source })?;
    serde_json::from_slice::<R>(&bytes).map_err(|source| EtcdError::Unreadable { what, source })?;
    Ok(bytes)
}

fn key_name<K: Serialize + DeserializeOwned>(key: &K) -> Result<String, EtcdError> {
    // serde_json writes UTF-8: nothing is lost.
    Ok(String::from_utf8_lossy(&json::<K, K>("state key", key)?).into_owned())
}

impl<S> Layout<S> for Keyed
where
    S: KeyedState,
    S::Key: Serialize + DeserializeOwned,
{
    const NAME: &'static str = "keyed";

    fn encode_state(state: &S) -> Result<Vec<(String, Vec<u8>)>, EtcdError> {
        state
            .entries()
            .iter()
            .map(|(key, value)| Ok((key_name(key)?, json::<_, S::Value>("state entry", value)?)))
            .collect()
    }

    fn decode_state(
        pairs: Vec<(String, Vec<u8>)>,
        key_of: &dyn Fn(&str) -> String,
    ) -> Result<S, EtcdError> {
        let corrupt = |name: &str, source| EtcdError::Corrupt {
            key: key_of(name),
            source,
        };
        let entries = pairs
            .into_iter()
            .map(|(name, value)| {
                let key = serde_json::from_str(&name).map_err(|source| corrupt(&name, source))?;
                let value =
                    serde_json::from_slice(&value).map_err(|source| corrupt(&name, source))?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>, EtcdError>>()?;
        Ok(S::from_entries(entries))
    }

    fn encode_commit(
        next: &S,
        accepted: &[AcceptedChange<'_, S>],
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, EtcdError> {
        let mut written: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        for change in accepted {
            for key in &change.proposal.writes {
                let name = key_name(key)?;
                if written.iter().any(|(seen, _)| *seen == name) {
                    continue;
                }
                let value = next
                    .entry(key)
                    .map(|value| json::<_, S::Value>("state entry", &value))
                    .transpose()?;
                written.push((name, value));
            }
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end("a/"), b"a0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }

    #[test]
    fn a_commit_trims_the_entry_that_falls_out_of_the_window_and_nothing_at_depth_zero() {
        assert_eq!(Keys::trimmed_by(1, 1), None, "version 0 has no entry");
        assert_eq!(Keys::trimmed_by(2, 1), Some(1));
        assert_eq!(Keys::trimmed_by(103, 100), Some(3));
        assert_eq!(Keys::trimmed_by(5, 0), None);
        assert_eq!(Keys::trimmed_by(u64::MAX, usize::MAX), None);
        assert_eq!(Keys::oldest_kept(103, 100), 4);
        assert_eq!(Keys::oldest_kept(5, 0), 6);
        assert_eq!(Keys::oldest_kept(5, 100), 1);
        assert_eq!(Keys::oldest_kept(5, usize::MAX), 1);
    }

    #[test]
    fn a_head_carries_its_entry_only_at_depth_zero_and_reads_back_either_way() {
        let changes = [HistoryChange {
            proposal: 7,
            proposer: Some(1),
            change: &5_i64,
        }];
        let entry = HistoryEntryRef {
            version: 3,
            decision_id: "00ff",
            round: 3,
            base: 2,
            rebased: false,
            time_ms: 0,
            changes: &changes,
        };
        let carrying = serde_json::to_vec(&HeadRef {
            version: 3,
            decision: "00ff",
            previous: "00fe",
            entry: Some(&entry),
        })
        .unwrap();
        let head: HeadWithEntry<i64> = serde_json::from_slice(&carrying).unwrap();
        let read = head.entry.expect("the entry travels in the head");
        assert_eq!(
            (head.version, read.version, read.changes[0].change),
            (3, 3, 5)
        );

        let plain = serde_json::to_vec(&HeadRef::<HistoryEntryRef<'_, i64>> {
            version: 3,
            decision: "00ff",
            previous: "00fe",
            entry: None,
        })
        .unwrap();
        assert_eq!(
            plain, br#"{"version":3,"decision":"00ff","previous":"00fe"}"#,
            "without an entry, a head is written as before, with the decision before it"
        );
        let head: HeadWithEntry<i64> = serde_json::from_slice(&plain).unwrap();
        assert!(head.entry.is_none());
        assert_eq!(head.previous.as_deref(), Some("00fe"));
        let older: HeadWithEntry<i64> =
            serde_json::from_slice(br#"{"version":3,"decision":"00ff"}"#).unwrap();
        assert_eq!((older.decision.as_str(), older.previous), ("00ff", None));
        let head: Head = serde_json::from_slice(&carrying).unwrap();
        assert_eq!(
            head.version, 3,
            "the loader reads a head that carries an entry"
        );
    }

    #[test]
    fn a_value_whose_json_does_not_read_back_is_refused_with_or_without_a_null() {
        // serde buffers an internally tagged enum's fields, and that buffer has no 128-bit
        // integers: the JSON holds no null, yet no `u128` field reads back.
        #[derive(Debug, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        enum Tagged {
            Big { id: u128 },
            Small { id: u64 },
        }
        assert!(matches!(
            json::<_, Tagged>("change", &Tagged::Big { id: 7 }),
            Err(EtcdError::Unreadable { what: "change", .. })
        ));
        assert!(matches!(
            json::<_, f64>("change", &f64::NAN),
            Err(EtcdError::Unreadable { .. })
        ));
        assert_eq!(
            json::<_, Tagged>("change", &Tagged::Small { id: 7 }).unwrap(),
            br#"{"kind":"Small","id":7}"#
        );
    }

    #[test]
    fn history_keys_sort_by_version_and_parse_back() {
        let keys = Keys::new("/hive/");
        assert!(keys.history(9) < keys.history(10));
    }
}
