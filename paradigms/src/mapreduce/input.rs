//! Input files held in memory and cut into line-aligned splits.
//!
//! The bulk data of an in-process MapReduce never goes through the space: the
//! files are read once into memory shared by every worker thread, and a map
//! task is told only the number of its [`Split`]. A split starts at the start
//! of a line and ends just after a `'\n'` (or at the end of its file), so no
//! line is ever cut in two.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Why the input could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read input {path}: {error}")]
pub struct InputError {
    pub path: PathBuf,
    pub error: io::Error,
}

/// The contents of the input files, in the order they were named (the files
/// of a directory in name order).
#[derive(Debug, Default)]
pub struct Input {
    files: Vec<(PathBuf, Vec<u8>)>,
}

/// One piece of one input file: a whole number of lines.
#[derive(Clone, Copy, Debug)]
pub struct Split<'a> {
    /// Index of the file in [`Input::files`].
    pub file: usize,
    /// Byte offset of the split in its file.
    pub offset: usize,
    /// The bytes of the split.
    pub data: &'a [u8],
}

impl Input {
    /// Reads every named file, and every regular file directly inside every
    /// named directory (in name order; names starting with `.` or `_` are
    /// skipped, as Hadoop does).
    pub fn read(paths: &[impl AsRef<Path>]) -> Result<Input, InputError> {
        let mut files = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let err = |error| InputError {
                path: path.to_owned(),
                error,
            };
            if fs::metadata(path).map_err(err)?.is_dir() {
                let mut names = Vec::new();
                for entry in fs::read_dir(path).map_err(err)? {
                    let entry = entry.map_err(err)?;
                    let hidden = entry.file_name().to_string_lossy().starts_with(['.', '_']);
                    if !hidden && entry.file_type().map_err(err)?.is_file() {
                        names.push(entry.path());
                    }
                }
                names.sort();
                for name in names {
                    files.push(read_file(name)?);
                }
            } else {
                files.push(read_file(path.to_owned())?);
            }
        }
        Ok(Input { files })
    }

    /// An input held in memory already, named `name` in messages.
    pub fn from_bytes(name: impl Into<PathBuf>, data: Vec<u8>) -> Input {
        Input {
            files: vec![(name.into(), data)],
        }
    }

    /// The files, with their contents.
    pub fn files(&self) -> &[(PathBuf, Vec<u8>)] {
        &self.files
    }

    /// Total size in bytes.
    pub fn len(&self) -> usize {
        self.files.iter().map(|(_, d)| d.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// About `count` splits of about equal size (at least one per non-empty
    /// file, none for an empty file), each a whole number of lines.
    pub fn splits(&self, count: usize) -> Vec<Split<'_>> {
        let target = self.len().div_ceil(count.max(1)).max(1);
        let mut splits = Vec::new();
        for (file, (_, data)) in self.files.iter().enumerate() {
            let mut offset = 0;
            while offset < data.len() {
                let end = line_end_at_or_after(data, offset + target);
                splits.push(Split {
                    file,
                    offset,
                    data: &data[offset..end],
                });
                offset = end;
            }
        }
        splits
    }
}

/// Reads a whole file.
fn read_file(path: PathBuf) -> Result<(PathBuf, Vec<u8>), InputError> {
    match fs::read(&path) {
        Ok(data) => Ok((path, data)),
        Err(error) => Err(InputError { path, error }),
    }
}

/// The index just past the first `'\n'` at or after `from`, or the length.
fn line_end_at_or_after(data: &[u8], from: usize) -> usize {
    if from >= data.len() {
        return data.len();
    }
    match data[from - 1..].iter().position(|&b| b == b'\n') {
        Some(i) => from + i,
        None => data.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_end_on_line_ends_and_cover_everything() {
        let text = b"one two\nthree\nfour five six\nseven\n".to_vec();
        let input = Input::from_bytes("t", text.clone());
        for count in 1..8 {
            let splits = input.splits(count);
            let joined: Vec<u8> = splits.iter().flat_map(|s| s.data.to_vec()).collect();
            assert_eq!(joined, text, "count {count}");
            for s in &splits {
                assert_eq!(s.data.last(), Some(&b'\n'), "count {count}");
                assert_eq!(&text[s.offset..s.offset + s.data.len()], s.data);
            }
        }
        assert_eq!(input.splits(1).len(), 1);
    }

    #[test]
    fn a_last_line_without_newline_is_kept() {
        let input = Input::from_bytes("t", b"a\nb".to_vec());
        let splits = input.splits(2);
        assert_eq!(splits.len(), 2);
        assert_eq!(splits[1].data, b"b");
    }

    #[test]
    fn empty_files_have_no_splits() {
        let input = Input::from_bytes("t", Vec::new());
        assert!(input.splits(4).is_empty());
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = Input::read(&["/nonexistent/halley-input"]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/halley-input"));
    }
}
