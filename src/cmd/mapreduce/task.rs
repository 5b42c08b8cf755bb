//! `halley mr-task` (hidden): one task of a streaming MapReduce job, as a
//! `halley worker` runs it — the payload of a map or reduce task of
//! `halley mapreduce` is this command line ([`map_line`], [`reduce_line`]).
//!
//! A map task reads its split from the input file (offset and length),
//! runs the map command on it and writes its lines by partition to
//! `<shuffle>/map-<i>.part-<r>` (each written aside and renamed, so a
//! retried task never leaves half a file); a reduce task reads
//! `<shuffle>/map-*.part-<r>` of every map task, sorts them by key and runs
//! the reduce command, writing `<out>/part-<r>`. The shuffle directory must
//! be shared by the workers: they run on this machine. A failed task prints
//! why on stderr and exits 1.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use halley_paradigms::bag::sh_quote;
use halley_paradigms::mapreduce::streaming::Streaming;

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
    },
}

/// A map task's command line; `exe` is this program.
#[allow(clippy::too_many_arguments)]
pub fn map_line(
    exe: &Path,
    index: usize,
    input: &Path,
    offset: usize,
    len: usize,
    map: &str,
    partitions: usize,
    shuffle: &Path,
    name: &str,
) -> String {
    format!(
        "{} mr-task map --index {index} --input {} --offset {offset} --len {len} --map {} \
         --partitions {partitions} --shuffle {} --name {}",
        quote(exe),
        quote(input),
        sh_quote(map),
        quote(shuffle),
        sh_quote(name)
    )
}

/// A reduce task's command line; `exe` is this program.
pub fn reduce_line(
    exe: &Path,
    partition: usize,
    maps: usize,
    reduce: &str,
    shuffle: &Path,
    out: &Path,
) -> String {
    format!(
        "{} mr-task reduce --partition {partition} --maps {maps} --reduce {} --shuffle {} --out {}",
        quote(exe),
        sh_quote(reduce),
        quote(shuffle),
        quote(out)
    )
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
        } => map_task(index, &input, offset, len, map, partitions, &shuffle, &name),
        Args::Reduce {
            partition,
            maps,
            reduce,
            shuffle,
            out,
        } => reduce_task(partition, maps, reduce, &shuffle, out),
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
    offset: u64,
    len: usize,
    map: String,
    partitions: usize,
    shuffle: &Path,
    name: &str,
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
        dir: None,
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
        dir: None,
    };
    job.reduce_partition(partition, &buffers)
        .map_err(|e| anyhow!(e))
}
