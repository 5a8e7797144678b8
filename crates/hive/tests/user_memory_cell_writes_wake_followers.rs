//! A hive's in-process memory exposes its cell (`HiveMemory::local().cell()`), and users write to
//! it directly (an operator resetting the state, a loader seeding it). A follower waiting with
//! `HiveMemory::changed` / `Memory::changed` must see those versions too: `changed` promises to
//! wait "until a version newer than `after` is visible here".

use std::time::Duration;

use hivekit_hive::{Hive, LocalMemory, Memory, State};

#[derive(Clone, Default, Debug)]
struct Count(u64);

impl State for Count {
    type Key = ();
    type Change = u64;
    fn apply(&mut self, change: &u64) {
        self.0 += change;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_wakes_on_a_store_through_the_local_cell() {
    let hive = std::sync::Arc::new(Hive::builder(Count(0)).build().unwrap());
    let follower = {
        let hive = std::sync::Arc::clone(&hive);
        tokio::spawn(async move { hive.memory().changed(0).await.map(|s| (s.version(), s.0)) })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let version = hive
        .memory()
        .local()
        .expect("local")
        .cell()
        .store(Count(42));
    assert_eq!(version, 1);
    assert_eq!(hive.memory().version(), 1);
    let seen = tokio::time::timeout(Duration::from_secs(3), follower)
        .await
        .expect("changed(0) never woke although version 1 is visible")
        .unwrap()
        .unwrap();
    assert_eq!(seen, (1, 42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_memory_changed_wakes_on_an_update_of_its_cell() {
    let memory = std::sync::Arc::new(LocalMemory::new(Count(0)));
    let follower = {
        let memory = std::sync::Arc::clone(&memory);
        tokio::spawn(async move { memory.changed(0).await.map(|s| s.version()) })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    memory.cell().update(|count| Count(count.0 + 1));
    let seen = tokio::time::timeout(Duration::from_secs(3), follower)
        .await
        .expect("Memory::changed(0) never woke although version 1 is visible")
        .unwrap()
        .unwrap();
    assert_eq!(seen, 1);
}
