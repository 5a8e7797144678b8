//! What can go wrong talking to etcd, and how it maps onto the hive's [`MemoryError`].

use std::sync::Arc;
use std::time::Duration;

use hivekit_hive::MemoryError;

/// Why an etcd memory, membership or election could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// A process or election name that cannot be one segment of a key.
    #[error("invalid name `{name}`: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The configuration names no endpoint.
    #[error("no etcd endpoint configured")]
    NoEndpoints,
    /// The prefix is empty or not a plain key prefix.
    #[error("invalid key prefix `{prefix}`: {reason}")]
    InvalidPrefix {
        /// The prefix given.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The decision window is shorter than the commit timeout: a commit could still be resending
    /// a copy after its decision key expired, and that copy could land a second time.
    #[error(
        "decision window {window:?} is shorter than the commit timeout {commit_timeout:?}: \
         a resent commit could land twice"
    )]
    DecisionWindowTooShort {
        /// The window configured.
        window: Duration,
        /// The commit timeout configured.
        commit_timeout: Duration,
    },
    /// No endpoint answered within the connect timeout; nothing was written.
    #[error("etcd at {endpoints} unreachable within {waited:?}: {detail}")]
    Unreachable {
        /// The endpoints tried.
        endpoints: String,
        /// How long it waited.
        waited: Duration,
        /// The last failure seen.
        detail: String,
    },
    /// A request did not complete in time.
    #[error("etcd {operation} timed out after {waited:?}")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// How long it waited.
        waited: Duration,
    },
    /// etcd refused or failed a request.
    #[error("etcd {operation} failed: {source}")]
    Client {
        /// What was being done.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// A commit (or the transaction creating a memory with its initial state) larger than etcd
    /// accepts in one request (`--max-request-bytes`, 1.5 MiB by default).
    #[error("transaction of {bytes} bytes exceeds etcd's request limit of {limit} bytes")]
    TooLarge {
        /// The transaction's size, estimated from above (etcd counts at most this many bytes).
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A commit (or the transaction creating a memory with its initial state) with more operations
    /// than etcd accepts in one transaction (`--max-txn-ops`, 128 by default).
    #[error(
        "transaction of {operations} operations exceeds etcd's limit of {limit} per transaction"
    )]
    TooManyOperations {
        /// The operations the commit needs.
        operations: usize,
        /// The limit.
        limit: usize,
    },
    /// A stored value does not deserialize.
    #[error("value at `{key}` does not deserialize: {source}")]
    Corrupt {
        /// The etcd key.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A state or change does not serialize.
    #[error("{what} does not serialize: {source}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A state or change serializes to JSON that does not read back: serde_json writes a NaN or
    /// infinite float as `null`, which no float reads, and a `u128` or `i128` inside an internally
    /// tagged or untagged enum (or a flattened struct) does not read back at all. Nothing was
    /// written, since every follower and every later open would fail on it.
    #[error("{what} does not read back from its JSON: {source}")]
    Unreadable {
        /// What was being serialized.
        what: &'static str,
        /// Why reading it back failed.
        #[source]
        source: serde_json::Error,
    },
    /// The prefix holds keys but no hivekit memory marker, or a marker of another format.
    #[error("prefix `{prefix}` holds data that is not a hivekit memory ({found})")]
    NotAMemory {
        /// The prefix.
        prefix: String,
        /// What was found there.
        found: String,
    },
    /// The memory at the prefix was created with another state layout.
    #[error("memory at `{prefix}` uses the `{stored}` layout, not `{requested}`")]
    LayoutMismatch {
        /// The prefix.
        prefix: String,
        /// The layout stored in the memory's marker.
        stored: String,
        /// The layout this process asked for.
        requested: &'static str,
    },
    /// The history has a hole: a version is missing where the next one was expected.
    #[error("history at `{prefix}` jumps from version {expected} to {found}")]
    HistoryGap {
        /// The prefix.
        prefix: String,
        /// The version expected next.
        expected: u64,
        /// The version found.
        found: u64,
    },
    /// The memory in etcd went back under this process: its head was deleted, or created again
    /// (the prefix wiped and the memory recreated), or etcd holds an older version, or another
    /// version than the local one at its number or after it (etcd restored from an older backup).
    /// The
    /// local copy holds versions etcd no longer has, so this handle stops following and refuses to
    /// commit; open the memory again to continue from what etcd holds.
    #[error("the memory at `{prefix}` went back under this process (it holds version {local}; etcd {})", stored.map_or_else(|| "holds no memory".to_string(), |version| format!("holds another chain of versions, at version {version}: recreated, or restored from an older backup")))]
    WentBack {
        /// The prefix.
        prefix: String,
        /// The version this process holds.
        local: u64,
        /// The version of the memory etcd holds now, when it holds one.
        stored: Option<u64>,
    },
    /// A commit was sent but its outcome could not be read back before the deadline: it may or may
    /// not have landed. [`EtcdMemory::resolve`](crate::EtcdMemory::resolve) settles it for good.
    #[error("outcome of decision {decision_id:#x} unknown after {waited:?}: {detail}")]
    OutcomeUnknown {
        /// The decision.
        decision_id: u128,
        /// How long resolution was tried.
        waited: Duration,
        /// The last failure seen.
        detail: String,
    },
    /// The decision was fenced off by [`EtcdMemory::resolve`](crate::EtcdMemory::resolve) and can
    /// never commit.
    #[error("decision {decision_id:#x} was fenced off and cannot commit")]
    Fenced {
        /// The decision.
        decision_id: u128,
    },
    /// The lease behind a membership or leadership expired or was revoked.
    #[error("lease {lease:#x} lost: {detail}")]
    LeaseLost {
        /// The lease id.
        lease: i64,
        /// Why.
        detail: String,
    },
}

