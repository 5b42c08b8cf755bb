//! Keyword values to coordinates on one axis of the keyspace, preserving
//! [`Value`]'s total order, and template fields to coordinate intervals.
//!
//! An axis has `bits` bits. The top [`KIND_BITS`] hold the value's kind (in
//! the kinds' order, which is also `Value`'s order across kinds); the rest
//! hold the high bits of a 64-bit order key of the value, built so that its
//! high bits tell apart the values real tuples carry:
//!
//! - ints like a float: sign, bit length (6 bits), then the bits below the
//!   leading one, so on a 29-bit axis (D = 2) every int in `-2^23..2^23`
//!   has a coordinate of its own and larger ones keep their 22 most
//!   significant bits (the old key, the top bits of the int, put every int
//!   of `±2^34` on one point);
//! - strings 7 bits a byte: printable ASCII (`0x20..=0x7e`) one code each,
//!   the other bytes share a few codes and end the key there (so the order
//!   holds, see [`str_key`]); nine bytes fit, four on a 29-bit axis;
//! - floats by the usual `total_cmp` bit trick (sign, exponent, mantissa);
//!   bytes by their first eight bytes big-endian; bools as 0 or the top bit.
//!
//! So `a <= b` implies `coordinate(a) <= coordinate(b)`; distinct values may
//! share a coordinate (a truncated key), never swap places.

use crate::template::Field;
use crate::tuple::{Kind, Value};

/// Bits that hold the kind: five kinds fit in three.
pub(super) const KIND_BITS: u32 = 3;

const TOP: u64 = 1 << 63;
/// Bits of an int's key below its sign and bit length.
const MANTISSA: u32 = 57;
/// Bits of a string's key per byte.
const CHAR_BITS: u32 = 7;
/// Bytes a string's key holds.
const CHARS: usize = (64 / CHAR_BITS) as usize;

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
            let lo = str_key(prefix.as_bytes(), false);
            let hi = str_key(prefix.as_bytes(), true);
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
/// kind (ties allowed: values that differ only past what the key holds).
fn order_key(value: &Value) -> u64 {
    match value {
        Value::Int(v) => int_key(*v),
        Value::Float(v) => {
            let b = v.to_bits();
            if b & TOP != 0 { !b } else { b | TOP }
        }
        Value::Str(s) => str_key(s.as_bytes(), false),
        Value::Bytes(b) => bytes_key(b),
        Value::Bool(v) => {
            if *v {
                TOP
            } else {
                0
            }
        }
    }
}

/// An int as sign, bit length and the bits below its leading one: the key
/// of `n >= 0` is `1`, its length (0 to 63, six bits), its lower bits left
/// aligned; a negative int `n` has the complement of the key of `-n - 1`.
fn int_key(v: i64) -> u64 {
    fn magnitude(n: u64) -> u64 {
        let length = u64::from(64 - n.leading_zeros());
        let below = length.saturating_sub(1) as u32;
        let low = if below == 0 {
            0
        } else {
            n & ((1 << below) - 1)
        };
        let mantissa = if below <= MANTISSA {
            low << (MANTISSA - below)
        } else {
            low >> (below - MANTISSA)
        };
        TOP | (length << MANTISSA) | mantissa
    }
    if v >= 0 {
        magnitude(v as u64)
    } else {
        !magnitude(!v as u64)
    }
}

/// A string's key: 7 bits a byte, the first [`CHARS`] bytes, left aligned.
/// A printable ASCII byte gets a code of its own (2 to 96); the end of the
/// string is 0; a control byte shares code 1, and a byte from `0x7f` up
/// shares one of 26 codes above the printable ones: such a byte ends the
/// key, so that two strings equal up to it tie instead of being ordered by
/// what follows. With `fill` the rest of the key is ones instead of the
/// end's zeros: the highest key of a string with this prefix.
fn str_key(bytes: &[u8], fill: bool) -> u64 {
    let mut key = 0u64;
    let mut used = 0;
    for &b in bytes.iter().take(CHARS) {
        let (code, exact) = match b {
            0x20..=0x7e => (u64::from(b - 0x20) + 2, true),
            0x00..=0x1f => (1, false),
            _ => (97 + u64::from(b - 0x7f) / 5, false),
        };
        key = (key << CHAR_BITS) | code;
        used += 1;
        if !exact {
            break;
        }
    }
    // Nine codes leave one bit; none leave all 64.
    let rest = 64 - used * CHAR_BITS;
    let key = key.checked_shl(rest).unwrap_or(0);
    let ones = 1u64.checked_shl(rest).unwrap_or(0).wrapping_sub(1);
    if fill { key | ones } else { key }
}

