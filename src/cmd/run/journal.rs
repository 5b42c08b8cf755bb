//! `<out>/journal.jsonl`: the state of a `halley run`, kept so that a run
//! killed any way (SIGKILL too) can be resumed (`--resume <out>`).
//!
//! Append-only, one JSON object a line, written as things happen: a
//! `start` line per run (its job id and every command), a `task` line per
//! finished task (after its output files are written), a `spent` line when
//! the job's spend grows. A torn last line (the process died mid-write) is
//! ignored. Reading it back gives the tasks already finished (the last line
//! of a task wins), the commands, the jobs that ran (to withdraw their
//! tuples from a shared space) and the money they spent.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::summary::TaskRecord;

pub const FILE: &str = "journal.jsonl";

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    Start { job: String, commands: Vec<String> },
    Task(TaskRecord),
    Spent { job: String, cost: f64 },
}

/// The journal, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    pub fn open(out: &Path) -> anyhow::Result<Journal> {
        let path = out.join(FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Journal { path, file })
    }

    /// Appends one line (one `write`, so a kill leaves at most a torn
    /// last line).
    pub fn append(&mut self, entry: &Entry) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(entry).context("a journal entry serializes")?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// What earlier runs of a job did.
#[derive(Debug, Default)]
pub struct Past {
    pub commands: Vec<String>,
    /// Finished tasks by id (the last record of each).
    pub tasks: BTreeMap<u64, TaskRecord>,
    /// The jobs that ran, oldest first.
    pub jobs: Vec<String>,
    /// What they spent.
    pub cost: f64,
}

/// Reads `<out>/journal.jsonl`; exit-2 errors name the file and line.
pub fn read(out: &Path) -> anyhow::Result<Past> {
    let path = out.join(FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: cannot read the job's journal (is {} the --out of a `halley run`?)",
            path.display(),
            out.display()
        )
    })?;
    let mut past = Past::default();
    let mut spent: BTreeMap<String, f64> = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let entry = match serde_json::from_str::<Entry>(line) {
            Ok(entry) => entry,
            // A torn last line: the run died writing it.
            Err(_) if n + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => anyhow::bail!("{}:{}: not a journal entry: {e}", path.display(), n + 1),
        };
        match entry {
            Entry::Start { job, commands } => {
                past.commands = commands;
                past.jobs.push(job);
            }
            Entry::Task(record) => {
                past.tasks.insert(record.id, record);
            }
            Entry::Spent { job, cost } => {
                spent.insert(job, cost);
            }
        }
    }
    if past.jobs.is_empty() {
        anyhow::bail!("{}: no run started in this journal", path.display());
    }
    past.cost = spent.values().sum();
    Ok(past)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, exit_code: i32) -> TaskRecord {
        TaskRecord {
            id,
            exit_code,
            ..TaskRecord::default()
        }
    }

    #[test]
    fn a_journal_reads_back_with_its_torn_last_line_ignored() {
        let dir = std::env::temp_dir().join(format!("halley-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut journal = Journal::open(&dir).unwrap();
        let commands = vec!["a".to_owned(), "b".to_owned()];
        journal
            .append(&Entry::Start {
                job: "j1".into(),
                commands: commands.clone(),
            })
            .unwrap();
        journal.append(&Entry::Task(record(1, 3))).unwrap();
        journal
            .append(&Entry::Spent {
                job: "j1".into(),
                cost: 0.5,
            })
            .unwrap();
        journal
            .append(&Entry::Spent {
                job: "j1".into(),
                cost: 0.75,
            })
            .unwrap();
        journal
            .append(&Entry::Start {
                job: "j2".into(),
                commands: commands.clone(),
            })
            .unwrap();
        journal.append(&Entry::Task(record(1, 0))).unwrap();
        journal
            .append(&Entry::Spent {
                job: "j2".into(),
                cost: 0.25,
            })
            .unwrap();
        drop(journal);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.join(FILE))
            .unwrap();
        file.write_all(b"{\"task\":{\"id\":0,").unwrap();
        let past = read(&dir).unwrap();
        assert_eq!(past.commands, commands);
        assert_eq!(past.jobs, ["j1", "j2"]);
        assert_eq!(past.tasks.len(), 1);
        assert_eq!(past.tasks[&1].exit_code, 0, "the last record wins");
        assert_eq!(past.cost, 1.0);
        std::fs::write(
            dir.join(FILE),
            "{\"start\":{\"job\":\"j\",\"commands\":[]}}\nnonsense\n{}\n",
        )
        .unwrap();
        let err = format!("{:#}", read(&dir).unwrap_err());
        assert!(
            err.contains("journal.jsonl:2: not a journal entry"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
