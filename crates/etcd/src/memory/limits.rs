//! etcd's limits on one transaction (`--max-request-bytes`, `--max-txn-ops`): what a transaction
//! costs, counted from above while it is built and checked before it is sent, and etcd's own
//! refusals (a cluster whose limits are lower than configured) turned into the same typed errors.

use crate::config::EtcdConfig;
use crate::error::EtcdError;

/// Bytes etcd adds around the transaction before it checks the request's size, counted from
/// above: etcd checks the request it proposes to raft, the transaction's protobuf encoding inside
/// an envelope of about 50 bytes (a request id, the transaction's tag and length, and under
/// authentication an auth revision and the user's name), so this leaves room for user names of
/// some 400 bytes.
const REQUEST_FRAMING: usize = 512;

/// Protobuf bytes around one operation, compare or read on top of its key and value, counted from
/// above: a tag and a length (at most 6 bytes, for lengths under 4 GiB) for its key, its value and
/// the two messages that wrap it, and a lease id or a revision (at most 11 bytes): 35 for a put
/// under a lease, 27 for a compare.
const FIELD_FRAMING: usize = 40;

/// What etcd counts of one transaction against its limits, counted from above as it is built:
/// every compare, every operation, every read of the `else` branch, and the request's framing.
#[derive(Debug, Clone, Copy)]
pub(super) struct TxnSize {
    /// The request's size as etcd checks it against `--max-request-bytes` (at most this).
    bytes: usize,
    compares: usize,
    operations: usize,
    reads: usize,
}

impl TxnSize {
    /// An empty transaction: its framing only.
    pub(super) fn new() -> Self {
        TxnSize {
            bytes: REQUEST_FRAMING,
            compares: 0,
            operations: 0,
            reads: 0,
        }
    }

    /// A compare on `key`.
    pub(super) fn compare(&mut self, key: &str) {
        self.bytes += key.len() + FIELD_FRAMING;
        self.compares += 1;
    }

    /// A put of `value` (or, with `None`, a delete) at `key` in the `then` branch.
    pub(super) fn write(&mut self, key: &str, value: Option<&[u8]>) {
        self.bytes += key.len() + value.map_or(0, <[u8]>::len) + FIELD_FRAMING;
        self.operations += 1;
    }

    /// A read of `key` in the `else` branch.
    pub(super) fn read(&mut self, key: &str) {
        self.bytes += key.len() + FIELD_FRAMING;
        self.reads += 1;
    }

    /// The operations etcd checks against `--max-txn-ops`: those of the largest of the compares
    /// and the two branches.
    pub(super) fn operations(&self) -> usize {
        self.compares.max(self.operations).max(self.reads)
    }

    /// [`EtcdError::TooLarge`] or [`EtcdError::TooManyOperations`] when the transaction exceeds the
    /// configured limits; then it must not be sent.
    pub(super) fn check(&self, config: &EtcdConfig) -> Result<(), EtcdError> {
        if self.bytes > config.max_request_bytes {
            return Err(self.too_large(config));
        }
        if self.operations() > config.max_txn_ops {
            return Err(self.too_many_operations(config));
        }
        Ok(())
    }

    /// `error`, or when it is etcd refusing this transaction for its size or its operations (a
    /// cluster whose limits are lower than configured), the typed error [`check`](Self::check)
    /// gives. Nothing was applied then: etcd refuses the whole transaction.
    pub(super) fn refusal(&self, config: &EtcdConfig, error: EtcdError) -> EtcdError {
        if error.is_request_too_large() {
            self.too_large(config)
        } else if error.is_too_many_operations() {
            self.too_many_operations(config)
        } else {
            error
        }
    }

    fn too_large(&self, config: &EtcdConfig) -> EtcdError {
        EtcdError::TooLarge {
            bytes: self.bytes,
            limit: config.max_request_bytes,
        }
    }

    fn too_many_operations(&self, config: &EtcdConfig) -> EtcdError {
        EtcdError::TooManyOperations {
            operations: self.operations(),
            limit: config.max_txn_ops,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_a_transaction_counts_and_its_operations_are_its_largest_branch() {
        let mut size = TxnSize::new();
        size.compare("head");
        size.compare("decision");
        size.write("head", Some(b"{}"));
        size.write("history/1", None);
        size.write("state/value", Some(b"[1,2]"));
        size.read("head");
        assert_eq!(
            size.bytes,
            REQUEST_FRAMING + 6 * FIELD_FRAMING + 4 + 8 + 4 + 2 + 9 + 11 + 5 + 4
        );
        assert_eq!(size.operations(), 3);
        let config = EtcdConfig::new(["http://127.0.0.1:2379"], "/hive")
            .max_request_bytes(size.bytes)
            .max_txn_ops(2);
        assert!(matches!(
            size.check(&config),
            Err(EtcdError::TooManyOperations {
                operations: 3,
                limit: 2
            })
        ));
        let config = config.max_txn_ops(3);
        assert!(size.check(&config).is_ok());
        let config = config.max_request_bytes(size.bytes - 1);
        assert!(matches!(
            size.check(&config),
            Err(EtcdError::TooLarge { bytes, limit }) if bytes == limit + 1
        ));
    }
}
