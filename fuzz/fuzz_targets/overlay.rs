//! Fuzz target `overlay`: see `halley_fuzz::overlay`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| halley_fuzz::overlay(data));
