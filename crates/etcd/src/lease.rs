//! A lease kept alive by a background task, that says when it can no longer be sure it is alive.

use std::sync::OnceLock;
use std::time::Duration;

use etcd_client::Client;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::EtcdConfig;
use crate::error::{lease_not_found, unreachable_now, EtcdError};

/// A granted lease and the task that renews it. Dropping it stops the renewals and revokes the
/// lease in the background, with the caller's client on the runtime it was granted on and from a
/// thread and a connection of the revoke's own (so also when dropped outside any runtime, or with
/// the runtime it was granted on), so that its keys go at once while the process lives on.
pub(crate) struct KeptLease {
    pub(crate) id: i64,
    /// The TTL etcd granted (it raises one below its minimum, about three election timeouts).
    pub(crate) ttl: Duration,
    /// Until when the lease is known alive: a TTL after the last renewal etcd acknowledged was
    /// sent; `None` once it is lost. A deadline, not a flag: a holder whose runtime stalls (a
    /// long synchronous call, a paused process) stops renewing, and a flag only the renewing task
    /// clears would say alive while etcd has let the lease expire and elected a successor.
    alive: watch::Receiver<Option<Instant>>,
    task: tokio::task::JoinHandle<()>,
    client: Client,
    runtime: tokio::runtime::Handle,
    /// Where the revoke of a dropped lease reaches etcd (see `Drop`).
    endpoints: Vec<String>,
    /// Revoked by [`revoke`](Self::revoke): nothing left to do when dropped.
    revoked: bool,
}

