//! The workflow file: a TOML table of stages, each a bag of shell commands or
//! a streaming MapReduce, with `after = [...]` dependencies and an optional
//! deadline. Everything is checked here, before anything runs.
//!
//! ```toml
//! [stages.fetch]
//! commands = ["seq 1 100 > numbers.txt"]
//!
//! [stages.count]
//! after = ["fetch"]
//! deadline = "5m"                       # optional, from the stage's release
//! mapreduce = { input = ["numbers.txt"], map = "awk '{print $1 % 7 \"\\t1\"}'",
//!               reduce = "uniq -c", reducers = 2 }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Deserialize;

/// Why a workflow file was refused. Every message names the file, and the
/// stage and field where there is one, and says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{file}: cannot read: {error}")]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{file}: {error}")]
    Syntax {
        file: PathBuf,
        error: toml::de::Error,
    },
    #[error("{file}: no stages: expected at least one [stages.<name>] table")]
    Empty { file: PathBuf },
    #[error(
        "{file}: stage `{stage}`: bad name: expected letters, digits, `-`, `_` or `.` (it names a directory)"
    )]
    Name { file: PathBuf, stage: String },
    #[error("{file}: stage `{stage}`: expected exactly one of `commands` or `mapreduce`")]
    Kind { file: PathBuf, stage: String },
    #[error("{file}: stage `{stage}`: `commands` is empty: expected at least one command")]
    NoCommands { file: PathBuf, stage: String },
    #[error("{file}: stage `{stage}`: mapreduce: {what}")]
    MapReduce {
        file: PathBuf,
        stage: String,
        what: &'static str,
    },
    #[error(
        "{file}: stage `{stage}`: deadline {value:?}: expected a duration such as \"90s\", \"30m\" or \"2h\" ({reason})"
    )]
    Deadline {
        file: PathBuf,
        stage: String,
        value: String,
        reason: String,
    },
    #[error(
        "{file}: stage `{stage}`: `after` names `{missing}`, which is not a stage of this workflow (stages: {known})"
    )]
    MissingStage {
        file: PathBuf,
        stage: String,
        missing: String,
        known: String,
    },
    #[error("{file}: stages {cycle} depend on each other through `after`: expected no cycle")]
    Cycle { file: PathBuf, cycle: String },
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    stages: BTreeMap<String, RawStage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    #[serde(default)]
    after: Vec<String>,
    deadline: Option<String>,
    commands: Option<Vec<String>>,
    mapreduce: Option<MapReduceStage>,
}

/// A streaming MapReduce stage. Relative paths are relative to the
/// workflow's output directory, where the stages' commands run.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapReduceStage {
    pub input: Vec<PathBuf>,
    pub map: String,
    pub reduce: String,
    pub reducers: Option<usize>,
    /// Where `part-<r>` go; by default a directory named after the stage.
    pub out: Option<PathBuf>,
}

/// What a stage does.
#[derive(Clone, Debug)]
pub enum Work {
    /// Independent shell commands (`sh -c`), run concurrently.
    Bag(Vec<String>),
    MapReduce(MapReduceStage),
}

/// One checked stage.
#[derive(Clone, Debug)]
pub struct Stage {
    pub name: String,
    pub after: Vec<String>,
    pub deadline: Option<Duration>,
    pub work: Work,
}

/// A checked workflow: its stages and their DAG (an edge runs from a parent
/// to a stage that waits for it; node weights index `stages`).
#[derive(Debug)]
pub struct Workflow {
    pub file: PathBuf,
    pub stages: Vec<Stage>,
    pub graph: DiGraph<usize, ()>,
}

impl Workflow {
    /// Reads and checks a workflow file.
    pub fn load(file: &Path) -> Result<Workflow, SpecError> {
        let text = std::fs::read_to_string(file).map_err(|error| SpecError::Read {
            file: file.to_owned(),
            error,
        })?;
        Workflow::parse(file, &text)
    }

    /// Checks a workflow given as text; `file` names it in messages.
    pub fn parse(file: &Path, text: &str) -> Result<Workflow, SpecError> {
        let file = file.to_owned();
        let raw: File = toml::from_str(text).map_err(|error| SpecError::Syntax {
            file: file.clone(),
            error,
        })?;
        if raw.stages.is_empty() {
            return Err(SpecError::Empty { file });
        }
        let names: Vec<&String> = raw.stages.keys().collect();
        let mut stages = Vec::new();
        for (name, stage) in &raw.stages {
            stages.push(check_stage(&file, name, stage, &names)?);
        }
        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..stages.len()).map(|i| graph.add_node(i)).collect();
        for (i, stage) in stages.iter().enumerate() {
            for parent in &stage.after {
                let p = stages
                    .iter()
                    .position(|s| &s.name == parent)
                    .expect("checked");
                graph.add_edge(nodes[p], nodes[i], ());
            }
        }
        if toposort(&graph, None).is_err() {
            let cycle = tarjan_scc(&graph)
                .into_iter()
                .find(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]))
                .expect("toposort found a cycle");
            let mut cycle: Vec<String> = cycle
                .iter()
                .map(|n| format!("`{}`", stages[graph[*n]].name))
                .collect();
            cycle.sort();
            return Err(SpecError::Cycle {
                file,
                cycle: cycle.join(", "),
            });
        }
        Ok(Workflow {
            file,
            stages,
            graph,
        })
    }
}

