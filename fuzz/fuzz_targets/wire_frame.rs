//! Fuzz target `wire_frame`: see `halley_fuzz::wire_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| halley_fuzz::wire_frame(data));
