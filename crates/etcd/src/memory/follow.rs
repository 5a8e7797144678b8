//! The follower: a watch on the history that installs every version committed elsewhere.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Follows the head and the history through a watch: installs every version committed elsewhere,
/// resumes after a lost connection, and reloads when it fell behind etcd's compaction or finds its
/// next entry trimmed.
pub(super) async fn follow<S, L>(shared: Arc<Shared<S, L>>)
where
    S: State,
    S::Change: Serialize + DeserializeOwned,
    L: Layout<S>,
{
    // One range holds the head and the history: `head` sorts just before `history/`, and nothing
    // else under the prefix sorts between them.
    let head_key = shared.keys.head();
    let watched_end = prefix_end(&shared.keys.history_prefix());
    let mut backoff = Duration::from_millis(20);
    loop {
        if shared.check_not_gone_back().is_err() {
            return;
        }
        let start = shared.position.lock().seen_through + 1;
        let options = etcd_client::WatchOptions::new()
            .with_range(watched_end.clone())
            .with_start_revision(start);
        let mut watch_client = crate::clients::watch(&shared.client);
        let watched = tokio::time::timeout(
            shared.config.connect_timeout,
            watch_client.watch(head_key.clone(), Some(options)),
        )
        .await;
        let mut stream = match watched {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, "history watch failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
            Err(_) => {
                tracing::debug!("history watch timed out; retrying");
                continue;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(response)) => {
                    if response.compact_revision() > 0 {
                        bump(&shared.counters.reloads);
                        tracing::warn!(
                            prefix = %shared.keys.prefix,
                            compacted = response.compact_revision(),
                            resume = start,
                            "follower fell behind etcd's compaction; reloading from the history"
                        );
                    }
                    if response.canceled() {
                        match shared.catch_up().await {
                            // A compaction was counted above, whichever way it caught up.
                            Ok(reloaded) => {
                                if reloaded && response.compact_revision() == 0 {
                                    bump(&shared.counters.reloads);
                                }
                            }
                            Err(EtcdError::WentBack { .. }) => return,
                            Err(error) => {
                                shared
                                    .follow_failed(error, "reloading the history failed; retrying");
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(Duration::from_secs(1));
                            }
                        }
                        break;
                    }
                    backoff = Duration::from_millis(20);
                    for event in response.events() {
                        let Some(pair) = event.kv() else { continue };
                        let is_head = pair.key() == head_key.as_bytes();
                        if event.event_type() != etcd_client::EventType::Put {
                            if is_head {
                                // Nothing of hivekit's deletes the head: the memory is gone.
                                shared.mark_went_back(None);
                                return;
                            }
                            continue;
                        }
                        let installed = if is_head {
                            // The head carries the entry only when the committing process keeps
                            // no history; otherwise the entry's own key follows in this response.
                            decode::<HeadWithEntry<S::Change>>(pair.key(), pair.value()).and_then(
                                |head| {
                                    shared.check_head(pair, head.version)?;
                                    shared.check_watched_head(pair, &head)?;
                                    match head.entry {
                                        Some(entry) => shared.install_entry(pair, &entry),
                                        None => Ok(false),
                                    }
                                },
                            )
                        } else {
                            decode::<HistoryEntry<S::Change>>(pair.key(), pair.value())
                                .and_then(|entry| shared.install_entry(pair, &entry))
                        };
                        match installed {
                            Ok(_) => {}
                            // Nothing more to follow: this handle must be reopened.
                            Err(EtcdError::WentBack { .. }) => return,
                            Err(EtcdError::HistoryGap { .. }) => {
                                match shared.catch_up_counted().await {
                                    Ok(()) => {}
                                    Err(EtcdError::WentBack { .. }) => return,
                                    Err(error) => shared.follow_failed(error, "catching up failed"),
                                }
                            }
                            Err(error) => {
                                shared.follow_failed(error, "history entry cannot be installed");
                            }
                        }
                    }
                }
                Ok(None) | Err(_) => {
                    // No catch-up here: the new watch starts after the last entry installed, so
                    // etcd replays what was missed, or says the start was compacted, and that path
                    // reloads and counts it (a reload here would hide the compaction).
                    tracing::debug!("history watch ended; resuming");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    break;
                }
            }
        }
    }
}

impl<S, L> Shared<S, L>
where
    S: State,
    S::Change: Serialize + DeserializeOwned,
    L: Layout<S>,
{
    /// Logs what stopped the follower; a stored value it cannot read ([`EtcdError::Corrupt`]) is
    /// also kept for [`check_followable`](Self::check_followable): the follower cannot install
    /// that version, nor any after it, until it reloads past it.
    fn follow_failed(&self, error: EtcdError, what: &'static str) {
        let EtcdError::Corrupt { key, source } = error else {
            tracing::warn!(%error, "{what}");
            return;
        };
        tracing::error!(%key, %source, "{what}: a stored value cannot be read; changed() reports it");
        self.position.lock().unreadable = Some((key, Arc::new(source)));
        self.changed.notify_waiters();
    }

    /// [`MemoryError::Corrupt`] naming the stored value the follower is stopped at, if any.
    pub(super) fn check_followable(&self) -> Result<(), MemoryError> {
        match &self.position.lock().unreadable {
            Some((key, source)) => Err(MemoryError::Corrupt {
                key: key.clone(),
                source: Arc::clone(source) as _,
            }),
            None => Ok(()),
        }
    }
}
