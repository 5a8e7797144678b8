//! A commit that etcd refuses for its number of operations, under a configuration that claims a
//! higher `--max-txn-ops` than the cluster has, fails with the typed `EtcdError::TooManyOperations`
//! (in `MemoryError::Backend`), as one over the configured limit does and as the byte limit's twin
//! maps to `TooLarge`; nothing committed. Before, it was a raw `EtcdError::Client` "too many
//! operations in txn request" (found by qa6).

mod support;

use hivekit_etcd::{EtcdMemory, Keyed};
use hivekit_hive::{AcceptedChange, CommitRequest, Memory, MemoryError, Proposal, ProposalId};
use support::{config, etcd, Add, Counters};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_over_the_clusters_txn_op_limit_is_a_typed_error_even_when_misconfigured() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "misconfigured-ops").max_txn_ops(1000);
    let memory = EtcdMemory::<Counters, Keyed>::open(config, Counters::default())
        .await
        .unwrap();
    let proposals: Vec<_> = (0..200_u64)
        .map(|key| {
            Proposal::new(
                ProposalId(key),
                Add {
                    id: key,
                    key,
                    delta: 1,
                },
            )
            .writes([key])
        })
        .collect();
    let accepted: Vec<AcceptedChange<'_, Counters>> = proposals
        .iter()
        .map(|proposal| AcceptedChange {
            proposal,
            proposer: None,
        })
        .collect();
    let error = memory
        .commit(CommitRequest {
            decision_id: 1,
            round: 1,
            base: 0,
            accepted: &accepted,
        })
        .await
        .unwrap_err();
    assert_eq!(memory.snapshot().version(), 0, "nothing committed");
    assert!(!error.may_have_committed(), "{error}");
    // As `EtcdError::TooManyOperations` maps (a Backend error naming etcd's limit).
    assert!(
        matches!(error, MemoryError::Backend { .. })
            && format!("{error:?}").contains("TooManyOperations"),
        "{error:?}"
    );
}
