//! The workspace as `cargo metadata --no-deps` describes it (read with the `cargo_metadata` crate).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, TargetKind};

use crate::error::XtaskError;

/// The bench target name of the instruction-count suites (gungraun, `harness = false`). Every other
/// bench target is a criterion suite.
pub(crate) const INSTRUCTIONS_BENCH: &str = "instructions";

/// The dependency that needs `protoc` to build and an `etcd` binary to test against.
const ETCD_CLIENT: &str = "etcd-client";

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
    /// Names of its examples.
    pub(crate) examples: Vec<String>,
    /// Whether it depends on `etcd-client`: it then needs `protoc` to build and `etcd` to test.
    pub(crate) needs_etcd: bool,
    /// The directory of its `Cargo.toml`: where cargo would run its bench binaries.
    pub(crate) dir: PathBuf,
}

/// One bench target of one package: what `cargo bench -p CRATE --bench NAME` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Suite {
    /// The package name.
    pub(crate) krate: String,
    /// The bench target name.
    pub(crate) bench: String,
}

/// The cargo binary to run: the one that started us (`$CARGO`), else `cargo` from `PATH`.
pub(crate) fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

impl Workspace {
    /// Runs `cargo metadata` for the workspace of `manifest_path` (or of the current directory).
    pub(crate) fn load(manifest_path: Option<&Path>) -> Result<Self, XtaskError> {
        let mut command = MetadataCommand::new();
        command.cargo_path(cargo()).no_deps();
        if let Some(path) = manifest_path {
            command.manifest_path(path);
        }
        let metadata = command.exec().map_err(|error| match error {
            cargo_metadata::Error::CargoMetadata { stderr } => XtaskError::CommandFailed {
                command: "cargo metadata".into(),
                outcome: format!("failed: {}", stderr.trim()),
            },
            cargo_metadata::Error::Io(error) => XtaskError::CommandFailed {
                command: "cargo metadata".into(),
                outcome: format!("could not start: {error}"),
            },
            other => XtaskError::Metadata(other.to_string()),
        })?;
        Ok(Self::from_metadata(&metadata))
    }

    /// Parses `cargo metadata` JSON output.
    #[cfg(test)]
    pub(crate) fn parse(json: &[u8]) -> Result<Self, XtaskError> {
        let metadata: Metadata = serde_json::from_slice(json)
            .map_err(|error| XtaskError::Metadata(error.to_string()))?;
        Ok(Self::from_metadata(&metadata))
    }

    fn from_metadata(metadata: &Metadata) -> Self {
        let packages = metadata
            .workspace_packages()
            .into_iter()
            .map(|package| {
                let of_kind = |kind: TargetKind| {
                    package
                        .targets
                        .iter()
                        .filter(|target| target.is_kind(kind.clone()))
                        .map(|target| target.name.clone())
                        .collect::<Vec<_>>()
                };
                Package {
                    name: package.name.to_string(),
                    benches: of_kind(TargetKind::Bench),
                    tests: of_kind(TargetKind::Test),
                    examples: of_kind(TargetKind::Example),
                    needs_etcd: package.dependencies.iter().any(|dependency| {
                        dependency.name == ETCD_CLIENT && dependency.kind != DependencyKind::Build
                    }),
                    dir: package
                        .manifest_path
                        .parent()
                        .map_or_else(PathBuf::new, |dir| dir.to_path_buf().into_std_path_buf()),
                }
            })
            .collect();
        Self {
            root: metadata.workspace_root.clone().into_std_path_buf(),
            target_dir: metadata.target_directory.clone().into_std_path_buf(),
            packages,
        }
    }

    fn known_bench_crates(&self) -> String {
        self.crates_with(|bench| bench != INSTRUCTIONS_BENCH)
    }

