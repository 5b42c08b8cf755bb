//! Fuzz target `gate`: see `halley_fuzz::gate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| halley_fuzz::gate(data));
