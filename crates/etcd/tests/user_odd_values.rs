//! What a user storing odd keys and values hits: unicode, empty strings and key characters etcd
//! and JSON treat specially, values near etcd's request limit, odd prefixes and history ranges.

mod support;

use std::collections::BTreeMap;

use hivekit_etcd::{EtcdConfig, EtcdError, EtcdMemory, Keyed, KeyedState, Whole};
use hivekit_hive::{Memory, MemoryError, Proposal, ProposalId, ProposalOf, State};
use support::{commit, config, etcd, replace, Doc};

/// Labels by name, one etcd key per name.
#[derive(Debug, Clone, Default, PartialEq)]
struct Labels(BTreeMap<String, String>);

impl State for Labels {
    type Key = String;
    type Change = (String, Option<String>);
    fn apply(&mut self, (name, value): &(String, Option<String>)) {
        match value {
            Some(value) => self.0.insert(name.clone(), value.clone()),
            None => self.0.remove(name),
        };
    }
}

impl KeyedState for Labels {
    type Value = String;
    fn entry(&self, key: &String) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn entries(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
    fn from_entries(entries: Vec<(String, String)>) -> Self {
        Labels(entries.into_iter().collect())
    }
}

fn label(id: u64, name: &str, value: Option<&str>) -> ProposalOf<Labels> {
    Proposal::new(
        ProposalId(id),
        (name.to_string(), value.map(str::to_string)),
    )
    .writes([name.to_string()])
}

type LabelMemory = EtcdMemory<Labels, Keyed>;

const ODD_NAMES: [&str; 9] = [
    "",
    "a/b",
    "/",
    "\"quoted\"",
    "back\\slash",
    "\u{0}nul",
    "ünïcødé 🐝",
    "\u{7f}\u{ff}",
    "tab\tnew\nline",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_entries_with_odd_names_and_values_commit_reload_and_delete_exactly() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "odd-keys");
    let memory = LabelMemory::open(config.clone(), Labels::default())
        .await
        .unwrap();
    let proposals: Vec<_> = ODD_NAMES
        .iter()
        .zip(1..)
        .map(|(name, id)| label(id, name, Some(&format!("{name}|{id}|é"))))
        .collect();
    let committed = commit(&memory, 1, 0, &proposals, 1).await.unwrap();
    assert_eq!(committed.version, 1);
    // An empty value is a value, not a deletion.
    commit(&memory, 2, 1, &[label(100, "empty", Some(""))], 1)
        .await
        .unwrap();

    let expected: BTreeMap<String, String> = ODD_NAMES
        .iter()
        .zip(1..)
        .map(|(name, id)| (name.to_string(), format!("{name}|{id}|é")))
        .chain([("empty".to_string(), String::new())])
        .collect();
    let reopened = LabelMemory::open(config.clone(), Labels::default())
        .await
        .unwrap();
    assert_eq!(reopened.snapshot().version(), 2);
    assert_eq!(reopened.snapshot().0, expected);

