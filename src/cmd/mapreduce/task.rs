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
//! be shared by the workers: they run on this machine. With `--store
//! s3://…` nothing is shared but the store ([`crate::store`]): a map task
//! gets its split as object `split-<i>` (the submitter put it there), its
//! partitions go to `map-<i>.part-<r>` and a reduce task's output to
//! `part-<r>`, all under the job's prefix. A failed task prints
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
use crate::store::{Store, StoreArgs};

#[derive(Debug, clap::Subcommand)]
pub enum Args {
    /// Run the map command on one split.
    Map {
        /// The task's number (its files are `map-<index>.part-<r>`).
        #[arg(long)]
        index: usize,
        /// The input file (without `--store`: the split is read from it).
        #[arg(long, required_unless_present = "store")]
        input: Option<PathBuf>,
        #[arg(long, requires = "input")]
        offset: Option<u64>,
        #[arg(long, requires = "input")]
        len: Option<usize>,
        #[arg(long)]
        map: String,
        #[arg(long)]
        partitions: usize,
        /// The shared shuffle directory (without `--store`).
        #[arg(long, required_unless_present = "store")]
        shuffle: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
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
        #[arg(long, required_unless_present = "store")]
        shuffle: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
        /// Where `part-<r>` goes (without `--store`).
        #[arg(long, required_unless_present = "store")]
        out: Option<PathBuf>,
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
    /// The job's object store: splits, partitions and outputs go there
    /// instead of `shuffle` and `out`.
    pub store: Option<&'a Store>,
}

impl Lines<'_> {
    /// The map tasks' and the reduce tasks' command lines for about
    /// `splits` splits of `input` (bad input when a file's path cannot be
    /// made absolute).
    pub fn of(&self, input: &Input, splits: usize) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let splits = input.splits(splits.max(1));
        if let Some(store) = self.store {
            return self.of_store(store, &splits);
        }
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

    /// The lines of a job whose data goes through `store`, after putting
    /// each split there as `split-<i>`, up to four at once.
    fn of_store(
        &self,
        store: &Store,
        splits: &[halley_paradigms::mapreduce::Split<'_>],
    ) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        // Four puts at once: one stream leaves the server's cores idle.
        Store::blocking(async {
            use futures::{StreamExt, TryStreamExt};
            futures::stream::iter(splits.iter().enumerate())
                .map(
                    |(i, split)| async move { store.put(&split_key(i), split.data.to_vec()).await },
                )
                .buffer_unordered(4)
                .try_collect::<()>()
                .await
        })?;
        let store_args: Vec<String> = store.args().iter().map(|a| sh_quote(a)).collect();
        let store_args = store_args.join(" ");
        let maps = (0..splits.len())
            .map(|i| {
                format!(
                    "{} mr-task map --index {i} --map {} --partitions {} {store_args} --name {}{}",
                    quote(self.exe),
                    sh_quote(self.map),
                    self.reducers,
                    sh_quote(&format!("split {i}")),
                    self.dir_arg(),
                )
            })
            .collect::<Vec<_>>();
        let reduces = (0..self.reducers)
            .map(|r| {
                format!(
                    "{} mr-task reduce --partition {r} --maps {} --reduce {} {store_args}{}",
                    quote(self.exe),
                    splits.len(),
                    sh_quote(self.reduce),
                    self.dir_arg(),
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

/// The name under which map task `index` puts partition `partition`'s lines.
fn shuffle_key(index: usize, partition: usize) -> String {
    format!("map-{index}.part-{partition}")
}

/// The object holding split `index` of a job with a store.
fn split_key(index: usize) -> String {
    format!("split-{index}")
}

/// The shuffle's store: the object store named, else the shared directory.
fn shuffle_store(store: &StoreArgs, shuffle: Option<PathBuf>) -> anyhow::Result<Store> {
    match (store.open()?, shuffle) {
        (Some(store), _) => Ok(store),
        (None, Some(dir)) => Ok(Store::Local(dir)),
        (None, None) => Err(anyhow!("expected --shuffle or --store")),
    }
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
            store,
            name,
            dir,
            keys,
        } => shuffle_store(&store, shuffle).and_then(|shuffle| {
            let split = match (input, offset, len) {
                (Some(input), Some(offset), Some(len)) => Some((input, offset, len)),
                _ => None,
            };
            map_task(
                index,
                split,
                map,
                partitions,
                &shuffle,
                &name,
                dir,
                keys.keys(),
            )
        }),
        Args::Reduce {
            partition,
            maps,
            reduce,
            shuffle,
            store,
            out,
            dir,
            keys,
        } => shuffle_store(&store, shuffle).and_then(|shuffle| {
            reduce_task(partition, maps, reduce, &shuffle, out, dir, keys.keys())
        }),
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
/// Runs map task `index` on its split — read from the input file at
/// `split` (file, offset, length), else object `split-<index>` of
/// `shuffle` — and puts each partition's lines in `shuffle`.
fn map_task(
    index: usize,
    split: Option<(PathBuf, u64, usize)>,
    map: String,
    partitions: usize,
    shuffle: &Store,
    name: &str,
    dir: Option<PathBuf>,
    keys: Keys,
) -> anyhow::Result<()> {
    let data = match split {
        Some((input, offset, len)) => {
            let mut data = vec![0; len];
            let mut file =
                File::open(&input).with_context(|| format!("cannot open {}", input.display()))?;
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(&mut data))
                .with_context(|| format!("cannot read {name}"))?;
            data
        }
        None => Store::blocking(shuffle.get(&split_key(index)))?,
    };
    let job = Streaming {
        map,
        reduce: String::new(),
        out: PathBuf::new(),
        dir,
        keys,
    };
    let parts = job
        .map_split(name, &data, partitions)
        .map_err(|e| anyhow!(e))?;
    Store::blocking(async {
        for (r, lines) in parts.into_iter().enumerate() {
            shuffle.put(&shuffle_key(index, r), lines).await?;
        }
        Ok(())
    })
}

/// Runs reduce task `partition` on the maps' lines of `shuffle`, writing
/// `<out>/part-<partition>`, or without `out` object `part-<partition>` of
/// `shuffle` (through a file of a fresh directory of its own).
fn reduce_task(
    partition: usize,
    maps: usize,
    reduce: String,
    shuffle: &Store,
    out: Option<PathBuf>,
    dir: Option<PathBuf>,
    keys: Keys,
) -> anyhow::Result<()> {
    let buffers = Store::blocking(async {
        let mut buffers = Vec::with_capacity(maps);
        for i in 0..maps {
            buffers.push(shuffle.get(&shuffle_key(i, partition)).await?);
        }
        Ok(buffers)
    })?;
    let local = out.is_none().then(|| {
        std::env::temp_dir().join(format!("halley-reduce-{}-{partition}", std::process::id()))
    });
    let job = Streaming {
        map: String::new(),
        reduce,
        out: out.clone().or(local.clone()).unwrap_or_default(),
        dir,
        keys,
    };
    if let Some(local) = &local {
        std::fs::create_dir_all(local)
            .with_context(|| format!("cannot create {}", local.display()))?;
    }
    let reduced = job
        .reduce_partition(partition, &buffers)
        .map_err(|e| anyhow!(e));
    let Some(local) = local else {
        return reduced;
    };
    let put = reduced.and_then(|()| {
        let part = halley_paradigms::mapreduce::streaming::part_path(&local, partition);
        let data =
            std::fs::read(&part).with_context(|| format!("cannot read {}", part.display()))?;
        Store::blocking(shuffle.put(&format!("part-{partition}"), data))
    });
    let _ = std::fs::remove_dir_all(&local);
    put
}
