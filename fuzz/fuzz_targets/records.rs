//! Fuzz target `records`: see `halley_fuzz::records`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| halley_fuzz::records(data));
