//! A damaged store file (cut short, one flipped byte) gives typed errors, never a panic: redb
//! panics on some damage (an assertion on the file's length, decoding a corrupt page), and every
//! call into it is guarded. Before, `RedbStore::open` of a file cut short anywhere from 512 bytes
//! to its length minus one panicked, as did `runs`, `load_run` and `create_run` on flipped bytes.

use hivekit_swarm::checkpoint::{CheckpointStore, RedbStore};

#[test]
fn a_truncated_redb_file_is_a_typed_open_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        for run in 0..20 {
            store
                .create_run(&format!("r{run}"), run, &[7; 512])
                .unwrap();
            store
                .put_record(&format!("r{run}"), "s:a", &[b'x'; 2048])
                .unwrap();
        }
    }
    let whole = std::fs::read(&path).unwrap();
    for keep in [512, 4096, whole.len() / 2, whole.len() - 1] {
        let cut = dir.path().join(format!("cut-{keep}.redb"));
        std::fs::write(&cut, &whole[..keep]).unwrap();
        let opened = std::panic::catch_unwind(|| RedbStore::open(&cut).map(drop));
        assert!(
            opened.is_ok(),
            "RedbStore::open panicked on a file cut at {keep} of {} bytes",
            whole.len()
        );
    }
}

#[test]
fn a_store_file_with_one_flipped_byte_gives_typed_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        for run in 0..20 {
            store
                .create_run(&format!("r{run}"), run, &[7; 512])
                .unwrap();
            store
                .put_record(&format!("r{run}"), "s:a", &[b'x'; 2048])
                .unwrap();
        }
    }
    let whole = std::fs::read(&path).unwrap();
    let mut panics = Vec::new();
    for at in (0..whole.len().min(600 * 1024))
        .step_by(4096)
        .flat_map(|page| [page, page + 16])
    {
        if whole[at] == 0 && whole[at - at % 4096..][..4096].iter().all(|&b| b == 0) {
            continue; // an unused page
        }
        let mut bytes = whole.clone();
        bytes[at] ^= 0xff;
        let flipped = dir.path().join(format!("flip-{at}.redb"));
        std::fs::write(&flipped, &bytes).unwrap();
        let used = std::panic::catch_unwind(|| {
            if let Ok(store) = RedbStore::open(&flipped) {
                let _ = store.runs();
                for run in 0..20 {
                    let _ = store.load_run(&format!("r{run}"));
                }
                let _ = store.create_run("new", 99, b"h");
            }
        });
        if used.is_err() {
            panics.push(at);
        }
    }
    assert!(
        panics.is_empty(),
        "a flipped byte at these offsets panicked: {panics:?}"
    );
}
