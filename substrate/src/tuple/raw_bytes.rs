//! A `bytes` value on the wire as one run of bytes, not a sequence of
//! `u8`s: serde's default for `Vec<u8>` sends each byte through the
//! deserializer one call at a time, which was 17–29 % of a ring node's CPU
//! under the out+in load (payloads of a few hundred bytes). bincode writes
//! both forms identically (a length, then the bytes), so the wire format
//! does not change; a self-describing format gets a sequence either way.

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};

pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    // Not `deserialize_byte_buf`: bincode's slice reader would allocate
    // whatever length the input claims; `deserialize_bytes` borrows the
    // bytes from the input, so a length past its end is an error.
    deserializer.deserialize_bytes(Raw)
}

struct Raw;

impl<'de> Visitor<'de> for Raw {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // Bounded by what the input holds, not by what it claims.
        let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4_096));
        while let Some(byte) = seq.next_element()? {
            bytes.push(byte);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::tuple::Value;

    /// `Value` as it was before: `Vec<u8>` with serde's default.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Before {
        Int(i64),
        Float(f64),
        Str(String),
        Bool(bool),
        Bytes(Vec<u8>),
    }

    const CONFIG: bincode::config::Configuration = bincode::config::standard();

    #[test]
    fn bytes_keep_their_wire_format_both_ways() {
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let raw: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let old = bincode::serde::encode_to_vec(Before::Bytes(raw.clone()), CONFIG).unwrap();
            let new = bincode::serde::encode_to_vec(Value::Bytes(raw.clone()), CONFIG).unwrap();
            assert_eq!(old, new, "{len} bytes");
            let (back, used): (Value, usize) =
                bincode::serde::decode_from_slice(&old, CONFIG).unwrap();
            assert_eq!(used, old.len());
            assert!(matches!(back, Value::Bytes(b) if b == raw));
            let (before, _): (Before, usize) =
                bincode::serde::decode_from_slice(&new, CONFIG).unwrap();
            assert_eq!(before, Before::Bytes(raw));
        }
    }

    #[test]
    fn a_length_past_the_input_is_an_error_not_an_allocation() {
        // Variant 4 (bytes), then a length of 2^40 (varint: 0xfd + u64).
        let mut forged = vec![4u8, 0xfd];
        forged.extend_from_slice(&(1u64 << 40).to_le_bytes());
        forged.extend_from_slice(b"short");
        assert!(bincode::serde::decode_from_slice::<Value, _>(&forged, CONFIG).is_err());
    }

    #[test]
    fn the_owned_reader_decodes_what_either_form_wrote() {
        // `decode_from_std_read` hands the visitor an owned buffer.
        let new = bincode::serde::encode_to_vec(Value::Bytes(vec![1, 2, 255]), CONFIG).unwrap();
        let back: Value =
            bincode::serde::decode_from_std_read(&mut new.as_slice(), CONFIG).unwrap();
        assert!(matches!(back, Value::Bytes(b) if b == [1, 2, 255]));
        let old = bincode::serde::encode_to_vec(Before::Bytes(vec![9; 200]), CONFIG).unwrap();
        let back: Value =
            bincode::serde::decode_from_std_read(&mut old.as_slice(), CONFIG).unwrap();
        assert!(matches!(back, Value::Bytes(b) if b == [9; 200]));
    }
}