impl std::fmt::Debug for KeptLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptLease")
            .field("id", &self.id)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl KeptLease {
    /// Grants a lease of `ttl` (whole seconds, at least one; etcd may grant more) and starts
    /// renewing it every third of the TTL granted.
    pub(crate) async fn grant(
        client: &Client,
        config: &EtcdConfig,
        ttl: Duration,
    ) -> Result<Self, EtcdError> {
        let seconds = ttl.as_secs_f64().ceil().max(1.0) as i64;
        let lease_client = client.lease_client();
        let requested = Instant::now();
        let granted = config
            .request("grant lease", || {
                let mut lease_client = lease_client.clone();
                async move { lease_client.grant(seconds, None).await }
            })
            .await?;
        let id = granted.id();
        // Counted from before the grant was sent: etcd started the TTL after that.
        let granted_at = requested;
        let ttl = Duration::from_secs(granted.ttl().max(1) as u64);
        let (sender, alive) = watch::channel(Some(granted_at + ttl));
        let task = tokio::spawn(renew(client.clone(), id, ttl, sender));
        Ok(KeptLease {
            id,
            ttl,
            alive,
            task,
            client: client.clone(),
            runtime: tokio::runtime::Handle::current(),
            endpoints: config.endpoints().to_vec(),
            revoked: false,
        })
    }

    /// Whether the lease is known to be alive: renewed less than a TTL ago.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive
            .borrow()
            .is_some_and(|until| Instant::now() < until)
    }

    /// Waits until the lease is lost: not renewed within its TTL (also when the renewing task
    /// could not run), or expired.
    pub(crate) async fn lost(&self) {
        let mut alive = self.alive.clone();
        loop {
            let Some(until) = *alive.borrow_and_update() else {
                return;
            };
            if Instant::now() >= until {
                return;
            }
            tokio::select! {
                // An error means the renewing task ended, which it does only once the lease is lost.
                changed = alive.changed() => if changed.is_err() { return },
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Stops renewing and revokes the lease now. A lease etcd no longer knows (expired, or revoked
    /// by an operator) is gone already, its keys with it: that is what revoking asks, so it is `Ok`.
    pub(crate) async fn revoke(mut self, config: &EtcdConfig) -> Result<(), EtcdError> {
        self.task.abort();
        let lease_client = self.client.lease_client();
        let id = self.id;
        let revoked = config
            .request("revoke lease", || {
                let mut lease_client = lease_client.clone();
                async move { lease_client.revoke(id).await }
            })
            .await;
        let revoked = match revoked {
            Ok(_) => Ok(()),
            Err(EtcdError::Client { source, .. }) if lease_not_found(&source) => Ok(()),
            Err(error) => Err(error),
        };
        // Failed, the drop tries again in the background.
        self.revoked = revoked.is_ok();
        revoked
    }
}

/// How long the revoke of a dropped lease may take before the lease is left to expire by its TTL.
const DROPPED_REVOKE: Duration = Duration::from_secs(2);

impl Drop for KeptLease {
    fn drop(&mut self) {
        self.task.abort();
        if self.revoked {
            return;
        }
        let id = self.id;
        // The caller's client carries its credentials and TLS: revoke with it, on the lease's
        // runtime, wherever that runtime still runs tasks.
        let mut lease_client = self.client.lease_client();
        self.runtime.spawn(async move {
            let _ = tokio::time::timeout(DROPPED_REVOKE, lease_client.revoke(id)).await;
        });
        // A current-thread runtime runs that task only inside a later `block_on` (none comes
        // after the end of `main`), and a runtime being dropped cancels it before the request goes
        // out; the client's connection lives on that runtime too. So the revoke is also sent
        // from the process's revoke thread, on a connection of its own (a second revoke of a lease
        // is harmless; this one reaches an etcd without authentication).
        revoke_in_background(std::mem::take(&mut self.endpoints), id);
    }
}

/// A revoke for the revoke thread: where etcd is, and the lease.
type Revoke = (Vec<String>, i64);

/// Sends a dropped lease's revoke to the process's revoke thread, started at the first drop: one
/// thread with a current-thread runtime of its own, sending each revoke on a connection of its
/// own, all at once, each for at most [`DROPPED_REVOKE`]. One thread, however many leases are
/// dropped at once. If the thread cannot be started, the revoke with the caller's client is the
/// only one, and the lease otherwise ends with its TTL.
fn revoke_in_background(endpoints: Vec<String>, id: i64) {
    static REVOKES: OnceLock<Option<mpsc::UnboundedSender<Revoke>>> = OnceLock::new();
    let revokes = REVOKES.get_or_init(|| {
        let (send, mut receive) = mpsc::unbounded_channel::<Revoke>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        std::thread::Builder::new()
            .name("hivekit-etcd-revoke".into())
            .spawn(move || {
                runtime.block_on(async move {
                    while let Some((endpoints, id)) = receive.recv().await {
                        tokio::spawn(tokio::time::timeout(DROPPED_REVOKE, async move {
                            let mut client = Client::connect(&endpoints, None).await?;
                            // A member that is down refuses the connection: the revoke was not
                            // sent, send it again (the balancer picks among the endpoints).
                            let mut backoff = Duration::from_millis(10);
                            loop {
                                match client.lease_revoke(id).await {
                                    Err(error) if unreachable_now(&error) => {
                                        tokio::time::sleep(backoff).await;
                                        backoff = (backoff * 2).min(Duration::from_millis(200));
                                    }
                                    outcome => return outcome,
                                }
                            }
                        }));
                    }
                });
            })
            .ok()?;
        Some(send)
    });
    if let Some(revokes) = revokes {
        let _ = revokes.send((endpoints, id));
    }
}

/// Renews the lease every third of its TTL; marks it lost once a TTL has passed since the last
/// renewal etcd acknowledged was sent (etcd counts the TTL from when it received that renewal, so
/// the lease is never thought alive after etcd let it expire), or when etcd says it expired.
async fn renew(client: Client, id: i64, ttl: Duration, alive: watch::Sender<Option<Instant>>) {
    let interval = ttl / 3;
    // After a failed renewal the next try comes soon, not a whole interval later: a renewal sent
    // to a member that just stopped fails, and two or three such tries an interval apart used up
    // the TTL while the rest of the cluster was there to answer (a candidate lost its place in an
    // election through a failover).
    const FIRST_RETRY: Duration = Duration::from_millis(50);
    let mut retry = FIRST_RETRY;
    let mut last_renewal_sent = alive
        .borrow()
        .map_or_else(Instant::now, |until| until - ttl);
    let mut stream = None;
    loop {
        let deadline = last_renewal_sent + ttl;
        let sent = Instant::now();
        let renewed = tokio::time::timeout_at(deadline.min(sent + interval), async {
            if stream.is_none() {
                let mut lease_client = client.lease_client();
                stream = Some(lease_client.keep_alive(id).await?);
                // Opening the stream sends a renewal and reads its answer.
                return Ok::<_, etcd_client::Error>(Some(1));
            }
            let Some((keeper, responses)) = stream.as_mut() else {
                return Ok(None);
            };
            keeper.keep_alive().await?;
            Ok(responses.message().await?.map(|response| response.ttl()))
        })
        .await;
        let mut wait = interval;
        match renewed {
            Ok(Ok(Some(remaining))) if remaining > 0 => {
                last_renewal_sent = sent;
                alive.send_replace(Some(sent + ttl));
                retry = FIRST_RETRY;
            }
            Ok(Ok(Some(_))) => {
                tracing::warn!(lease = id, "lease expired");
                alive.send_replace(None);
                return;
            }
            Ok(Err(etcd_client::Error::LeaseKeepAliveError(message)))
                if message.contains("not found") =>
            {
                tracing::warn!(lease = id, "lease expired");
                alive.send_replace(None);
                return;
            }
            outcome => {
                tracing::debug!(
                    lease = id,
                    ?outcome,
                    ?retry,
                    "lease renewal failed; retrying"
                );
                stream = None;
                wait = retry;
                retry = (retry * 2).min(interval);
            }
        }
        if Instant::now() >= last_renewal_sent + ttl {
            tracing::warn!(lease = id, ?ttl, "lease not renewed within its ttl");
            alive.send_replace(None);
            return;
        }
        let next = (Instant::now() + wait).min(last_renewal_sent + ttl);
        tokio::time::sleep_until(next).await;
    }
}
