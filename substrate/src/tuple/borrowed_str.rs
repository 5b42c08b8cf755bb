//! A `str` value decoded from the bytes it borrows: one allocation of its
//! exact length and one copy. bincode's `String` decoding (what serde's
//! default asks for) first zero-fills a `Vec<u8>`, reads into it, then
//! checks it; a W1 tuple has two to four strings, each decoded so at every
//! hop. The wire format does not change; a format that cannot lend its
//! input (a reader, not a slice) hands over an owned `String` as before.

use serde::Deserializer;
use serde::de::{self, Visitor};

pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_str(Owned)
}

struct Owned;

impl<'de> Visitor<'de> for Owned {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use crate::tuple::Value;

    const CONFIG: bincode::config::Configuration = bincode::config::standard();

    #[test]
    fn strings_keep_their_wire_format_both_ways() {
        for text in ["", "task", "w1-0", "é ü 漢字", &"x".repeat(300)] {
            let wire = bincode::encode_to_vec(text.to_owned(), CONFIG).unwrap();
            let ours = bincode::serde::encode_to_vec(Value::Str(text.into()), CONFIG).unwrap();
            assert_eq!(&ours[1..], &wire[..], "{text:?}");
            let (back, used): (Value, usize) =
                bincode::serde::decode_from_slice(&ours, CONFIG).unwrap();
            assert_eq!(used, ours.len());
            assert!(matches!(back, Value::Str(s) if s == text));
        }
    }

    #[test]
    fn invalid_utf8_and_short_input_are_refused() {
        let mut bad = bincode::serde::encode_to_vec(Value::Str("ab".into()), CONFIG).unwrap();
        bad[2] = 0xff;
        assert!(bincode::serde::decode_from_slice::<Value, _>(&bad, CONFIG).is_err());
        let long = bincode::serde::encode_to_vec(Value::Str("abcdef".into()), CONFIG).unwrap();
        let cut = &long[..long.len() - 2];
        assert!(bincode::serde::decode_from_slice::<Value, _>(cut, CONFIG).is_err());
    }

    #[test]
    fn a_reader_hands_over_an_owned_string() {
        let wire =
            bincode::serde::encode_to_vec(Value::Str("from a reader".into()), CONFIG).unwrap();
        let back: Value = bincode::serde::decode_from_std_read(&mut &wire[..], CONFIG).unwrap();
        assert_eq!(back, Value::Str("from a reader".into()));
    }
}
