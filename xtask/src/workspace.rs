//! The workspace as `cargo metadata --format-version 1 --no-deps` describes it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::error::XtaskError;

/// The parts of the workspace xtask needs.
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    /// The workspace root (where the root `Cargo.toml` is).
    pub(crate) root: PathBuf,
    /// The target directory (respects `CARGO_TARGET_DIR`).
    pub(crate) target_dir: PathBuf,
    /// Workspace packages, in metadata order.
    pub(crate) packages: Vec<Package>,
}

/// One workspace package.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Package {
    /// The package name (`hivekit-runtime`).
    pub(crate) name: String,
    /// Names of its `[[bench]]` targets.
    pub(crate) benches: Vec<String>,
    /// Names of its integration test targets.
    pub(crate) tests: Vec<String>,
}

/// One bench target of one package: what `cargo bench -p CRATE --bench NAME` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Suite {
    /// The package name.
    pub(crate) krate: String,
    /// The bench target name.
    pub(crate) bench: String,
}

#[derive(Deserialize)]
struct RawMetadata {
    workspace_root: PathBuf,
    target_directory: PathBuf,
    packages: Vec<RawPackage>,
}

#[derive(Deserialize)]
struct RawPackage {
    name: String,
    targets: Vec<RawTarget>,
}

#[derive(Deserialize)]
struct RawTarget {
    name: String,
    kind: Vec<String>,
}

/// The cargo binary to run: the one that started us (`$CARGO`), else `cargo` from `PATH`.
pub(crate) fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

