//! Fuzz target `peer_message`: see `halley_fuzz::peer_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| halley_fuzz::peer_message(data));
