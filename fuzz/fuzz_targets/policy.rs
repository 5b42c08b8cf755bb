//! Fuzz target `policy`: see `halley_fuzz::policy`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| halley_fuzz::policy(data));
