//! README.md's etcd snippet ("A hive on etcd"), run for real against an etcd started here, and the
//! claims its text makes: hives in many processes share one gapless history; one builder call
//! points a hive at etcd; `Membership` and `Election` track who is alive and who leads; the history
//! keeps the newest `history(depth)` versions (100 by default).
//!
//! The snippet itself is a doctest that is compiled but not run (it needs an etcd server); this
//! runs it, against an etcd started by `hivekit_etcd::testing`. Needs the facade's `etcd` feature
//! (on in `cargo test --workspace`: the examples package turns it on) and the `etcd` binary.
#![cfg(feature = "etcd")]

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use hivekit::etcd::{Election, EtcdConfig, EtcdMemory, Membership};
use hivekit::hive::{
    Agent, AgentContext, AgentError, AgentId, Hive, Proposal, ProposalId, Snapshot,
};
use hivekit::runtime::execute;
use hivekit_etcd::testing::EtcdServer;

#[derive(Clone, Default, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Config(u64);

impl hivekit::hive::State for Config {
    type Key = ();
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

/// Proposes adding one, under its own proposal id per round.
struct Reviewer;

impl Agent<Config> for Reviewer {
    async fn propose(
        &self,
        ctx: &AgentContext,
        _view: &Snapshot<Config>,
    ) -> Result<Option<Proposal<(), u64>>, AgentError> {
        Ok(Some(Proposal::new(ProposalId(ctx.round()), 1).writes([()])))
    }
}

/// Runs `future` on the process-wide runtime, failing the test if it takes over 20 s.
fn bounded<T>(future: impl Future<Output = T>) -> T {
    execute(async {
        let mut future = pin!(future);
        let mut limit = pin!(hivekit::runtime::sleep(Duration::from_secs(20)));
        poll_fn(|cx| match future.as_mut().poll(cx) {
            Poll::Ready(value) => Poll::Ready(value),
            Poll::Pending if limit.as_mut().poll(cx).is_ready() => panic!("not done within 20 s"),
            Poll::Pending => Poll::Pending,
        })
        .await
    })
}

#[test]
fn the_readme_etcd_snippet_runs_and_two_hives_share_one_gapless_history() {
    let etcd = EtcdServer::start().expect("etcd starts (apt-get install -y etcd-server)");
    let prefix = format!("/reviews-{}", std::process::id());

    // The snippet, with this etcd's endpoint.
    let (first, decision) = bounded(async {
        let config = EtcdConfig::new([etcd.endpoint()], &prefix).history(1_000);
        let memory = EtcdMemory::<Config>::open(config, Config::default()).await?;
        let hive = Hive::builder_with_memory(memory).build()?;
        hive.spawn(Reviewer);
        let decision = hive.decide().await?; // committed in one etcd transaction
        Ok::<_, Box<dyn std::error::Error>>((hive, decision))
    })
    .unwrap();
    assert_eq!(decision.version, 1);
    assert_eq!(first.memory().load().0, 1);

    // A second hive on the same prefix (another process, as far as etcd can tell).
    let second = bounded(async {
        let config = EtcdConfig::new([etcd.endpoint()], &prefix).history(1_000);
        let memory = EtcdMemory::<Config>::open(config, Config(999)).await?;
        let hive = Hive::builder_with_memory(memory).build()?;
        hive.spawn(Reviewer);
        Ok::<_, Box<dyn std::error::Error>>(hive)
    })
    .unwrap();
    assert_eq!(
        second.memory().load().0,
        1,
        "the stored state, not the second initial"
    );
    let mut versions = Vec::new();
    for round in 0..6 {
        let hive = if round % 2 == 0 { &second } else { &first };
        let decision = bounded(hive.decide()).unwrap();
        versions.push(decision.version);
    }
    assert_eq!(
        versions,
        [2, 3, 4, 5, 6, 7],
        "one gapless sequence of versions"
    );
    let history = bounded(async {
        let config = EtcdConfig::new([etcd.endpoint()], &prefix).history(1_000);
        let reader = EtcdMemory::<Config>::open(config, Config::default()).await?;
        reader.history(0, 100).await
    })
    .unwrap();
    let recorded: Vec<u64> = history.iter().map(|entry| entry.version).collect();
    assert_eq!(recorded, (1..=7).collect::<Vec<_>>());
}

#[test]
fn the_history_keeps_the_newest_depth_versions_and_a_hundred_by_default() {
    assert_eq!(
        EtcdConfig::new(["http://127.0.0.1:2379"], "/reviews").history_depth(),
        100
    );
    let etcd = EtcdServer::start().expect("etcd starts (apt-get install -y etcd-server)");
    let prefix = format!("/shallow-reviews-{}", std::process::id());
    let history = bounded(async {
        let config = EtcdConfig::new([etcd.endpoint()], &prefix).history(3);
        let memory = EtcdMemory::<Config>::open(config.clone(), Config::default()).await?;
        let hive = Hive::builder_with_memory(memory).build()?;
        hive.spawn(Reviewer);
        for _ in 0..5 {
            hive.decide().await?;
        }
        let reader = EtcdMemory::<Config>::open(config, Config::default()).await?;
        assert_eq!(hivekit::hive::Memory::snapshot(&reader).0, 5);
        Ok::<_, Box<dyn std::error::Error>>(reader.history(0, 100).await?)
    })
    .unwrap();
    let kept: Vec<u64> = history.iter().map(|entry| entry.version).collect();
    assert_eq!(kept, [3, 4, 5], "the newest three");
}

#[test]
fn membership_and_election_through_the_facade_track_who_is_alive_and_who_leads() {
    let etcd = EtcdServer::start().expect("etcd starts (apt-get install -y etcd-server)");
    let prefix = format!("/crew-{}", std::process::id());
    bounded(async {
        let config = EtcdConfig::new([etcd.endpoint()], &prefix);
        let client = config.connect().await?;
        let membership = Membership::join(
            client.clone(),
            &config,
            "reviewer-1",
            Duration::from_secs(5),
        )
        .await?;
        membership.register(AgentId(7), "lint").await?;
        let listed = Membership::list(&client, &config).await?;
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (
                listed[0].process.as_str(),
                listed[0].agent,
                listed[0].info.as_str()
            ),
            ("reviewer-1", 7, "lint")
        );
        let election = Election::new(client.clone(), &config, "scheduler")?;
        let leadership = election
            .campaign("reviewer-1", Duration::from_secs(5))
            .await?;
        assert!(leadership.is_leader());
        assert_eq!(election.leader().await?.as_deref(), Some("reviewer-1"));
        leadership.resign().await?;
        membership.leave().await?;
        assert!(Membership::list(&client, &config).await?.is_empty());
        assert_eq!(election.leader().await?, None);
        Ok::<_, Box<dyn std::error::Error>>(())
    })
    .unwrap();
}
