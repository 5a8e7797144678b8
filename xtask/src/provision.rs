//! The programs outside cargo that the workspace needs: `protoc` (etcd-client's build script
//! compiles etcd's protobuf definitions) and `etcd` (the hivekit-etcd tests and benches run
//! against a real server). `cargo xtask test` and `cargo xtask ci` install them when missing and
//! they can (root on Debian); otherwise they stop with the command that would.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::XtaskError;

/// The one command that installs both, as printed when xtask cannot run it itself.
pub(crate) const INSTALL_COMMAND: &str = "apt-get install -y etcd-server protobuf-compiler";

/// Debian packages to install, in [`INSTALL_COMMAND`]'s order.
const PACKAGES: [&str; 2] = ["etcd-server", "protobuf-compiler"];

/// Where each tool was found, if it was.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tools {
    /// The `etcd` server binary.
    pub(crate) etcd: Option<PathBuf>,
    /// The protobuf compiler (`$PROTOC`, else `protoc` on `PATH`, as prost-build looks for it).
    pub(crate) protoc: Option<PathBuf>,
}

impl Tools {
    /// Looks the tools up in `PATH` (and `$PROTOC`).
    pub(crate) fn find() -> Self {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let protoc_env = std::env::var_os("PROTOC").map(PathBuf::from);
        Self::find_in(&path, protoc_env)
    }

    fn find_in(path: &OsStr, protoc_env: Option<PathBuf>) -> Self {
        let search = |name: &str| {
            std::env::split_paths(path)
                .map(|dir| dir.join(name))
                .find(|candidate| candidate.is_file())
        };
        Self {
            etcd: search("etcd"),
            protoc: protoc_env
                .filter(|explicit| explicit.is_file())
                .or_else(|| search("protoc")),
        }
    }

    /// The names of the missing tools (`etcd`, `protoc`).
    pub(crate) fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.etcd.is_none() {
            missing.push("etcd");
        }
        if self.protoc.is_none() {
            missing.push("protoc");
        }
        missing
    }
}

/// Whether this process runs as root (`Uid:` in `/proc/self/status`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            == Some("0")
    })
}

fn is_debian() -> bool {
    Path::new("/etc/debian_version").is_file()
}

/// Whether apt has package lists to install from (a fresh container has none until `apt-get update`).
fn apt_has_lists() -> bool {
    std::fs::read_dir("/var/lib/apt/lists").is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().ends_with("_Packages"))
    })
}

fn apt_get(args: &[&str]) -> Result<bool, XtaskError> {
    println!("provision: apt-get {}", args.join(" "));
    Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map(|status| status.success())
        .map_err(|error| XtaskError::CommandFailed {
            command: format!("apt-get {}", args.join(" ")),
            outcome: format!("could not start: {error}"),
        })
}

/// Makes sure `etcd` and `protoc` are there: installs them with apt when missing and this is root
/// on Debian, otherwise fails naming them and [`INSTALL_COMMAND`].
pub(crate) fn provision() -> Result<Tools, XtaskError> {
    let tools = Tools::find();
    let missing = tools.missing();
    if missing.is_empty() {
        return Ok(tools);
    }
    let unavailable = |why: &str| XtaskError::Provision {
        missing: missing.join(" and "),
        why: why.to_owned(),
    };
    if !is_debian() {
        return Err(unavailable("this is not Debian"));
    }
    if !is_root() {
        return Err(unavailable("this process is not root"));
    }
    let mut install = vec!["install", "-y"];
    install.extend(PACKAGES);
    // Lists may be missing (fresh container) or stale (a package moved): update and retry once.
    let installed =
        (apt_has_lists() && apt_get(&install)?) || (apt_get(&["update"])? && apt_get(&install)?);
    let tools = Tools::find();
    if installed && tools.missing().is_empty() {
        Ok(tools)
    } else {
        Err(unavailable("apt-get could not install them"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_found_on_the_path_and_protoc_through_its_variable() {
        let dir = std::env::temp_dir().join(format!("xtask-tools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("etcd"), "").expect("write etcd");
        let explicit = dir.join("my-protoc");
        std::fs::write(&explicit, "").expect("write protoc");
        let path = std::env::join_paths([Path::new("/nonexistent"), &dir]).expect("joins");
        let only_etcd = Tools::find_in(&path, None);
        assert_eq!(only_etcd.etcd, Some(dir.join("etcd")));
        assert_eq!(only_etcd.missing(), ["protoc"]);
        let both = Tools::find_in(&path, Some(explicit.clone()));
        assert_eq!(both.protoc, Some(explicit));
        assert!(both.missing().is_empty());
        std::fs::remove_dir_all(&dir).expect("cleanup");
        let none = Tools::find_in(OsStr::new(""), None);
        assert_eq!(none.missing(), ["etcd", "protoc"]);
    }

    #[test]
    fn the_failure_names_the_tools_and_the_exact_command() {
        let error = XtaskError::Provision {
            missing: "etcd and protoc".into(),
            why: "this process is not root".into(),
        };
        assert_eq!(
            error.to_string(),
            "etcd and protoc not found and not installed (this process is not root); \
             install them with `apt-get install -y etcd-server protobuf-compiler`"
        );
        assert_eq!(error.exit_code(), 1);
    }
}
