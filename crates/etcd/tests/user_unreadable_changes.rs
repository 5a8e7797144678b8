//! A change (or state) whose JSON serde_json writes but cannot read back, for a reason other than a
//! NaN: a `u128` (a UUID-like id, say) inside an internally tagged enum, which serde buffers
//! through a representation without 128-bit integers.
//!
//! Documented (`Layout::encode_state`/`encode_commit`, `EtcdError::Unreadable`, ARCHITECTURE.md):
//! a value that would not read back is refused with `Unreadable` and nothing is written, "since
//! every follower and every later open would fail on it". Before, only JSON holding `null` was read
//! back, so such a change committed and every other process silently stopped following. And a
//! process that meets a version it cannot read (committed by a process whose change type differs)
//! says so through `changed` instead of waiting forever.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use hivekit_etcd::{EtcdError, EtcdMemory, Whole};
use hivekit_hive::{Memory, MemoryError, Proposal, ProposalId, ProposalOf, State};
use serde::{Deserialize, Serialize};
use support::{commit, config, etcd};

/// A change naming its subject by a 128-bit id, tagged by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
enum Grant {
    Give { to: u128, amount: i64 },
}

/// Balances by 128-bit id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Balances {
    by_id: BTreeMap<String, i64>,
    grants: u64,
}

impl State for Balances {
    type Key = u64;
    type Change = Grant;
    fn apply(&mut self, change: &Grant) {
        let Grant::Give { to, amount } = change;
        *self.by_id.entry(to.to_string()).or_default() += amount;
        self.grants += 1;
    }
}

fn give(id: u64, to: u128, amount: i64) -> ProposalOf<Balances> {
    Proposal::new(ProposalId(id), Grant::Give { to, amount }).writes([0])
}

#[test]
fn the_change_really_does_not_read_back() {
    let json = serde_json::to_string(&Grant::Give {
        to: u128::MAX - 1,
        amount: 5,
    })
    .unwrap();
    assert!(!json.contains("null"), "{json}");
    assert!(serde_json::from_str::<Grant>(&json).is_err(), "{json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_does_not_read_back_is_refused_or_followed_never_silently_stuck() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "u128-change");
    let writer = EtcdMemory::<Balances, Whole>::open(config.clone(), Balances::default())
        .await
        .unwrap();
    let reader = EtcdMemory::<Balances, Whole>::open(config.clone(), Balances::default())
        .await
        .unwrap();
    let outcome = commit(&writer, 1, 0, &[give(1, u128::MAX - 1, 5)], 1).await;
    match outcome {
        Err(MemoryError::Backend { source }) => {
            let refused = source
                .downcast_ref::<EtcdError>()
                .is_some_and(|error| matches!(error, EtcdError::Unreadable { .. }));
            assert!(refused, "expected Unreadable, got {source}");
            assert_eq!(writer.snapshot().version(), 0);
        }
        Err(other) => panic!("expected Unreadable, got {other}"),
        Ok(committed) => {
            // Accepted: then every other process must be able to follow it.
            assert_eq!(committed.version, 1);
            let followed = tokio::time::timeout(Duration::from_secs(5), reader.changed(0)).await;
            assert!(
                matches!(&followed, Ok(Ok(snapshot)) if snapshot.grants == 1),
                "the commit was accepted, but another process cannot follow it: {:?}",
                followed.map(|result| result.map(|snapshot| snapshot.version()))
            );
            let reopened = EtcdMemory::<Balances, Whole>::open(config, Balances::default()).await;
            assert!(reopened.is_ok(), "{:?}", reopened.err());
            let history = writer.history(1, 1).await;
            assert!(history.is_ok(), "{:?}", history.err());
        }
    }
}

/// The same balances, written by a process whose change is a plain struct: its JSON is the tagged
/// enum's, and reads back as the struct, but not as the enum.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PlainBalances {
    by_id: BTreeMap<String, i64>,
    grants: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PlainGive {
    kind: String,
    to: u128,
    amount: i64,
}

impl State for PlainBalances {
    type Key = u64;
    type Change = PlainGive;
    fn apply(&mut self, change: &PlainGive) {
        *self.by_id.entry(change.to.to_string()).or_default() += change.amount;
        self.grants += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_meets_a_version_it_cannot_read_fails_changed_instead_of_hanging() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "unreadable-followed");
    let writer = EtcdMemory::<PlainBalances, Whole>::open(config.clone(), PlainBalances::default())
        .await
        .unwrap();
    let reader = EtcdMemory::<Balances, Whole>::open(config.clone(), Balances::default())
        .await
        .unwrap();
    let give = PlainGive {
        kind: "Give".into(),
        to: u128::MAX - 1,
        amount: 5,
    };
    let proposal = Proposal::new(ProposalId(1), give).writes([0]);
    let committed = commit(&writer, 1, 0, &[proposal], 1).await.unwrap();
    assert_eq!(committed.version, 1);
    let followed = tokio::time::timeout(Duration::from_secs(5), reader.changed(0))
        .await
        .expect("changed answers instead of waiting for a version it cannot read");
    match followed {
        Err(MemoryError::Corrupt { key, .. }) => assert_eq!(
            key,
            format!("{}history/{:020}", config.prefix(), 1),
            "the error names the entry"
        ),
        other => panic!(
            "expected Corrupt naming version 1's entry, got {:?}",
            other.map(|snapshot| snapshot.version())
        ),
    }
    assert_eq!(reader.snapshot().version(), 0);
    // Asked again, it says the same at once.
    let again = tokio::time::timeout(Duration::from_secs(1), reader.changed(0))
        .await
        .expect("changed answers at once");
    assert!(matches!(again, Err(MemoryError::Corrupt { .. })));
}
