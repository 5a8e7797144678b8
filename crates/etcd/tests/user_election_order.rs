//! Election recipes in the spirit of etcd's own concurrency tests: candidates are elected in the
//! order they campaigned, an observer reading the leader sees each in turn, a resigned leader that
//! campaigns again queues behind the others, and elections of other names or prefixes are
//! independent.

mod support;

use std::time::Duration;

use hivekit_etcd::{Election, EtcdConfig, Leadership};
use support::{config, etcd};

const TTL: Duration = Duration::from_secs(10);

/// Waits until `count` candidates stand in election `name` under `config`'s prefix.
async fn wait_for_candidates(config: &EtcdConfig, name: &str, count: usize) {
    let client = config.connect().await.unwrap();
    let election_prefix = format!("{}election/{name}/", config.prefix());
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let candidates = client
                .clone()
                .get(
                    election_prefix.clone(),
                    Some(etcd_client::GetOptions::new().with_prefix()),
                )
                .await
                .unwrap();
            if candidates.kvs().len() == count {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{count} candidates never stood"));
}

type Campaign = tokio::task::JoinHandle<Result<Leadership, hivekit_etcd::EtcdError>>;

/// Starts a campaign as `candidate` on a client of its own, and waits until it stands.
async fn stand(config: &EtcdConfig, candidate: &str, standing: usize) -> Campaign {
    let election = Election::new(config.connect().await.unwrap(), config, "rounds").unwrap();
    let candidate = candidate.to_string();
    let campaign = tokio::spawn(async move { election.campaign(&candidate, TTL).await });
    wait_for_candidates(config, "rounds", standing).await;
    campaign
}

async fn elected(campaign: Campaign) -> Leadership {
    tokio::time::timeout(Duration::from_secs(3), campaign)
        .await
        .expect("elected once the one before resigned")
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_are_elected_in_campaign_order_and_an_observer_sees_each_leader() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "campaign-order");
    let observer = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    assert_eq!(observer.leader().await.unwrap(), None);
    let first = elected(stand(&config, "alpha", 1).await).await;
    let mut waiting = Vec::new();
    for (standing, name) in ["beta", "gamma", "delta"].into_iter().enumerate() {
        waiting.push((name, stand(&config, name, standing + 2).await));
    }
    let mut seen = vec![observer.leader().await.unwrap().unwrap()];
    let mut leader = first;
    for (name, mut campaign) in waiting {
        // Only the one after the leader is elected when it resigns, none of the later ones.
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut campaign)
                .await
                .is_err(),
            "{name} was elected while {} led",
            leader.candidate()
        );
        assert!(leader.is_leader());
        leader.resign().await.unwrap();
        leader = elected(campaign).await;
        assert_eq!(leader.candidate(), name);
        assert!(leader.is_leader());
        seen.push(observer.leader().await.unwrap().unwrap());
    }
    assert_eq!(seen, ["alpha", "beta", "gamma", "delta"]);
    leader.resign().await.unwrap();
    assert_eq!(observer.leader().await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_resigns_and_campaigns_again_queues_behind_the_waiting_candidate() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "recampaign");
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    let alpha = elected(stand(&config, "alpha", 1).await).await;
    let beta = stand(&config, "beta", 2).await;
    alpha.resign().await.unwrap();
    let beta = elected(beta).await;
    let mut alpha_again = stand(&config, "alpha", 2).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut alpha_again)
            .await
            .is_err(),
        "alpha jumped the queue"
    );
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("beta"));
    // Dropping (not resigning) hands over too.
    drop(beta);
    let alpha_again = elected(alpha_again).await;
    assert_eq!(alpha_again.candidate(), "alpha");
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("alpha"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elections_of_other_names_or_prefixes_each_have_their_own_leader() {
    let server = etcd();
    let here = config(vec![server.endpoint()], "independent-a");
    let there = config(vec![server.endpoint()], "independent-b");
    let client = here.connect().await.unwrap();
    let rounds_here = Election::new(client.clone(), &here, "rounds").unwrap();
    let audits_here = Election::new(client.clone(), &here, "audits").unwrap();
    let rounds_there = Election::new(client.clone(), &there, "rounds").unwrap();
    // A name that extends another must not share its candidates.
    let rounds2_here = Election::new(client.clone(), &here, "rounds2").unwrap();
    let leaders = tokio::time::timeout(Duration::from_secs(3), async {
        futures::future::try_join4(
            rounds_here.campaign("a", TTL),
            audits_here.campaign("b", TTL),
            rounds_there.campaign("c", TTL),
            rounds2_here.campaign("d", TTL),
        )
        .await
    })
    .await
    .expect("each election elected its only candidate at once")
    .unwrap();
    for (election, name) in [
        (&rounds_here, "a"),
        (&audits_here, "b"),
        (&rounds_there, "c"),
        (&rounds2_here, "d"),
    ] {
        assert_eq!(election.leader().await.unwrap().as_deref(), Some(name));
    }
    assert!(leaders.0.is_leader() && leaders.3.is_leader());
    // Ending one leaves the others.
    leaders.0.resign().await.unwrap();
    assert_eq!(rounds_here.leader().await.unwrap(), None);
    assert_eq!(rounds2_here.leader().await.unwrap().as_deref(), Some("d"));
    assert_eq!(audits_here.leader().await.unwrap().as_deref(), Some("b"));
    assert!(leaders.1.is_leader() && leaders.2.is_leader() && leaders.3.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_or_odd_candidate_value_is_reported_as_it_was_given() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "odd-candidates");
    let election = Election::new(config.connect().await.unwrap(), &config, "rounds").unwrap();
    for value in ["", "héllo wörld\n", "no leader", "a/b/c"] {
        let leadership =
            tokio::time::timeout(Duration::from_secs(3), election.campaign(value, TTL))
                .await
                .expect("elected")
                .unwrap();
        assert_eq!(leadership.candidate(), value);
        assert_eq!(
            election.leader().await.unwrap().as_deref(),
            Some(value),
            "candidate {value:?}"
        );
        leadership.resign().await.unwrap();
        assert_eq!(election.leader().await.unwrap(), None);
    }
}
