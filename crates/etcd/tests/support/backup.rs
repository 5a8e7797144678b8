//! An etcd data directory saved and restored as an operator's disaster recovery does: the server is
//! stopped, its directory copied (`cp -a`), and started again.

use std::path::{Path, PathBuf};

use hivekit_etcd::testing::EtcdServer;

/// A saved copy of a server's data directory (deleted when dropped).
pub struct Backup {
    _dir: tempfile::TempDir,
    data: PathBuf,
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Stops `server`, saves its data directory and starts it again. Blocking: call it inside
/// `tokio::task::block_in_place` from async code.
pub fn save(server: &mut EtcdServer) -> Backup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    server.kill();
    copy_dir(server.data_dir(), &data);
    server.restart().unwrap();
    Backup { _dir: dir, data }
}

/// Stops `server`, replaces its data directory with `backup` and starts it again. Blocking, as
/// [`save`].
pub fn restore(server: &mut EtcdServer, backup: &Backup) {
    server.kill();
    let data = server.data_dir().to_path_buf();
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&backup.data, &data);
    server.restart().unwrap();
}
