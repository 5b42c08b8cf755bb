//! `halley mr-task` (hidden): one task of a streaming MapReduce job, as a
//! `halley worker` runs it — the payload of a map or reduce task of
//! `halley mapreduce` is this command line.
//!
//! A map task reads its split from the input file (offset and length),
//! runs the map command on it and writes its lines by partition to
//! `<shuffle>/map-<i>.part-<r>` (each written aside and renamed, so a
//! retried task never leaves half a file); a reduce task reads
//! `<shuffle>/map-*.part-<r>` of every map task, sorts them by key and runs
//! the reduce command, writing `<out>/part-<r>`. The shuffle directory must
//! be shared by the workers: they run on this machine. A failed task prints
//! why on stderr and exits 1. `halley mapreduce` and a workflow's MapReduce
//! stages make the command lines with [`Lines`].

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use halley_paradigms::bag::sh_quote;
use halley_paradigms::mapreduce::Input;
use halley_paradigms::mapreduce::streaming::{Keys, Streaming};

use crate::exit::{Failure, NOT_FOUND, Outcome, SUCCESS};

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Run the map command on one split.
    Map {
        /// The task's number (its files are `map-<index>.part-<r>`).
        #[arg(long)]
        index: usize,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        offset: u64,
        #[arg(long)]
        len: usize,
        #[arg(long)]
        map: String,
        #[arg(long)]
        partitions: usize,
        #[arg(long)]
        shuffle: PathBuf,
        /// How the split is named in errors.
        #[arg(long)]
        name: String,
        /// Where the map command runs (default: here).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Run the reduce command on one partition.
    Reduce {
        #[arg(long)]
        partition: usize,
        /// Map tasks whose output to read.
        #[arg(long)]
        maps: usize,
        #[arg(long)]
        reduce: String,
        #[arg(long)]
        shuffle: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Where the reduce command runs (default: here).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[command(flatten)]
        keys: KeyArgs,
    },
}

/// How a map output line splits into key and value (Hadoop streaming's
/// field separator and number of key fields).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct KeyArgs {
    /// The byte between a map output line's fields: one ASCII character,
    /// or `\t` (the default, a tab).
    #[arg(long, default_value = "\\t", value_parser = separator)]
    pub separator: u8,
    /// Fields of a line that make its key (the rest is its value); a line
    /// with fewer fields is all key, with an empty value.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub key_fields: u32,
}

impl KeyArgs {
    pub fn keys(self) -> Keys {
        Keys {
            separator: self.separator,
            fields: self.key_fields as usize,
        }
    }

    /// The flags that say so to `halley mr-task`.
    fn flags(self) -> String {
        let sep = match self.separator {
            b'\t' => "\\t".to_owned(),
            b => char::from(b).to_string(),
        };
        format!(
            " --separator {} --key-fields {}",
            sh_quote(&sep),
            self.key_fields
        )
    }
}

impl Default for KeyArgs {
    fn default() -> Self {
        KeyArgs {
            separator: b'\t',
            key_fields: 1,
        }
    }
}

/// `--separator`: one ASCII character, or `\t`.
fn separator(text: &str) -> Result<u8, String> {
    match text {
        "\\t" | "\t" => Ok(b'\t'),
        _ if text.len() == 1 && text.is_ascii() && text != "\n" => Ok(text.as_bytes()[0]),
        _ => Err(format!(
            "expected one ASCII character (not a newline) or \\t, got {text:?}"
        )),
    }
}

/// What a streaming job's task lines are made of.
#[derive(Debug)]
pub struct Lines<'a> {
    /// This program.
    pub exe: &'a Path,
    pub map: &'a str,
    pub reduce: &'a str,
    pub reducers: usize,
    /// Where the maps' output goes (it must exist).
    pub shuffle: &'a Path,
    /// Where `part-<r>` goes.
    pub out: &'a Path,
    /// Where the commands run (default: the worker's directory).
    pub dir: Option<&'a Path>,
    /// How map output lines split into key and value.
    pub keys: KeyArgs,
}

