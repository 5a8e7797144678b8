//! Reading a memory from etcd: a range page by page at one revision (read again at the current one
//! when etcd compacts that revision under it), creating a memory at an empty prefix, and loading its
//! marker, head and state together; and the request limits.

#[allow(clippy::wildcard_imports)]
use super::*;

/// How many times in a row a read at one revision starts again when etcd compacted that revision
/// under it before its error is returned: each restart needs another compaction within the few
/// requests of one read.
const COMPACTED_RESTARTS: u32 = 16;

/// Runs `read`, a read of several requests at the revision its first request picks (the current
/// one), again from the start when etcd compacted that revision between its requests. Compaction
/// (`--auto-compaction-retention`, on a schedule in production) removes no current key, only the
/// older revisions such a read pins, so the read taken again at the current revision finds them all.
async fn restarting_when_compacted<T, F, Fut>(mut read: F) -> Result<T, EtcdError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, EtcdError>>,
{
    let mut restarts = 0;
    loop {
        match read().await {
            Err(error) if error.is_compacted() && restarts < COMPACTED_RESTARTS => {
                restarts += 1;
                tracing::debug!(%error, restarts, "etcd compacted the revision of a read; reading again");
            }
            outcome => return outcome,
        }
    }
}

/// Reads `[start, end)` at one revision, the current one; returns the pairs and the revision read.
pub(super) async fn read_range(
    client: &Client,
    config: &EtcdConfig,
    start: Vec<u8>,
    end: Vec<u8>,
) -> Result<(Vec<KeyValue>, i64), EtcdError> {
    restarting_when_compacted(|| read_pages(client, config, start.clone(), end.clone(), 0)).await
}

/// Reads `[start, end)` page by page at one revision (`0`: the current one); returns the pairs and
/// the revision read.
async fn read_pages(
    client: &Client,
    config: &EtcdConfig,
    start: Vec<u8>,
    end: Vec<u8>,
    revision: i64,
) -> Result<(Vec<KeyValue>, i64), EtcdError> {
    let kv = crate::clients::kv(client);
    let mut pairs = Vec::new();
    let mut start = start;
    let mut revision = revision;
    loop {
        let options = GetOptions::new()
            .with_range(end.clone())
            .with_limit(PAGE)
            .with_revision(revision);
        let mut response = config
            .request("range read", || {
                let mut kv = kv.clone();
                let (start, options) = (start.clone(), options.clone());
                async move { kv.get(start, Some(options)).await }
            })
            .await?;
        if revision == 0 {
            revision = response.header().map_or(0, |header| header.revision());
        }
        let more = response.more();
        let page = response.take_kvs();
        let Some(last) = page.last() else { break };
        start = last.key().to_vec();
        start.push(0);
        pairs.extend(page);
        if !more {
            break;
        }
    }
    Ok((pairs, revision))
}

/// A range and the memory's `head` key, read at one revision.
pub(super) struct HeadAndRange {
    /// The head, when etcd holds one.
    pub(super) head: Option<KeyValue>,
    /// The range's pairs, in key order.
    pub(super) pairs: Vec<KeyValue>,
    /// The revision read.
    pub(super) revision: i64,
}

/// Reads `head` and `[start, end)` at one revision, the current one: the head comes in one
/// transaction with the range's first page, so that it says what the range belongs to (a head
/// created at another revision than the one opened: another memory's keys) and which version is
/// the newest.
pub(super) async fn read_head_and_range(
    client: &Client,
    config: &EtcdConfig,
    head: String,
    start: Vec<u8>,
    end: Vec<u8>,
) -> Result<HeadAndRange, EtcdError> {
    restarting_when_compacted(|| {
        read_head_and_range_once(client, config, head.clone(), start.clone(), end.clone())
    })
    .await
}