    // Deleting the odd names one by one leaves exactly the rest, here and in a fresh process.
    let deletions: Vec<_> = ODD_NAMES
        .iter()
        .zip(200..)
        .map(|(name, id)| label(id, name, None))
        .collect();
    commit(&memory, 3, 2, &deletions, 1).await.unwrap();
    let reopened = LabelMemory::open(config, Labels::default()).await.unwrap();
    assert_eq!(reopened.snapshot().version(), 3);
    assert_eq!(
        reopened.snapshot().0,
        BTreeMap::from([("empty".to_string(), String::new())])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unicode_prefix_holds_a_memory_of_its_own_and_an_empty_prefix_is_refused() {
    let server = etcd();
    let base = support::unique_prefix("odd-prefix");
    let unicode = format!("{base}/ruche-🐝-é");
    let plain = format!("{base}/ruche");
    let open = |prefix: &str| {
        EtcdMemory::<Doc, Whole>::open(
            support::config_under(vec![server.endpoint()], prefix),
            Doc::default(),
        )
    };
    let bees = open(&unicode).await.unwrap();
    let hive = open(&plain).await.unwrap();
    commit(&bees, 1, 0, &[replace(1, "🐝".repeat(3))], 1)
        .await
        .unwrap();
    assert_eq!(open(&unicode).await.unwrap().snapshot().text, "🐝🐝🐝");
    assert_eq!(
        hive.snapshot().version(),
        0,
        "a sibling prefix is untouched"
    );
    assert_eq!(open(&plain).await.unwrap().snapshot().version(), 0);

    for prefix in ["", "/"] {
        let error = open(prefix).await.unwrap_err();
        assert!(
            matches!(error, EtcdError::InvalidPrefix { .. }),
            "prefix {prefix:?}: {error}"
        );
    }
    let error = EtcdMemory::<Doc, Whole>::open(
        EtcdConfig::new(Vec::<String>::new(), &plain),
        Doc::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, EtcdError::NoEndpoints), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_just_under_the_request_limit_commits_and_one_just_over_is_too_large() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "near-limit");
    let memory = EtcdMemory::<Doc, Whole>::open(config.clone(), Doc::default())
        .await
        .unwrap();
    // Each commit carries the document twice: in the state and in the history entry.
    let under = "u".repeat(700 * 1024);
    let committed = commit(&memory, 1, 0, &[replace(1, under.clone())], 1)
        .await
        .unwrap();
    assert_eq!(committed.version, 1);

    let over = "o".repeat(800 * 1024);
    let error = commit(&memory, 2, 1, &[replace(2, over)], 1)
        .await
        .unwrap_err();
    match error {
        MemoryError::TooLarge { bytes, limit } => {
            assert_eq!(limit, 1_572_864);
            assert!(bytes > 1_600_000 && bytes < 1_700_000, "{bytes}");
        }
        other => panic!("expected TooLarge, got {other}"),
    }
    assert_eq!(memory.snapshot().version(), 1);
    assert_eq!(memory.snapshot().text.len(), under.len());

    // The refused commit left nothing behind: the next one is version 2 and reopening agrees.
    let committed = commit(&memory, 3, 1, &[replace(3, "small".into())], 1)
        .await
        .unwrap();
    assert_eq!(committed.version, 2);
    let reopened = EtcdMemory::<Doc, Whole>::open(config, Doc::default())
        .await
        .unwrap();
    assert_eq!(
        (
            reopened.snapshot().version(),
            reopened.snapshot().text.as_str()
        ),
        (2, "small")
    );
    let history = reopened.history(1, 2).await.unwrap();
    let decisions: Vec<_> = history.iter().map(|entry| entry.version).collect();
    assert_eq!(decisions, [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_commit_touching_more_keys_than_one_transaction_holds_is_refused_whole() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "many-ops");
    let memory = LabelMemory::open(config.clone(), Labels::default())
        .await
        .unwrap();
    let proposals: Vec<_> = (0..200)
        .map(|id| label(id, &format!("name-{id}"), Some("v")))
        .collect();
    let error = commit(&memory, 1, 0, &proposals, 1).await.unwrap_err();
    let MemoryError::Backend { source } = &error else {
        panic!("expected a backend error, got {error}");
    };
    assert!(
        matches!(
            source.downcast_ref::<EtcdError>(),
            Some(EtcdError::TooManyOperations { limit: 128, .. })
        ),
        "{error}"
    );
    assert_eq!(memory.snapshot().version(), 0);
    let reopened = LabelMemory::open(config, Labels::default()).await.unwrap();
    assert_eq!(reopened.snapshot().version(), 0);
    assert!(reopened.snapshot().0.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_ranges_that_are_empty_reversed_or_open_ended_answer_without_error() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "ranges");
    let memory = EtcdMemory::<Doc, Whole>::open(config, Doc::default())
        .await
        .unwrap();
    for id in 1..=3 {
        let base = memory.snapshot().version();
        commit(
            &memory,
            u128::from(id),
            base,
            &[replace(id, id.to_string())],
            1,
        )
        .await
        .unwrap();
    }
    let versions = |entries: Vec<hivekit_etcd::HistoryEntry<String>>| {
        entries
            .into_iter()
            .map(|entry| entry.version)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        versions(memory.history(0, 0).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(versions(memory.history(0, 3).await.unwrap()), [1, 2, 3]);
    assert_eq!(versions(memory.history(2, 2).await.unwrap()), [2]);
    assert_eq!(
        versions(memory.history(4, 10).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        versions(memory.history(3, 1).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(versions(memory.history(2, u64::MAX).await.unwrap()), [2, 3]);
}

/// Proposes a document of `sizes[round - 1]` bytes.
struct Writer {
    sizes: Vec<usize>,
}

impl hivekit_hive::Agent<Doc> for Writer {
    async fn propose(
        &self,
        ctx: &hivekit_hive::AgentContext,
        _view: &hivekit_hive::Snapshot<Doc>,
    ) -> Result<Option<ProposalOf<Doc>>, hivekit_hive::AgentError> {
        let size = self.sizes[ctx.round() as usize - 1];
        Ok(Some(replace(ctx.round(), "w".repeat(size))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hive_round_too_large_for_etcd_is_a_typed_error_and_the_next_round_commits() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "hive-too-large");
    let memory = EtcdMemory::<Doc, Whole>::open(config, Doc::default())
        .await
        .unwrap();
    let hive = hivekit_hive::Hive::builder_with_memory(memory)
        .build()
        .unwrap();
    hive.spawn(Writer {
        sizes: vec![2 << 20, 10],
    });
    let error = hive.decide().await.unwrap_err();
    assert!(
        matches!(
            error,
            hivekit_hive::HiveError::Memory(MemoryError::TooLarge { .. })
        ),
        "{error}"
    );
    let decision = hive.decide().await.unwrap();
    assert_eq!(decision.version, 1, "the refused round used no version");
    let memory = hive
        .memory()
        .downcast_ref::<EtcdMemory<Doc, Whole>>()
        .unwrap();
    assert_eq!(memory.snapshot().text.len(), 10);
    assert_eq!(memory.snapshot().edits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_nested_inside_another_memorys_prefix_is_refused_and_leaves_it_untouched() {
    let server = etcd();
    let outer = support::unique_prefix("nested");
    let open = |prefix: String| {
        EtcdMemory::<Doc, Whole>::open(
            support::config_under(vec![server.endpoint()], &prefix),
            Doc::default(),
        )
    };
    let memory = open(outer.clone()).await.unwrap();
    commit(&memory, 1, 0, &[replace(1, "outer".into())], 1)
        .await
        .unwrap();
    // Inside the outer memory's own keys: its state, its history.
    for inner in [format!("{outer}/state"), format!("{outer}/history")] {
        let error = open(inner.clone()).await.unwrap_err();
        assert!(
            matches!(error, EtcdError::NotAMemory { .. }),
            "{inner}: {error}"
        );
    }
    // Around an existing memory: the outer prefix holds its keys and no marker of its own.
    let inner_only = format!("{outer}-x/inner");
    drop(open(inner_only).await.unwrap());
    let error = open(format!("{outer}-x")).await.unwrap_err();
    assert!(matches!(error, EtcdError::NotAMemory { .. }), "{error}");

    let reopened = open(outer).await.unwrap();
    assert_eq!(
        (
            reopened.snapshot().version(),
            reopened.snapshot().text.as_str()
        ),
        (1, "outer")
    );
}

/// Counters by key, one etcd key per counter (shared with the other tests through `support`).
type CounterMemory = EtcdMemory<support::Counters, Keyed>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_memory_of_600_entries_built_in_batches_reopens_whole_across_read_pages() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "keyed-pages");
    let memory = CounterMemory::open(config.clone(), support::Counters::default())
        .await
        .unwrap();
    // 100 keys per commit stays under etcd's 128 operations per transaction.
    for batch in 0..6_u64 {
        let proposals: Vec<_> = (0..100_u64)
            .map(|n| {
                let key = batch * 100 + n;
                Proposal::new(
                    ProposalId(key),
                    support::Add {
                        id: key,
                        key,
                        delta: 1,
                    },
                )
                .writes([key])
            })
            .collect();
        commit(&memory, u128::from(batch + 1), batch, &proposals, 1)
            .await
            .unwrap();
    }
    let reopened = CounterMemory::open(config, support::Counters::default())
        .await
        .unwrap();
    assert_eq!(reopened.snapshot().version(), 6);
    let expected: BTreeMap<u64, i64> = (0..600).map(|key| (key, 1)).collect();
    assert_eq!(reopened.snapshot().0, expected);
}
