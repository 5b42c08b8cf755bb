//! The MapReduce Rust API over files, on the embedded space.

mod run_util;

use run_util::Scratch;

use std::collections::BTreeMap;
use std::fs;

use halley_paradigms::mapreduce::{Emitter, Input, MapReduce};
use halley_substrate::embedded::EmbeddedSpace;

/// The map: each word under its first letter, counted once.
fn first_letters<'a>(
    split: &'a [u8],
    emit: &mut Emitter<'_, u8, (u64, &'a [u8]), impl Fn(&mut (u64, &'a [u8]), (u64, &'a [u8]))>,
) {
    for word in split
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
    {
        emit.emit(word[0], (1, word));
    }
}

/// The combiner: adds the counts, keeps the longer word.
fn longer<'a>(a: &mut (u64, &'a [u8]), b: (u64, &'a [u8])) {
    a.0 += b.0;
    if (b.1.len(), std::cmp::Reverse(b.1)) > (a.1.len(), std::cmp::Reverse(a.1)) {
        a.1 = b.1;
    }
}

/// Per first letter: how many words start with it, and the longest of them
/// (the first in byte order among equals) — a value that is not a number and
/// a reduce whose output differs from the value.
#[test]
fn a_directory_of_files_reduces_like_a_serial_loop() {
    let tmp = Scratch::new("mr-api");
    let mut text = String::new();
    for i in 0..5_000u32 {
        text.push_str(&format!("a{} b{} c{}\n", i % 97, i % 1013, i * 7 % 11));
    }
    fs::write(tmp.0.join("one.txt"), &text).unwrap();
    fs::write(tmp.0.join("two.txt"), "zebra apple\nbanana\n").unwrap();
    fs::write(tmp.0.join(".hidden"), "ignored words\n").unwrap();

    let mut expected: BTreeMap<u8, (u64, String)> = BTreeMap::new();
    for word in text.split_whitespace().chain(["zebra", "apple", "banana"]) {
        let entry = expected
            .entry(word.as_bytes()[0])
            .or_insert((0, String::new()));
        entry.0 += 1;
        if (word.len(), std::cmp::Reverse(word)) > (entry.1.len(), std::cmp::Reverse(&entry.1)) {
            entry.1 = word.to_owned();
        }
    }
    let expected: BTreeMap<u8, String> = expected
        .into_iter()
        .map(|(k, (n, longest))| (k, format!("{n} {longest}")))
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let space = rt.block_on(async { EmbeddedSpace::new() });
    let input = Input::read(&[&tmp.0]).unwrap();
    assert_eq!(input.files().len(), 2, "the hidden file is skipped");
    let out = MapReduce::new()
        .workers(2)
        .reducers(3)
        .splits(9)
        .run(
            &space,
            rt.handle(),
            &input,
            first_letters,
            longer,
            |_, (n, longest)| format!("{n} {}", String::from_utf8_lossy(longest)),
        )
        .unwrap();
    assert_eq!(out.partitions().len(), 3);
    let got: BTreeMap<u8, String> = out.into_iter().collect();
    assert_eq!(got, expected);
}