impl EtcdError {
    /// Wraps a client error from `operation`.
    pub(crate) fn client(operation: &'static str, source: etcd_client::Error) -> Self {
        EtcdError::Client { operation, source }
    }

    /// Whether etcd refused a transaction for its number of operations (`--max-txn-ops`).
    pub(crate) fn is_too_many_operations(&self) -> bool {
        matches!(self, EtcdError::Client { source: etcd_client::Error::GRpcStatus(status), .. }
            if status.message().contains("too many operations in txn request"))
    }

    /// Whether etcd refused a read at a revision it has compacted away.
    pub(crate) fn is_compacted(&self) -> bool {
        matches!(self, EtcdError::Client { source: etcd_client::Error::GRpcStatus(status), .. }
            if status.code() as i32 == grpc_code::OUT_OF_RANGE
                && status.message().contains("compacted"))
    }

    /// Whether etcd refused the request for its size (`--max-request-bytes`).
    pub(crate) fn is_request_too_large(&self) -> bool {
        matches!(self, EtcdError::Client { source: etcd_client::Error::GRpcStatus(status), .. }
            if status.message().contains("request is too large"))
    }
}

/// gRPC status codes, by number (`tonic::Code` is reached only through the statuses etcd-client
/// hands back, so this crate needs no direct tonic dependency).
mod grpc_code {
    pub(super) const NOT_FOUND: i32 = 5;
    pub(super) const ALREADY_EXISTS: i32 = 6;
    pub(super) const INVALID_ARGUMENT: i32 = 3;
    pub(super) const PERMISSION_DENIED: i32 = 7;
    pub(super) const RESOURCE_EXHAUSTED: i32 = 8;
    pub(super) const FAILED_PRECONDITION: i32 = 9;
    pub(super) const OUT_OF_RANGE: i32 = 11;
    pub(super) const UNIMPLEMENTED: i32 = 12;
    pub(super) const UNAVAILABLE: i32 = 14;
    pub(super) const UNAUTHENTICATED: i32 = 16;
}

/// Whether etcd refused a request for what it asks (its arguments, a permission, a missing lease),
/// so that sending it again can only fail again; a lost connection, a member gone or a leader
/// change is not such a refusal.
pub(crate) fn refused_for_good(error: &etcd_client::Error) -> bool {
    use etcd_client::Error;
    match error {
        Error::GRpcStatus(status) => {
            use grpc_code::*;
            matches!(
                status.code() as i32,
                INVALID_ARGUMENT
                    | FAILED_PRECONDITION
                    | RESOURCE_EXHAUSTED
                    | PERMISSION_DENIED
                    | UNAUTHENTICATED
                    | OUT_OF_RANGE
                    | UNIMPLEMENTED
                    | NOT_FOUND
                    | ALREADY_EXISTS
            )
        }
        Error::InvalidArgs(_)
        | Error::InvalidUri(_)
        | Error::Utf8Error(_)
        | Error::InvalidMetadataValue(_)
        | Error::EndpointError(_)
        | Error::EndpointsNotManaged => true,
        _ => false,
    }
}