fn check_stage(
    file: &Path,
    name: &str,
    raw: &RawStage,
    names: &[&String],
) -> Result<Stage, SpecError> {
    let file = file.to_owned();
    let stage = name.to_owned();
    let name_ok = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        return Err(SpecError::Name { file, stage });
    }
    let work = match (&raw.commands, &raw.mapreduce) {
        (Some(commands), None) if commands.is_empty() => {
            return Err(SpecError::NoCommands { file, stage });
        }
        (Some(commands), None) => Work::Bag(commands.clone()),
        (None, Some(mr)) => {
            let what = if mr.input.is_empty() {
                Some("`input` is empty: expected at least one file or directory")
            } else if mr
                .reducers
                .is_some_and(|n| n == 0 || n > crate::mapreduce::MAX_REDUCERS)
            {
                Some("`reducers`: expected 1 to 100000")
            } else {
                None
            };
            if let Some(what) = what {
                return Err(SpecError::MapReduce { file, stage, what });
            }
            Work::MapReduce(mr.clone())
        }
        _ => return Err(SpecError::Kind { file, stage }),
    };
    for parent in &raw.after {
        if !names.contains(&parent) {
            let known = names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(SpecError::MissingStage {
                file,
                stage,
                missing: parent.clone(),
                known,
            });
        }
    }
    let deadline = match &raw.deadline {
        None => None,
        Some(value) => Some(
            humantime::parse_duration(value).map_err(|e| SpecError::Deadline {
                file: file.clone(),
                stage: stage.clone(),
                value: value.clone(),
                reason: e.to_string(),
            })?,
        ),
    };
    Ok(Stage {
        name: stage,
        after: raw.after.clone(),
        deadline,
        work,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Workflow, SpecError> {
        Workflow::parse(Path::new("wf.toml"), text)
    }

    #[test]
    fn a_valid_workflow_builds_its_dag() {
        let wf = parse(
            r#"
            [stages.a]
            commands = ["true"]
            [stages.b]
            after = ["a"]
            deadline = "90s"
            mapreduce = { input = ["x"], map = "cat", reduce = "cat", reducers = 2 }
            [stages.c]
            after = ["a", "b"]
            commands = ["true"]
            "#,
        )
        .unwrap();
        assert_eq!(wf.stages.len(), 3);
        assert_eq!(wf.graph.edge_count(), 3);
        let b = wf.stages.iter().find(|s| s.name == "b").unwrap();
        assert_eq!(b.deadline, Some(Duration::from_secs(90)));
        assert!(matches!(&b.work, Work::MapReduce(mr) if mr.reducers == Some(2)));
    }

    #[test]
    fn reducers_out_of_range_are_refused() {
        let stage = |n: usize| {
            format!(
                "[stages.b]\nmapreduce = {{ input = [\"x\"], map = \"cat\", reduce = \"cat\", reducers = {n} }}\n"
            )
        };
        for n in [0, crate::mapreduce::MAX_REDUCERS + 1, 4_000_000_000] {
            let err = parse(&stage(n)).unwrap_err().to_string();
            let range = format!("expected 1 to {}", crate::mapreduce::MAX_REDUCERS);
            assert!(err.contains(&range), "{n}: {err}");
        }
        parse(&stage(crate::mapreduce::MAX_REDUCERS)).unwrap();
    }

    #[test]
    fn a_cycle_is_named() {
        let err = parse(
            r#"
            [stages.a]
            after = ["c"]
            commands = ["true"]
            [stages.b]
            after = ["a"]
            commands = ["true"]
            [stages.c]
            after = ["b"]
            commands = ["true"]
            [stages.d]
            commands = ["true"]
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("wf.toml: stages `a`, `b`, `c` depend"),
            "{err}"
        );
    }

    #[test]
    fn a_stage_after_itself_is_a_cycle() {
        let err = parse("[stages.a]\nafter = [\"a\"]\ncommands = [\"true\"]\n").unwrap_err();
        assert!(
            matches!(err, SpecError::Cycle { ref cycle, .. } if cycle == "`a`"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_stage_is_named_with_the_known_ones() {
        let err = parse("[stages.a]\nafter = [\"nope\"]\ncommands = [\"true\"]\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "wf.toml: stage `a`: `after` names `nope`, which is not a stage of this workflow (stages: `a`)"
        );
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line() {
        let err = parse("[stages.a]\ncommands = [\"true\"]\nafterr = [\"b\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("wf.toml") && err.contains("line 3"), "{err}");
        assert!(err.contains("unknown field `afterr`"), "{err}");
    }

    #[test]
    fn bad_stages_are_refused() {
        for (text, expected) in [
            ("[stages.a]\n", "exactly one of `commands` or `mapreduce`"),
            ("[stages.a]\ncommands = []\n", "`commands` is empty"),
            (
                "[stages.a]\ncommands = [\"x\"]\ndeadline = \"soon\"\n",
                "deadline \"soon\": expected a duration",
            ),
            (
                "[stages.a]\nmapreduce = { input = [], map = \"m\", reduce = \"r\" }\n",
                "`input` is empty",
            ),
            ("[stages.\"a/b\"]\ncommands = [\"x\"]\n", "bad name"),
            ("stages = {}\n", "no stages"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
