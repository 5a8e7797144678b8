//! The etcd-client clients this crate reads with, without gRPC's 4 MiB limit on a response.
//!
//! Every write is bounded by etcd's own request limit (`--max-request-bytes`, 1.5 MiB by default),
//! but a read gathers many writes: a page of state keys, a history range, a watch response that
//! carries every revision a follower missed. With tonic's default decoding limit such a read failed
//! with `OutOfRange` (and a follower retried its watch for ever) once it passed 4 MiB, so a memory
//! whose every commit was accepted could not be read back. What was accepted must be readable: the
//! clients here accept responses of any size.

use etcd_client::{Client, KvClient, WatchClient};

/// A key-value client that decodes responses of any size.
pub(crate) fn kv(client: &Client) -> KvClient {
    client.kv_client().max_decoding_message_size(usize::MAX)
}

/// A watch client that decodes responses of any size.
pub(crate) fn watch(client: &Client) -> WatchClient {
    client.watch_client().max_decoding_message_size(usize::MAX)
}
