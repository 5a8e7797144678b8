//! Process and election names the docs accept (anything non-empty without `/`): NUL, spaces, glob and path-like characters, a long name; each is its own member or election, listed and reported exactly as given.

mod support;

use std::time::Duration;

use hivekit_etcd::{Election, EtcdError, Membership};
use hivekit_hive::AgentId;
use support::{config, etcd};

const TTL: Duration = Duration::from_secs(2);

fn odd_names() -> Vec<String> {
    vec![
        "p".to_string(),
        "p\0".to_string(),
        "p\0q".to_string(),
        "p q".to_string(),
        " p".to_string(),
        "*".to_string(),
        "..".to_string(),
        ".".to_string(),
        "p\\q".to_string(),
        "p\nq".to_string(),
        "\u{7f}\u{1}".to_string(),
        "x".repeat(4096),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_process_names_are_each_their_own_member_listed_exactly() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "odd-process-names");
    let client = config.connect().await.unwrap();
    let mut memberships = Vec::new();
    for (index, name) in odd_names().into_iter().enumerate() {
        let membership = Membership::join(client.clone(), &config, &name, TTL)
            .await
            .unwrap_or_else(|error| panic!("{name:?}: {error}"));
        assert_eq!(membership.process(), name);
        membership
            .register(AgentId(index as u64), &name)
            .await
            .unwrap_or_else(|error| panic!("{name:?}: {error}"));
        memberships.push(membership);
    }
    let mut listed: Vec<(String, u64, String)> = Membership::list(&client, &config)
        .await
        .unwrap()
        .into_iter()
        .map(|member| (member.process, member.agent, member.info))
        .collect();
    listed.sort();
    let mut expected: Vec<(String, u64, String)> = odd_names()
        .into_iter()
        .enumerate()
        .map(|(index, name)| (name.clone(), index as u64, name))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);

    // Leaving one odd name removes exactly its agents.
    let gone = memberships.remove(1);
    assert_eq!(gone.process(), "p\0");
    gone.leave().await.unwrap();
    let listed: Vec<String> = Membership::list(&client, &config)
        .await
        .unwrap()
        .into_iter()
        .map(|member| member.process)
        .collect();
    assert_eq!(listed.len(), expected.len() - 1, "{listed:?}");
    assert!(!listed.iter().any(|process| process == "p\0"));
    assert!(listed.iter().any(|process| process == "p"));
    assert!(listed.iter().any(|process| process == "p\0q"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_election_names_are_each_their_own_election() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "odd-election-names");
    let client = config.connect().await.unwrap();
    let mut leaders = Vec::new();
    for name in odd_names() {
        let election = Election::new(client.clone(), &config, &name)
            .unwrap_or_else(|error| panic!("{name:?}: {error}"));
        // Each election is independent: its first candidate is elected at once even though every
        // other odd name has a leader already.
        let leader = tokio::time::timeout(Duration::from_secs(5), election.campaign(&name, TTL))
            .await
            .unwrap_or_else(|_| {
                panic!("{name:?}: not elected; another election's leader blocks it")
            })
            .unwrap_or_else(|error| panic!("{name:?}: {error}"));
        assert!(leader.is_leader());
        leaders.push((election, leader));
    }
    for (election, leader) in &leaders {
        assert_eq!(
            election.leader().await.unwrap().as_deref(),
            Some(leader.candidate())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_name_error_names_the_name_and_why() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "refused-names");
    let client = config.connect().await.unwrap();
    for name in ["", "a/b", "/", "a/"] {
        let error = Membership::join(client.clone(), &config, name, TTL)
            .await
            .unwrap_err();
        match &error {
            EtcdError::InvalidName { name: given, .. } => assert_eq!(given, name),
            other => panic!("{name:?}: {other:?}"),
        }
        assert!(error.to_string().contains(&format!("`{name}`")), "{error}");
        let error = Election::new(client.clone(), &config, name).unwrap_err();
        match &error {
            EtcdError::InvalidName { name: given, .. } => assert_eq!(given, name),
            other => panic!("{name:?}: {other:?}"),
        }
    }
}