    /// The packages with a bench target `wanted` accepts, comma separated, or "none".
    fn crates_with(&self, wanted: impl Fn(&str) -> bool) -> String {
        let names: Vec<&str> = self
            .packages
            .iter()
            .filter(|p| p.benches.iter().any(|bench| wanted(bench)))
            .map(|p| p.name.as_str())
            .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    }

    /// Checks that every target of the targets file `path` names a crate of this workspace: a
    /// misspelt crate would leave its target out of every run without a word.
    pub(crate) fn check_target_crates(
        &self,
        targets: &[crate::targets::Target],
        path: &std::path::Path,
    ) -> Result<(), XtaskError> {
        match targets
            .iter()
            .find(|target| !self.packages.iter().any(|p| p.name == target.krate))
        {
            Some(target) => Err(XtaskError::BadInputFile {
                path: path.to_owned(),
                message: format!(
                    "the target \"{}\" names crate `{}`, which is not in this workspace (crates with benches: {})",
                    target.target,
                    target.krate,
                    self.known_bench_crates()
                ),
            }),
            None => Ok(()),
        }
    }

    /// The package called `name`, or `hivekit-<name>`.
    fn find(&self, name: &str) -> Option<&Package> {
        let long = format!("hivekit-{name}");
        self.packages
            .iter()
            .find(|p| p.name == name)
            .or_else(|| self.packages.iter().find(|p| p.name == long))
    }

    /// The criterion suites of the selected crates (all crates with benches when `selected` is
    /// empty), in workspace order. A name may be a package name or its short form without `hivekit-`.
    pub(crate) fn suites(&self, selected: &[String]) -> Result<Vec<Suite>, XtaskError> {
        self.select(selected, "criterion bench target", |bench| {
            bench != INSTRUCTIONS_BENCH
        })
    }

    /// The instruction-count suites (bench targets named [`INSTRUCTIONS_BENCH`]) of the selected
    /// crates, all when `selected` is empty.
    pub(crate) fn instruction_suites(&self, selected: &[String]) -> Result<Vec<Suite>, XtaskError> {
        self.select(selected, "instruction-count suite", |bench| {
            bench == INSTRUCTIONS_BENCH
        })
    }

