//! Keyword values to coordinates on one axis of the keyspace, preserving
//! [`Value`]'s total order, and template fields to coordinate intervals.
//!
//! An axis has `bits` bits. The top [`KIND_BITS`] hold the value's kind (in
//! the kinds' order, which is also `Value`'s order across kinds); the rest
//! hold the high bits of a 64-bit order key of the value: ints with the sign
//! bit flipped, floats by the usual `total_cmp` bit trick, strings and bytes
//! by their first eight bytes big-endian, bools as 0 or the top bit. So
//! `a <= b` implies `coordinate(a) <= coordinate(b)`; distinct values may
//! share a coordinate (a truncated key), never swap places.

use crate::template::Field;
use crate::tuple::{Kind, Value};

/// Bits that hold the kind: five kinds fit in three.
pub(super) const KIND_BITS: u32 = 3;

/// The coordinate of `value` on an axis of `bits` bits.
pub(super) fn coordinate(value: &Value, bits: u32) -> u64 {
    place(value.kind(), order_key(value), bits)
}

/// The coordinates a field can match on an axis of `bits` bits, as an
/// inclusive interval; `None` when it matches nothing.
pub(super) fn interval(field: &Field, bits: u32) -> Option<(u64, u64)> {
    match field {
        Field::Actual(v) => {
            let c = coordinate(v, bits);
            Some((c, c))
        }
        Field::Any => Some((
            place(Kind::Int, 0, bits),
            place(Kind::Bytes, u64::MAX, bits),
        )),
        Field::Typed(kind) => Some((place(*kind, 0, bits), place(*kind, u64::MAX, bits))),
        Field::Range(range) => {
            let (lo, hi) = (range.lo(), range.hi());
            let empty = lo > hi || (lo == hi && !range.inclusive());
            (!empty).then(|| (coordinate(lo, bits), coordinate(hi, bits)))
        }
        Field::Prefix(prefix) => {
            let lo = prefix_key(prefix.as_bytes(), 0x00);
            let hi = prefix_key(prefix.as_bytes(), 0xff);
            Some((place(Kind::Str, lo, bits), place(Kind::Str, hi, bits)))
        }
    }
}

/// The kind in the top bits, the high bits of the key below it.
fn place(kind: Kind, key: u64, bits: u32) -> u64 {
    let value_bits = bits - KIND_BITS;
    ((kind as u64) << value_bits) | (key >> (64 - value_bits))
}

/// A 64-bit key whose unsigned order agrees with the order of values of one
/// kind (ties allowed for strings and bytes sharing their first 8 bytes).
fn order_key(value: &Value) -> u64 {
    const TOP: u64 = 1 << 63;
    match value {
        Value::Int(v) => (*v as u64) ^ TOP,
        Value::Float(v) => {
            let b = v.to_bits();
            if b & TOP != 0 { !b } else { b | TOP }
        }
        Value::Str(s) => prefix_key(s.as_bytes(), 0x00),
        Value::Bytes(b) => prefix_key(b, 0x00),
        Value::Bool(v) => {
            if *v {
                TOP
            } else {
                0
            }
        }
    }
}

/// The first eight bytes big-endian, padded with `fill`.
fn prefix_key(bytes: &[u8], fill: u8) -> u64 {
    let mut key = [fill; 8];
    let n = bytes.len().min(8);
    key[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Range;
    use proptest::prelude::*;

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::Int),
            any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b))),
            any::<f64>().prop_map(Value::Float),
            "[a-c]{0,10}".prop_map(Value::Str),
            any::<String>().prop_map(Value::Str),
            any::<bool>().prop_map(Value::Bool),
            prop::collection::vec(any::<u8>(), 0..10).prop_map(Value::Bytes),
        ]
    }

    proptest! {
        #[test]
        fn coordinates_preserve_value_order(
            a in arb_value(), b in arb_value(), bits in prop::sample::select(vec![8u32, 9, 10, 12, 16, 21, 32, 64])
        ) {
            let (ca, cb) = (coordinate(&a, bits), coordinate(&b, bits));
            if a <= b {
                prop_assert!(ca <= cb, "{a:?} <= {b:?} but {ca} > {cb} at {bits} bits");
            } else {
                prop_assert!(ca >= cb, "{a:?} > {b:?} but {ca} < {cb} at {bits} bits");
            }
            prop_assert!(bits == 64 || ca < 1 << bits);
        }

        #[test]
        fn fields_cover_the_coordinates_they_match(v in arb_value(), bits in 8u32..=64) {
            let mut fields = vec![Field::Any, Field::Typed(v.kind()), Field::Actual(v.clone())];
            if let Value::Str(s) = &v {
                let cut = s.char_indices().nth(s.chars().count() / 2).map_or(0, |(i, _)| i);
                fields.push(Field::Prefix(s[..cut].to_owned()));
            }
            if matches!(v.kind(), Kind::Int | Kind::Float | Kind::Str) {
                fields.push(Field::Range(Range::new(v.clone(), v.clone(), true).unwrap()));
            }
            let c = coordinate(&v, bits);
            for field in fields {
                prop_assert!(field.matches(&v));
                let (lo, hi) = interval(&field, bits).expect("a field that matches is not empty");
                prop_assert!(lo <= c && c <= hi, "{field:?}: {c} outside {lo}..={hi}");
            }
        }
    }

    #[test]
    fn kinds_occupy_their_own_slices_in_value_order() {
        let bits = 32;
        let slice = |kind| interval(&Field::Typed(kind), bits).unwrap();
        let kinds = [Kind::Int, Kind::Float, Kind::Str, Kind::Bool, Kind::Bytes];
        for pair in kinds.windows(2) {
            assert_eq!(slice(pair[0]).1 + 1, slice(pair[1]).0);
        }
        assert_eq!(slice(Kind::Int).0, 0);
        assert_eq!(interval(&Field::Any, bits), Some((0, slice(Kind::Bytes).1)));
        assert_eq!(coordinate(&Value::Int(i64::MIN), bits), 0);
        assert_eq!(coordinate(&Value::Int(0), bits), 1 << 28);
        assert_eq!(coordinate(&Value::Bool(true), bits), (3 << 29) | (1 << 28));
        assert!(coordinate(&Value::Float(-0.0), bits) <= coordinate(&Value::Float(0.0), bits));
    }

    #[test]
    fn empty_ranges_match_nothing() {
        let empty = Range::new(Value::Int(5), Value::Int(5), false).unwrap();
        assert_eq!(interval(&Field::Range(empty), 32), None);
        let reversed = Range::new(Value::Int(9), Value::Int(1), true).unwrap();
        assert_eq!(interval(&Field::Range(reversed), 32), None);
        let one = Range::new(Value::Int(5), Value::Int(5), true).unwrap();
        let c = coordinate(&Value::Int(5), 32);
        assert_eq!(interval(&Field::Range(one), 32), Some((c, c)));
    }
}