/// Whether a client error means the request was certainly not applied: a connection that could not
/// be made, or a status etcd returns only for requests it rejected. Anything else (a timeout, a
/// reset connection, "leader changed") may have been applied.
pub(crate) fn not_applied(error: &etcd_client::Error) -> bool {
    use etcd_client::Error;
    match error {
        Error::GRpcStatus(status) => {
            use grpc_code::*;
            match status.code() as i32 {
                INVALID_ARGUMENT | FAILED_PRECONDITION | RESOURCE_EXHAUSTED | PERMISSION_DENIED
                | UNAUTHENTICATED | OUT_OF_RANGE | UNIMPLEMENTED | NOT_FOUND | ALREADY_EXISTS => {
                    true
                }
                UNAVAILABLE => unreachable_now(error),
                _ => false,
            }
        }
        Error::TransportError(_) => unreachable_now(error),
        Error::InvalidArgs(_)
        | Error::InvalidUri(_)
        | Error::Utf8Error(_)
        | Error::InvalidMetadataValue(_)
        | Error::EndpointError(_)
        | Error::EndpointsNotManaged => true,
        _ => false,
    }
}

/// Whether etcd refused a request because a lease it names does not exist (expired, or lost when
/// the cluster was restored from a backup); nothing of the request was applied.
pub(crate) fn lease_not_found(error: &etcd_client::Error) -> bool {
    matches!(error, etcd_client::Error::GRpcStatus(status)
        if status.code() as i32 == grpc_code::NOT_FOUND
            && status.message().contains("lease not found"))
}

/// Whether the error says no connection to etcd could be made (so the request never left).
pub(crate) fn unreachable_now(error: &etcd_client::Error) -> bool {
    let message = match error {
        etcd_client::Error::GRpcStatus(status) => {
            if status.code() as i32 != grpc_code::UNAVAILABLE {
                return false;
            }
            format!("{} {:?}", status.message(), status)
        }
        etcd_client::Error::TransportError(error) => format!("{error} {error:?}"),
        _ => return false,
    };
    let message = message.to_ascii_lowercase();
    message.contains("connection refused")
        || message.contains("tcp connect error")
        || message.contains("error trying to connect")
}

impl From<EtcdError> for MemoryError {
    fn from(error: EtcdError) -> Self {
        match error {
            EtcdError::TooLarge { bytes, limit } => MemoryError::TooLarge { bytes, limit },
            EtcdError::Corrupt { key, source } => MemoryError::Corrupt {
                key,
                source: Arc::new(source),
            },
            error @ (EtcdError::Unreachable { .. } | EtcdError::Timeout { .. }) => {
                MemoryError::Unavailable {
                    source: Arc::new(error),
                }
            }
            // "Maybe committed" must stay apart from "failed": a caller that retried it as a new
            // decision could apply it twice.
            error @ EtcdError::OutcomeUnknown { decision_id, .. } => MemoryError::OutcomeUnknown {
                decision_id,
                source: Arc::new(error),
            },
            error => MemoryError::Backend {
                source: Arc::new(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_outcome_becomes_memory_outcome_unknown_not_backend() {
        let error = MemoryError::from(EtcdError::OutcomeUnknown {
            decision_id: 0xabc,
            waited: Duration::from_secs(3),
            detail: "connection reset".to_owned(),
        });
        assert!(error.may_have_committed(), "{error:?}");
        match &error {
            MemoryError::OutcomeUnknown {
                decision_id,
                source,
            } => {
                assert_eq!(*decision_id, 0xabc);
                assert!(matches!(
                    source.downcast_ref::<EtcdError>(),
                    Some(EtcdError::OutcomeUnknown { .. })
                ));
            }
            other => panic!("expected OutcomeUnknown, got {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "outcome of decision 0xabc unknown, it may have committed: \
             outcome of decision 0xabc unknown after 3s: connection reset"
        );
    }

    #[test]
    fn errors_that_committed_nothing_do_not_claim_they_may_have() {
        let unreachable = MemoryError::from(EtcdError::Unreachable {
            endpoints: "http://127.0.0.1:1".to_owned(),
            waited: Duration::from_secs(1),
            detail: "connection refused".to_owned(),
        });
        assert!(matches!(unreachable, MemoryError::Unavailable { .. }));
        assert!(!unreachable.may_have_committed());
        let fenced = MemoryError::from(EtcdError::Fenced { decision_id: 1 });
        assert!(matches!(fenced, MemoryError::Backend { .. }));
        assert!(!fenced.may_have_committed());
    }
}