    fn select(
        &self,
        selected: &[String],
        what: &'static str,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Vec<Suite>, XtaskError> {
        let mut chosen: Vec<&Package> = Vec::new();
        for name in selected {
            let Some(package) = self.find(name) else {
                return Err(XtaskError::UnknownCrate {
                    name: name.clone(),
                    known: self.known_bench_crates(),
                });
            };
            // A crate whose only bench is one this command does not run (the instruction-count
            // suite, for a criterion run) has nothing to measure here.
            if !package.benches.iter().any(|bench| wanted(bench)) {
                return Err(XtaskError::NoBenches {
                    name: name.clone(),
                    what,
                    known: self.crates_with(&wanted),
                });
            }
            chosen.push(package);
        }
        let suites = self
            .packages
            .iter()
            .filter(|p| chosen.is_empty() || chosen.iter().any(|c| c.name == p.name))
            .flat_map(|package| {
                package
                    .benches
                    .iter()
                    .filter(|bench| wanted(bench))
                    .map(|bench| Suite {
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

    /// Packages that need etcd (and protoc): left out of `cargo xtask bench` when either is missing.
    pub(crate) fn etcd_packages(&self) -> Vec<String> {
        self.packages
            .iter()
            .filter(|p| p.needs_etcd)
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

    /// `docs/instructions.json`: the committed instruction-count baseline.
    pub(crate) fn instructions_baseline(&self) -> PathBuf {
        self.root.join("docs").join("instructions.json")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A trimmed `cargo metadata --no-deps` output in the real shape.
    pub(crate) const METADATA: &str = r#"{
      "packages": [
        {"name": "hivekit-runtime", "version": "0.1.0", "id": "rt", "manifest_path": "/w/crates/runtime/Cargo.toml",
         "features": {}, "dependencies": [],
         "targets": [
           {"kind": ["lib"], "crate_types": ["lib"], "name": "hivekit_runtime", "src_path": "/w/crates/runtime/src/lib.rs"},
           {"kind": ["bench"], "crate_types": ["bin"], "name": "runtime", "src_path": "/w/crates/runtime/benches/runtime.rs"},
           {"kind": ["bench"], "crate_types": ["bin"], "name": "instructions", "src_path": "/w/crates/runtime/benches/instructions.rs"}
         ]},
        {"name": "hivekit-lockfree", "version": "0.1.0", "id": "lf", "manifest_path": "/w/crates/lockfree/Cargo.toml",
         "features": {}, "dependencies": [],
         "targets": [
           {"kind": ["lib"], "crate_types": ["lib"], "name": "hivekit_lockfree", "src_path": "a"},
           {"kind": ["test"], "crate_types": ["bin"], "name": "loom", "src_path": "b"},
           {"kind": ["test"], "crate_types": ["bin"], "name": "scheduler_stress", "src_path": "c"},
           {"kind": ["bench"], "crate_types": ["bin"], "name": "snapshot", "src_path": "d"},
           {"kind": ["bench"], "crate_types": ["bin"], "name": "scheduler", "src_path": "e"}
         ]},
        {"name": "hivekit-etcd", "version": "0.1.0", "id": "etcd", "manifest_path": "/w/crates/etcd/Cargo.toml",
         "features": {},
         "dependencies": [{"name": "etcd-client", "source": null, "req": "^0.14", "kind": null, "rename": null,
                           "optional": false, "uses_default_features": true, "features": [], "target": null, "registry": null}],
         "targets": [
           {"kind": ["lib"], "crate_types": ["lib"], "name": "hivekit_etcd", "src_path": "g"},
           {"kind": ["bench"], "crate_types": ["bin"], "name": "etcd", "src_path": "h"}
         ]},
        {"name": "hivekit-examples", "version": "0.1.0", "id": "ex", "manifest_path": "/w/examples/Cargo.toml",
         "features": {}, "dependencies": [],
         "targets": [
           {"kind": ["example"], "crate_types": ["bin"], "name": "pipeline", "src_path": "i"},
           {"kind": ["example"], "crate_types": ["bin"], "name": "bridge", "src_path": "j"}
         ]},
        {"name": "xtask", "version": "0.1.0", "id": "y", "manifest_path": "/w/xtask/Cargo.toml",
         "features": {}, "dependencies": [],
         "targets": [{"kind": ["bin"], "crate_types": ["bin"], "name": "xtask", "src_path": "f"}]}
      ],
      "workspace_members": ["rt", "lf", "etcd", "ex", "y"],
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
        assert_eq!(ws.packages[3].examples, ["pipeline", "bridge"]);
        assert_eq!(ws.etcd_packages(), ["hivekit-etcd"]);
        assert_eq!(ws.packages[1].dir, PathBuf::from("/w/crates/lockfree"));
        assert_eq!(
            ws.instructions_baseline(),
            PathBuf::from("/w/docs/instructions.json")
        );
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
                ("hivekit-lockfree", "scheduler"),
                ("hivekit-etcd", "etcd")
            ]
        );
    }

    #[test]
    fn instruction_suites_are_apart_from_criterion_suites() {
        let ws = workspace();
        let suites = ws.instruction_suites(&[]).expect("suites");
        assert_eq!(
            suites,
            [Suite {
                krate: "hivekit-runtime".into(),
                bench: "instructions".into()
            }]
        );
        let error = ws
            .instruction_suites(&["lockfree".into()])
            .expect_err("lockfree has no instruction-count suite");
        assert!(
            matches!(&error, XtaskError::NoBenches { name, what: "instruction-count suite", known }
                if name == "lockfree" && known == "hivekit-runtime"),
            "{error}"
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
            .contains("hivekit-runtime, hivekit-lockfree, hivekit-etcd"));
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