async fn read_head_and_range_once(
    client: &Client,
    config: &EtcdConfig,
    head: String,
    start: Vec<u8>,
    end: Vec<u8>,
) -> Result<HeadAndRange, EtcdError> {
    let kv = crate::clients::kv(client);
    let page = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
    let txn = Txn::new().and_then([TxnOp::get(head, None), TxnOp::get(start, Some(page))]);
    let response = config
        .request("read head and range", || {
            let mut kv = kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await?;
    let revision = response.header().map_or(0, |header| header.revision());
    let mut responses = response.op_responses();
    let head = first_kv(&responses, 0);
    let (mut pairs, more) = match responses.get_mut(1) {
        Some(TxnOpResponse::Get(get)) => (get.take_kvs(), get.more()),
        _ => (Vec::new(), false),
    };
    if let (true, Some(last)) = (more, pairs.last()) {
        let mut next = last.key().to_vec();
        next.push(0);
        let (rest, _) = read_pages(client, config, next, end, revision).await?;
        pairs.extend(rest);
    }
    Ok(HeadAndRange {
        head,
        pairs,
        revision,
    })
}

/// The memory's marker key (`meta`), as etcd holds it now: no pairs when there is none.
pub(super) async fn read_marker(
    client: &Client,
    config: &EtcdConfig,
    keys: &Keys,
) -> Result<etcd_client::GetResponse, EtcdError> {
    let kv = crate::clients::kv(client);
    config
        .request("read marker", || {
            let mut kv = kv.clone();
            let key = keys.meta();
            async move { kv.get(key, None).await }
        })
        .await
}

/// Creates the memory (marker, head at version 0, initial state) when the prefix is empty.
pub(super) async fn initialize<S: State, L: Layout<S>>(
    client: &Client,
    config: &EtcdConfig,
    keys: &Keys,
    initial: &S,
) -> Result<(), EtcdError> {
    let kv = crate::clients::kv(client);
    let marker = read_marker(client, config, keys).await?;
    if !marker.kvs().is_empty() {
        return Ok(());
    }
    // Keys of the prefix that are not the memory's: everything but what membership and elections
    // on the same prefix write (a process may join or campaign before the memory exists).
    let count = |prefix: String| {
        TxnOp::get(
            prefix,
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
    };
    let counts = Txn::new().and_then([
        count(keys.prefix.clone()),
        count(keys.members_prefix()),
        count(keys.election("")),
    ]);
    let counted = config
        .request("scan prefix", || {
            let mut kv = kv.clone();
            let counts = counts.clone();
            async move { kv.txn(counts).await }
        })
        .await?;
    let counts: Vec<i64> = counted
        .op_responses()
        .iter()
        .map(|response| match response {
            TxnOpResponse::Get(get) => get.count(),
            _ => 0,
        })
        .collect();
    let others = match counts[..] {
        [all, members, elections] => all - members - elections,
        _ => 0,
    };
    if others > 0 {
        // Another process may have created the memory since the marker was read (its marker and
        // state are written in one transaction, so a marker now means the keys are its).
        let marker = read_marker(client, config, keys).await?;
        if !marker.kvs().is_empty() {
            return Ok(());
        }
        return Err(EtcdError::NotAMemory {
            prefix: keys.prefix.clone(),
            found: format!("{others} keys and no hivekit marker"),
        });
    }
    let meta = json::<_, Meta>(
        "memory marker",
        &Meta {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            layout: L::NAME.into(),
            decisions: Some(DECISIONS_LEASED.into()),
        },
    )?;
    let head = json::<_, Head>(
        "head",
        &Head {
            version: 0,
            decision: String::new(),
        },
    )?;
    // The marker, the head and the state in one transaction, so that no process ever sees half of
    // a memory: its size is all of them together.
    let mut size = TxnSize::new();
    size.compare(&keys.meta());
    size.write(&keys.meta(), Some(&meta));
    size.write(&keys.head(), Some(&head));
    let mut operations = vec![
        TxnOp::put(keys.meta(), meta, None),
        TxnOp::put(keys.head(), head, None),
    ];
    for (relative, value) in L::encode_state(initial)? {
        let key = keys.state(&relative);
        size.write(&key, Some(&value));
        operations.push(TxnOp::put(key, value, None));
    }
    size.check(config)?;
    // Only the first process to get here creates it; the others load what it wrote.
    let txn = Txn::new()
        .when([Compare::create_revision(keys.meta(), CompareOp::Equal, 0)])
        .and_then(operations);
    let kv = crate::clients::kv(client);
    config
        .request("create memory", || {
            let mut kv = kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
        .map_err(|error| size.refusal(config, error))?;
    Ok(())
}

/// Reads the marker, the head and the state at one revision, the current one.
pub(super) async fn load<S: State, L: Layout<S>>(
    client: &Client,
    config: &EtcdConfig,
    keys: &Keys,
) -> Result<Loaded<S>, EtcdError> {
    restarting_when_compacted(|| load_once::<S, L>(client, config, keys)).await
}

async fn load_once<S: State, L: Layout<S>>(
    client: &Client,
    config: &EtcdConfig,
    keys: &Keys,
) -> Result<Loaded<S>, EtcdError> {
    let kv = crate::clients::kv(client);
    let txn = Txn::new().and_then([TxnOp::get(keys.meta(), None), TxnOp::get(keys.head(), None)]);
    let response = config
        .request("read head", || {
            let mut kv = kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await?;
    let read_revision = response.header().map_or(0, |header| header.revision());
    let responses = response.op_responses();
    let not_a_memory = |found: &str| EtcdError::NotAMemory {
        prefix: keys.prefix.clone(),
        found: found.to_string(),
    };
    let meta = first_kv(&responses, 0).ok_or_else(|| not_a_memory("no hivekit marker"))?;
    let meta: Meta = serde_json::from_slice(meta.value())
        .map_err(|_| not_a_memory("a `meta` key that is not a hivekit marker"))?;
    if meta.format != FORMAT || meta.format_version != FORMAT_VERSION {
        return Err(not_a_memory(&format!(
            "format `{}` version {}",
            meta.format, meta.format_version
        )));
    }
    if meta.layout != L::NAME {
        return Err(EtcdError::LayoutMismatch {
            prefix: keys.prefix.clone(),
            stored: meta.layout,
            requested: L::NAME,
        });
    }
    let head_pair = first_kv(&responses, 1).ok_or_else(|| not_a_memory("a marker and no head"))?;
    let head: Head = decode(head_pair.key(), head_pair.value())?;
    let state_prefix = keys.state_prefix();
    let (pairs, _) = read_pages(
        client,
        config,
        state_prefix.clone().into_bytes(),
        prefix_end(&state_prefix),
        read_revision,
    )
    .await?;
    let pairs = pairs
        .into_iter()
        .map(|pair| {
            let (key, value) = pair.into_key_value();
            let relative = String::from_utf8_lossy(&key[state_prefix.len()..]).into_owned();
            (relative, value)
        })
        .collect();
    let state = L::decode_state(pairs, &|relative| keys.state(relative))?;
    Ok(Loaded {
        state,
        version: head.version,
        decision: head.decision,
        head_revision: head_pair.mod_revision(),
        head_created: head_pair.create_revision(),
        read_revision,
    })
}