/// The first eight bytes big-endian, padded with zeros.
fn bytes_key(bytes: &[u8]) -> u64 {
    let mut key = [0; 8];
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
            MIXED.prop_map(Value::Str),
            (-300i64..300).prop_map(Value::Int),
            any::<bool>().prop_map(Value::Bool),
            prop::collection::vec(any::<u8>(), 0..10).prop_map(Value::Bytes),
        ]
    }

    /// Strings of printable, control and non-ASCII bytes: those that end
    /// a string's key early.
    const MIXED: &str = "[a~ \\x00\\x1f\\x7f\u{e9}\u{ff}\u{10348}]{0,12}";

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

    proptest! {
        /// Neighbours, where a truncated key would swap them if anywhere.
        #[test]
        fn neighbours_keep_their_order(
            a in any::<i64>(), step in 0u64..1_000, prefix in MIXED, x in MIXED, y in MIXED,
            bits in prop::sample::select(vec![8u32, 11, 21, 32, 64]),
        ) {
            let b = a.saturating_add_unsigned(step);
            prop_assert!(coordinate(&Value::Int(a), bits) <= coordinate(&Value::Int(b), bits));
            let (x, y) = (format!("{prefix}{x}"), format!("{prefix}{y}"));
            let (cx, cy) = (coordinate(&Value::Str(x.clone()), bits), coordinate(&Value::Str(y.clone()), bits));
            if x <= y {
                prop_assert!(cx <= cy, "{x:?} <= {y:?} but {cx} > {cy}");
            } else {
                prop_assert!(cx >= cy, "{x:?} > {y:?} but {cx} < {cy}");
            }
            let prefixed = Field::Prefix(prefix);
            let (lo, hi) = interval(&prefixed, bits).unwrap();
            prop_assert!(lo <= cx && cx <= hi && lo <= cy && cy <= hi);
        }

        /// On the axis of D = 2 (32 bits), ints below 2^23 in magnitude
        /// have coordinates of their own, and so do printable strings that
        /// differ in their first four bytes.
        #[test]
        fn distinct_small_ints_and_short_strings_stay_apart(
            a in -(1i64 << 23)..(1 << 23), b in -(1i64 << 23)..(1 << 23),
            x in "[ -~]{1,12}", y in "[ -~]{1,12}",
        ) {
            if a != b {
                prop_assert_ne!(coordinate(&Value::Int(a), 32), coordinate(&Value::Int(b), 32));
            }
            let four = |s: &str| s.bytes().chain(std::iter::repeat(0)).take(4).collect::<Vec<_>>();
            if four(&x) != four(&y) {
                prop_assert_ne!(coordinate(&Value::Str(x), 32), coordinate(&Value::Str(y), 32));
            }
        }
    }

    #[test]
    fn big_ints_keep_their_leading_bits() {
        // Past 2^23 neighbours may share a point, but a doubling never does.
        let c = |v: i64| coordinate(&Value::Int(v), 32);
        for shift in 0..62 {
            assert!(c(1 << shift) < c(1 << (shift + 1)), "2^{shift}");
            assert!(c(-(1 << (shift + 1))) < c(-(1 << shift)), "-2^{shift}");
        }
        assert_eq!(c(i64::MIN), 0);
        assert_eq!(c(i64::MAX), (1 << 29) - 1);
        assert_eq!(c(-1) + 1, c(0));
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