impl Workspace {
    /// Runs `cargo metadata` for the workspace of `manifest_path` (or of the current directory).
    pub(crate) fn load(manifest_path: Option<&Path>) -> Result<Self, XtaskError> {
        let mut command = Command::new(cargo());
        command.args(["metadata", "--format-version", "1", "--no-deps"]);
        if let Some(path) = manifest_path {
            command.arg("--manifest-path").arg(path);
        }
        let output = command
            .output()
            .map_err(|error| XtaskError::CommandFailed {
                command: "cargo metadata".into(),
                outcome: format!("could not start: {error}"),
            })?;
        if !output.status.success() {
            return Err(XtaskError::CommandFailed {
                command: "cargo metadata".into(),
                outcome: format!(
                    "{}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            });
        }
        Self::parse(&output.stdout)
    }

    /// Parses `cargo metadata` JSON output.
    pub(crate) fn parse(json: &[u8]) -> Result<Self, XtaskError> {
        let raw: RawMetadata = serde_json::from_slice(json)
            .map_err(|error| XtaskError::Metadata(error.to_string()))?;
        let packages = raw
            .packages
            .into_iter()
            .map(|package| {
                let of_kind = |kind: &str| {
                    package
                        .targets
                        .iter()
                        .filter(|target| target.kind.iter().any(|k| k == kind))
                        .map(|target| target.name.clone())
                        .collect::<Vec<_>>()
                };
                Package {
                    benches: of_kind("bench"),
                    tests: of_kind("test"),
                    name: package.name,
                }
            })
            .collect();
        Ok(Self {
            root: raw.workspace_root,
            target_dir: raw.target_directory,
            packages,
        })
    }

    /// Packages that have at least one bench target.
    fn bench_packages(&self) -> impl Iterator<Item = &Package> {
        self.packages.iter().filter(|p| !p.benches.is_empty())
    }

    fn known_bench_crates(&self) -> String {
        let names: Vec<&str> = self.bench_packages().map(|p| p.name.as_str()).collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    }

    /// The suites of the selected crates (all crates with benches when `selected` is empty), in
    /// workspace order. A name may be a package name or its short form without `hivekit-`.
    pub(crate) fn suites(&self, selected: &[String]) -> Result<Vec<Suite>, XtaskError> {
        let mut chosen: Vec<&Package> = Vec::new();
        for name in selected {
            let long = format!("hivekit-{name}");
            let Some(package) = self
                .packages
                .iter()
                .find(|p| p.name == *name)
                .or_else(|| self.packages.iter().find(|p| p.name == long))
            else {
                return Err(XtaskError::UnknownCrate {
                    name: name.clone(),
                    known: self.known_bench_crates(),
                });
            };
            if package.benches.is_empty() {
                return Err(XtaskError::NoBenches {
                    name: name.clone(),
                    known: self.known_bench_crates(),
                });
            }
            chosen.push(package);
        }
        let suites = self
            .bench_packages()
            .filter(|p| chosen.is_empty() || chosen.iter().any(|c| c.name == p.name))
            .flat_map(|package| {
                package.benches.iter().map(|bench| Suite {
                    krate: package.name.clone(),
                    bench: bench.clone(),
                })
            })
            .collect();
        Ok(suites)
    }

    /// Packages with an integration test target named `loom`.
    pub(crate) fn loom_packages(&self) -> Vec<String> {
        self.packages
            .iter()
            .filter(|p| p.tests.iter().any(|t| t == "loom"))
            .map(|p| p.name.clone())
            .collect()
    }

    /// `<target>/criterion`: where criterion writes its results for xtask.
    pub(crate) fn criterion_home(&self) -> PathBuf {
        self.target_dir.join("criterion")
    }

    /// `<target>/hivekit-extras`: where benches-common appends `extras.jsonl`.
    pub(crate) fn extras_dir(&self) -> PathBuf {
        self.target_dir.join("hivekit-extras")
    }

    /// `<target>/hivekit-baselines`: xtask's own baselines.
    pub(crate) fn baselines_dir(&self) -> PathBuf {
        self.target_dir.join("hivekit-baselines")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A trimmed `cargo metadata --no-deps` output in the real shape.
    pub(crate) const METADATA: &str = r#"{
      "packages": [
        {"name": "hivekit-runtime", "version": "0.1.0", "id": "path+file:///w/crates/runtime#hivekit-runtime@0.1.0",
         "targets": [
           {"kind": ["lib"], "crate_types": ["lib"], "name": "hivekit_runtime", "src_path": "/w/crates/runtime/src/lib.rs"},
           {"kind": ["bench"], "crate_types": ["bin"], "name": "runtime", "src_path": "/w/crates/runtime/benches/runtime.rs"}
         ]},
        {"name": "hivekit-lockfree", "version": "0.1.0", "id": "x",
         "targets": [
           {"kind": ["lib"], "crate_types": ["lib"], "name": "hivekit_lockfree", "src_path": "a"},
           {"kind": ["test"], "crate_types": ["bin"], "name": "loom", "src_path": "b"},
           {"kind": ["test"], "crate_types": ["bin"], "name": "scheduler_stress", "src_path": "c"},
           {"kind": ["bench"], "crate_types": ["bin"], "name": "snapshot", "src_path": "d"},
           {"kind": ["bench"], "crate_types": ["bin"], "name": "scheduler", "src_path": "e"}
         ]},
        {"name": "xtask", "version": "0.1.0", "id": "y",
         "targets": [{"kind": ["bin"], "crate_types": ["bin"], "name": "xtask", "src_path": "f"}]}
      ],
      "workspace_members": [],
      "target_directory": "/w/target",
      "version": 1,
      "workspace_root": "/w"
    }"#;

    fn workspace() -> Workspace {
        Workspace::parse(METADATA.as_bytes()).expect("fixture parses")
    }

    #[test]
    fn parses_roots_and_targets() {
        let ws = workspace();
        assert_eq!(ws.root, PathBuf::from("/w"));
        assert_eq!(ws.target_dir, PathBuf::from("/w/target"));
        assert_eq!(ws.criterion_home(), PathBuf::from("/w/target/criterion"));
        assert_eq!(ws.packages[1].benches, ["snapshot", "scheduler"]);
        assert_eq!(ws.loom_packages(), ["hivekit-lockfree"]);
    }

    #[test]
    fn all_suites_when_none_selected() {
        let suites = workspace().suites(&[]).expect("suites");
        let names: Vec<(&str, &str)> = suites
            .iter()
            .map(|s| (s.krate.as_str(), s.bench.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("hivekit-runtime", "runtime"),
                ("hivekit-lockfree", "snapshot"),
                ("hivekit-lockfree", "scheduler")
            ]
        );
    }

    #[test]
    fn short_names_select_crates() {
        let suites = workspace().suites(&["runtime".into()]).expect("suites");
        assert_eq!(suites.len(), 1);
        assert_eq!(suites[0].krate, "hivekit-runtime");
        let suites = workspace()
            .suites(&["hivekit-lockfree".into()])
            .expect("suites");
        assert_eq!(suites.len(), 2);
    }

    #[test]
    fn unknown_and_benchless_crates_are_errors() {
        let error = workspace().suites(&["nope".into()]).unwrap_err();
        assert!(matches!(error, XtaskError::UnknownCrate { .. }));
        assert_eq!(error.exit_code(), 2);
        assert!(error
            .to_string()
            .contains("hivekit-runtime, hivekit-lockfree"));
        let error = workspace().suites(&["xtask".into()]).unwrap_err();
        assert!(matches!(error, XtaskError::NoBenches { .. }));
    }

    #[test]
    fn malformed_metadata_is_an_error() {
        assert!(matches!(
            Workspace::parse(b"{\"packages\": 3}"),
            Err(XtaskError::Metadata(_))
        ));
    }
}
