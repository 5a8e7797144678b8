//! One commit: a compare-and-swap transaction on the head, retried after conflicts and resent
//! with the same decision id when its answer is lost, until the commit timeout.

#[allow(clippy::wildcard_imports)]
use super::*;

impl<S, L> Shared<S, L>
where
    S: State,
    S::Change: Serialize + DeserializeOwned,
    L: Layout<S>,
{
    /// Commits `request` (see the module doc).
    pub(super) async fn commit(
        &self,
        request: &CommitRequest<'_, S>,
    ) -> Result<Committed, EtcdError> {
        self.check_not_gone_back()?;
        let started = Instant::now();
        // A commit timeout of `Duration::MAX` means no limit.
        let timer_deadline =
            hivekit_runtime::instant_after(started.into(), self.config.commit_timeout);
        let deadline = timer_deadline.into_std();
        let decision_hex = format!("{:032x}", request.decision_id);
        let _committing = Committing::new(&self.committing, &decision_hex);
        let decision_key = self.keys.decision(request.decision_id);
        let head_key = self.keys.head();
        let changes: Vec<HistoryChange<&S::Change>> = request
            .accepted
            .iter()
            .map(|accepted| HistoryChange {
                proposal: accepted.proposal.id.0,
                proposer: accepted.proposer.map(|agent| agent.0),
                change: &accepted.proposal.payload,
            })
            .collect();
        let time_ms = now_ms();
        // The last failure after which the commit may have landed, and the last one after which it
        // cannot have.
        let mut ambiguous: Option<String> = None;
        let mut unreachable: Option<EtcdError> = None;
        let mut backoff = Duration::from_millis(20);
        let mut kv = crate::clients::kv(&self.client);
        while Instant::now() < deadline {
            // The decision key goes under a lease that outlives this commit's resends by the
            // decision window (`decisions.rs`).
            let granted = tokio::time::timeout_at(
                timer_deadline,
                self.decision_leases.lease(&self.client, &self.config),
            )
            .await;
            let lease = match granted {
                Ok(Ok(lease)) => lease,
                // The deadline passed during the grant: the commit ends as at any deadline.
                Err(_) => break,
                Ok(Err(error)) => {
                    // A grant applies nothing. One that timed out or found no member (a leader
                    // election after a member went away, say) is retried like an unreachable
                    // cluster until the commit's deadline, as the transaction itself would be;
                    // any other failure with no copy sent yet is the outcome.
                    let transient = match &error {
                        EtcdError::Timeout { .. } => true,
                        EtcdError::Client { source, .. } => unreachable_now(source),
                        _ => false,
                    };
                    if ambiguous.is_none() && !transient {
                        return Err(error);
                    }
                    tracing::debug!(%error, "granting a decision lease failed; retrying");
                    if ambiguous.is_none() {
                        unreachable = Some(error);
                    }
                    back_off(&mut backoff, timer_deadline).await;
                    continue;
                }
            };
            let (current, revision, previous) = self.position();
            let version = current.version() + 1;
            let rebased = current.version() != request.base;
            let next = request.apply_to(&current);
            drop(current);
            let entry = HistoryEntryRef {
                version,
                decision_id: &decision_hex,
                round: request.round,
                base: request.base,
                rebased,
                time_ms,
                changes: &changes,
            };
            // With a history depth of 0 the head carries the entry to the followers; otherwise the
            // entry gets its key, and the one that falls out of the window goes in the same
            // transaction, so the history never holds more than `depth` entries.
            let keep = self.config.history_depth > 0;
            let head = json::<_, HeadWithEntry<S::Change>>(
                "head",
                &HeadRef {
                    version,
                    decision: &decision_hex,
                    previous: &previous,
                    entry: (!keep).then_some(&entry),
                },
            )?;
            let decision_value = version.to_string();
            let mut size = TxnSize::new();
            size.compare(&head_key);
            size.compare(&decision_key);
            size.write(&head_key, Some(&head));
            size.write(&decision_key, Some(decision_value.as_bytes()));
            let mut operations = vec![
                TxnOp::put(head_key.clone(), head, None),
                TxnOp::put(
                    decision_key.clone(),
                    decision_value,
                    lease.map(|id| PutOptions::new().with_lease(id)),
                ),
            ];
            if keep {
                let history_key = self.keys.history(version);
                let entry = json::<_, HistoryEntry<S::Change>>("history entry", &entry)?;
                size.write(&history_key, Some(&entry));
                operations.push(TxnOp::put(history_key, entry, None));
            }
            if let Some(trimmed) = Keys::trimmed_by(version, self.config.history_depth) {
                let trimmed = self.keys.history(trimmed);
                size.write(&trimmed, None);
                operations.push(TxnOp::delete(trimmed, None));
            }
            for (relative, value) in L::encode_commit(&next, request.accepted)? {
                let key = self.keys.state(&relative);
                size.write(&key, value.as_deref());
                operations.push(match value {
                    Some(value) => TxnOp::put(key, value, None),
                    None => TxnOp::delete(key, None),
                });
            }
            size.read(&head_key);
            size.read(&decision_key);
            size.check(&self.config)?;
            let txn = Txn::new()
                .when([
                    Compare::mod_revision(head_key.clone(), CompareOp::Equal, revision),
                    Compare::version(decision_key.clone(), CompareOp::Equal, 0),
                ])
                .and_then(operations)
                .or_else([
                    TxnOp::get(head_key.clone(), None),
                    TxnOp::get(decision_key.clone(), None),
                ]);
            let wait = self
                .config
                .request_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            match tokio::time::timeout(wait, kv.txn(txn)).await {
                Ok(Ok(response)) if response.succeeded() => {
                    let revision = response.header().map_or(0, |header| header.revision());
                    // The commit landed: whatever happens locally, it is reported committed
                    // (the follower installs it from the history if this could not).
                    if let Err(error) =
                        self.install(version, revision, &decision_hex, false, |_| next)
                    {
                        tracing::error!(%error, version, "a committed version could not be installed here");
                    }
                    bump(&self.counters.commits);
                    if rebased {
                        bump(&self.counters.rebased);
                    }
                    return Ok(Committed::new(version, rebased));
                }
                Ok(Ok(response)) => {
                    if let Some(found) = first_kv(&response.op_responses(), 1) {
                        // An earlier attempt whose answer was lost did land.
                        let Ok(landed) = decided_version(&found)? else {
                            return Err(EtcdError::Fenced {
                                decision_id: request.decision_id,
                            });
                        };
                        // Only for the local copy: the follower installs it otherwise.
                        let _ =
                            tokio::time::timeout_at(timer_deadline, self.catch_up_counted()).await;
                        bump(&self.counters.commits);
                        let rebased = landed != request.base + 1;
                        if rebased {
                            bump(&self.counters.rebased);
                        }
                        return Ok(Committed::new(landed, rebased));
                    }
                    // Another commit landed first: read it, then re-apply on top of it.
                    bump(&self.counters.conflicts);
                    match tokio::time::timeout_at(timer_deadline, self.catch_up_counted()).await {
                        Ok(Ok(())) => {}
                        // Stored data that cannot be read: retrying cannot help.
                        Ok(Err(
                            error @ (EtcdError::Corrupt { .. }
                            | EtcdError::HistoryGap { .. }
                            | EtcdError::WentBack { .. }),
                        )) => return Err(error),
                        // The deadline passed while catching up.
                        Err(_) => break,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "catching up after a conflict failed; retrying");
                            back_off(&mut backoff, timer_deadline).await;
                        }
                    }
                }
                Ok(Err(source)) => {
                    // Limits lower than configured: etcd refused the whole transaction, which
                    // is then `TooLarge` or `TooManyOperations`, like one the check refused.
                    let error = size.refusal(&self.config, EtcdError::client("commit", source));
                    let EtcdError::Client { source, .. } = &error else {
                        return Err(error);
                    };
                    if let (Some(id), true) = (lease, lease_not_found(source)) {
                        // etcd lost the lease (restored from a backup, say): nothing was
                        // applied; the next attempt grants a new one.
                        self.decision_leases.forget(id);
                        unreachable = Some(error);
                        continue;
                    }
                    if unreachable_now(source) {
                        unreachable = Some(error);
                    } else if not_applied(source) {
                        // This copy was not applied; an earlier copy whose answer was lost may
                        // still land, so only a commit with no such copy fails for good here.
                        if ambiguous.is_none() {
                            return Err(error);
                        }
                    } else {
                        if ambiguous.is_none() {
                            bump(&self.counters.ambiguous);
                        }
                        tracing::warn!(decision = %decision_hex, %error, "commit outcome lost; reading it back");
                        ambiguous = Some(error.to_string());
                    }
                    back_off(&mut backoff, timer_deadline).await;
                }
                Err(_) => {
                    if ambiguous.is_none() {
                        bump(&self.counters.ambiguous);
                    }
                    tracing::warn!(decision = %decision_hex, "commit timed out; reading it back");
                    ambiguous = Some(format!("commit timed out after {wait:?}"));
                }
            }
        }
        let waited = started.elapsed();
        Err(match (ambiguous, unreachable) {
            (Some(detail), _) => EtcdError::OutcomeUnknown {
                decision_id: request.decision_id,
                waited,
                detail,
            },
            (None, Some(error)) => EtcdError::Unreachable {
                endpoints: self.config.endpoints.join(","),
                waited,
                detail: error.to_string(),
            },
            (None, None) => EtcdError::Timeout {
                operation: "commit",
                waited,
            },
        })
    }
}

/// Sleeps for `backoff`, or until `deadline` when that comes first, and doubles `backoff` (up to
/// half a second).
async fn back_off(backoff: &mut Duration, deadline: tokio::time::Instant) {
    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + *backoff)).await;
    *backoff = (*backoff * 2).min(Duration::from_millis(500));
}

/// A decision in [`Shared::committing`] for as long as its commit runs, however that ends.
struct Committing<'a> {
    list: &'a Mutex<Vec<String>>,
    decision: String,
}

impl<'a> Committing<'a> {
    fn new(list: &'a Mutex<Vec<String>>, decision: &str) -> Self {
        list.lock().push(decision.to_owned());
        Self {
            list,
            decision: decision.to_owned(),
        }
    }
}

impl Drop for Committing<'_> {
    fn drop(&mut self) {
        let mut list = self.list.lock();
        if let Some(at) = list.iter().position(|decision| *decision == self.decision) {
            list.swap_remove(at);
        }
    }
}
