//! Fuzz target `syntax`: see `halley_fuzz::syntax`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| halley_fuzz::syntax(data));
