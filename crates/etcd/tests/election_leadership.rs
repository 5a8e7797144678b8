//! A leadership says which candidate value it campaigned with and which etcd key holds it; an
//! operator deleting that key ends it. (`Leadership::key` was documented as the candidate value but
//! returned the key: found by qa2; `candidate` now gives the value.)

mod support;

use std::time::Duration;

use hivekit_etcd::Election;
use support::{config, etcd};

const TTL: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leadership_knows_its_candidate_value_and_its_key() {
    let server = etcd();
    let config = config(vec![server.endpoint()], "leader-key");
    let client = config.connect().await.unwrap();
    let election = Election::new(client.clone(), &config, "rounds").unwrap();
    let leadership = election.campaign("alpha", TTL).await.unwrap();
    assert_eq!(leadership.candidate(), "alpha");
    assert_eq!(election.leader().await.unwrap().as_deref(), Some("alpha"));
    let key = leadership.key();
    assert!(
        key.starts_with(&format!("{}election/rounds/", config.prefix())),
        "{key}"
    );
    let mut kv = client.kv_client();
    let held = kv.get(key.as_str(), None).await.unwrap();
    assert_eq!(held.kvs()[0].value(), b"alpha");
    kv.delete(key.as_str(), None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), leadership.lost())
        .await
        .expect("the leader noticed its key went");
    assert!(!leadership.is_leader());
}