impl Lines<'_> {
    /// The map tasks' and the reduce tasks' command lines for about
    /// `splits` splits of `input` (bad input when a file's path cannot be
    /// made absolute).
    pub fn of(&self, input: &Input, splits: usize) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let splits = input.splits(splits.max(1));
        let mut maps = Vec::with_capacity(splits.len());
        for (i, split) in splits.iter().enumerate() {
            let file = &input.files()[split.file].0;
            let name = format!(
                "split {i} ({}, bytes {}..{})",
                file.display(),
                split.offset,
                split.offset + split.data.len()
            );
            let path = std::path::absolute(file)
                .with_context(|| format!("cannot resolve {}", file.display()))?;
            maps.push(format!(
                "{} mr-task map --index {i} --input {} --offset {} --len {} --map {} \
                 --partitions {} --shuffle {} --name {}{}{}",
                quote(self.exe),
                quote(&path),
                split.offset,
                split.data.len(),
                sh_quote(self.map),
                self.reducers,
                quote(self.shuffle),
                sh_quote(&name),
                self.dir_arg(),
                self.keys.flags(),
            ));
        }
        let reduces = (0..self.reducers)
            .map(|r| {
                format!(
                    "{} mr-task reduce --partition {r} --maps {} --reduce {} --shuffle {} --out {}{}{}",
                    quote(self.exe),
                    maps.len(),
                    sh_quote(self.reduce),
                    quote(self.shuffle),
                    quote(self.out),
                    self.dir_arg(),
                    self.keys.flags(),
                )
            })
            .collect();
        Ok((maps, reduces))
    }

    fn dir_arg(&self) -> String {
        self.dir
            .map_or(String::new(), |d| format!(" --dir {}", quote(d)))
    }
}

fn quote(path: &Path) -> String {
    sh_quote(&path.to_string_lossy())
}

/// Where map task `index` puts partition `partition`'s lines.
pub fn shuffle_file(shuffle: &Path, index: usize, partition: usize) -> PathBuf {
    shuffle.join(format!("map-{index}.part-{partition}"))
}

pub fn run(args: Args) -> Outcome {
    let result = match args {
        Args::Map {
            index,
            input,
            offset,
            len,
            map,
            partitions,
            shuffle,
            name,
            dir,
            keys,
        } => map_task(
            index,
            &input,
            (offset, len),
            map,
            partitions,
            &shuffle,
            &name,
            dir,
            keys.keys(),
        ),
        Args::Reduce {
            partition,
            maps,
            reduce,
            shuffle,
            out,
            dir,
            keys,
        } => reduce_task(partition, maps, reduce, &shuffle, out, dir, keys.keys()),
    };
    match result {
        Ok(()) => Ok(SUCCESS),
        Err(error) => Err(Failure {
            code: NOT_FOUND,
            error,
        }),
    }
}

#[allow(clippy::too_many_arguments)]
fn map_task(
    index: usize,
    input: &Path,
    (offset, len): (u64, usize),
    map: String,
    partitions: usize,
    shuffle: &Path,
    name: &str,
    dir: Option<PathBuf>,
    keys: Keys,
) -> anyhow::Result<()> {
    let mut data = vec![0; len];
    let mut file = File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut data))
        .with_context(|| format!("cannot read {name}"))?;
    let job = Streaming {
        map,
        reduce: String::new(),
        out: shuffle.to_owned(),
        dir,
        keys,
    };
    let parts = job
        .map_split(name, &data, partitions)
        .map_err(|e| anyhow!(e))?;
    for (r, lines) in parts.iter().enumerate() {
        let path = shuffle_file(shuffle, index, r);
        let aside = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&aside, lines)
            .and_then(|()| std::fs::rename(&aside, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn reduce_task(
    partition: usize,
    maps: usize,
    reduce: String,
    shuffle: &Path,
    out: PathBuf,
    dir: Option<PathBuf>,
    keys: Keys,
) -> anyhow::Result<()> {
    let buffers = (0..maps)
        .map(|i| {
            let path = shuffle_file(shuffle, i, partition);
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let job = Streaming {
        map: String::new(),
        reduce,
        out,
        dir,
        keys,
    };
    job.reduce_partition(partition, &buffers)
        .map_err(|e| anyhow!(e))
}
