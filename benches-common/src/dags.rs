//! Seeded DAG shapes for the swarm suite: plain edge lists, converted by each bench.
//!
//! A [`DagShape`] names its stages and lists, for each stage, the earlier stages it runs after, so
//! every shape is acyclic and already in a topological order. Each bench turns the same shape into
//! a hivekit pipeline, a dagrs graph or a hand-written tokio baseline.

use rand::Rng;

use crate::workload::rng;

/// A DAG as plain data: stage `i` is `names[i]` and runs after every stage in `dependencies[i]`
/// (all lower than `i`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagShape {
    /// Stage names, unique.
    pub names: Vec<String>,
    /// For each stage, the indices of the stages it depends on.
    pub dependencies: Vec<Vec<usize>>,
}

impl DagShape {
    /// The number of stages.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no stages.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The number of edges.
    pub fn edges(&self) -> usize {
        self.dependencies.iter().map(Vec::len).sum()
    }

    /// The DAG as a user holds it before building a pipeline (parsed from a config file, say): each
    /// stage's name and the names of the stages it runs after, in stage order.
    pub fn stage_list(&self) -> Vec<(String, Vec<String>)> {
        self.names
            .iter()
            .zip(&self.dependencies)
            .map(|(name, dependencies)| {
                let after = dependencies
                    .iter()
                    .map(|&dependency| self.names[dependency].clone());
                (name.clone(), after.collect())
            })
            .collect()
    }

    /// For each stage, the stages that depend on it (the reverse edges).
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let mut dependents = vec![Vec::new(); self.len()];
        for (stage, dependencies) in self.dependencies.iter().enumerate() {
            for &dependency in dependencies {
                dependents[dependency].push(stage);
            }
        }
        dependents
    }

    fn numbered(dependencies: Vec<Vec<usize>>) -> Self {
        Self {
            names: (0..dependencies.len())
                .map(|stage| format!("s{stage}"))
                .collect(),
            dependencies,
        }
    }
}

/// `s0 -> s1 -> ... -> s(n-1)`.
///
/// # Examples
///
/// ```
/// let chain = benches_common::dags::chain(3);
/// assert_eq!(chain.dependencies, vec![vec![], vec![0], vec![1]]);
/// ```
pub fn chain(stages: usize) -> DagShape {
    DagShape::numbered(
        (0..stages)
            .map(|stage| if stage == 0 { vec![] } else { vec![stage - 1] })
            .collect(),
    )
}

/// `1 -> width -> 1`: a source, `width` parallel stages after it, and a sink after all of them
/// (`width + 2` stages).
///
/// # Examples
///
/// ```
/// let fan = benches_common::dags::fan(2);
/// assert_eq!(fan.dependencies, vec![vec![], vec![0], vec![0], vec![1, 2]]);
/// ```
pub fn fan(width: usize) -> DagShape {
    let mut dependencies = vec![Vec::new()];
    dependencies.extend((0..width).map(|_| vec![0]));
    dependencies.push((1..=width).collect());
    DagShape::numbered(dependencies)
}

/// How many earlier stages [`random`] considers as dependencies of each stage.
pub const RANDOM_CANDIDATES: usize = 16;

/// A random DAG of `stages` stages: each stage considers up to [`RANDOM_CANDIDATES`] earlier stages
/// drawn uniformly from all earlier ones and depends on each with probability `edge_probability`
/// (duplicates dropped), so the expected in-degree is at most `16 * edge_probability` and generation
/// is linear even at 100k stages. The same seed gives the same DAG.
///
/// # Examples
///
/// ```
/// use benches_common::dags::random;
///
/// let dag = random(100, 0.2, 7);
/// assert_eq!(dag, random(100, 0.2, 7));
/// assert!(dag.dependencies.iter().enumerate().all(|(stage, deps)| deps.iter().all(|&d| d < stage)));
/// ```
pub fn random(stages: usize, edge_probability: f64, seed: u64) -> DagShape {
    let mut rng = rng(seed);
    let probability = edge_probability.clamp(0.0, 1.0);
    let dependencies = (0..stages)
        .map(|stage| {
            let mut dependencies: Vec<usize> = Vec::new();
            for _ in 0..RANDOM_CANDIDATES.min(stage) {
                if rng.gen_bool(probability) {
                    let dependency = rng.gen_range(0..stage);
                    if !dependencies.contains(&dependency) {
                        dependencies.push(dependency);
                    }
                }
            }
            dependencies
        })
        .collect();
    DagShape::numbered(dependencies)
}

/// The six-stage pipeline of the seed project: event monitoring -> graph extension -> (validation
/// and template generation in parallel) -> code generation -> quality assurance.
///
/// # Examples
///
/// ```
/// let six = benches_common::dags::six_stage();
/// assert_eq!(six.len(), 6);
/// assert_eq!(six.names[5], "quality_assurance");
/// ```
pub fn six_stage() -> DagShape {
    DagShape {
        names: [
            "event_monitoring",
            "graph_extension",
            "validation",
            "template_generation",
            "code_generation",
            "quality_assurance",
        ]
        .map(String::from)
        .to_vec(),
        dependencies: vec![vec![], vec![0], vec![1], vec![1], vec![2, 3], vec![4]],
    }
}
