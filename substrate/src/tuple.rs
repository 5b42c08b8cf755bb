//! Values and tuples: what the space stores.
//!
//! A [`Tuple`] is an ordered list of typed [`Value`]s. Values have a total
//! order and a total equality (floats compare by `f64::total_cmp`, so `NaN`
//! equals itself and `-0.0` differs from `0.0`); matching, indexing and the
//! keyspace all rely on that one notion of equality.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

mod borrowed_str;
mod raw_bytes;

/// The type of a value, as written in a typed formal (`?int`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Int,
    Float,
    Str,
    Bool,
    Bytes,
}

impl Kind {
    /// The name used in the text syntax: `int`, `float`, `str`, `bool`, `bytes`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Str => "str",
            Kind::Bool => "bool",
            Kind::Bytes => "bytes",
        }
    }

    /// The kind named `name` in the text syntax, if any.
    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "int" => Kind::Int,
            "float" => Kind::Float,
            "str" => Kind::Str,
            "bool" => Kind::Bool,
            "bytes" => Kind::Bytes,
            _ => return None,
        })
    }
}

/// One field of a tuple.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(#[serde(deserialize_with = "borrowed_str::deserialize")] String),
    Bool(bool),
    Bytes(#[serde(with = "raw_bytes")] Vec<u8>),
}

impl Value {
    pub fn kind(&self) -> Kind {
        match self {
            Value::Int(_) => Kind::Int,
            Value::Float(_) => Kind::Float,
            Value::Str(_) => Kind::Str,
            Value::Bool(_) => Kind::Bool,
            Value::Bytes(_) => Kind::Bytes,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(v) => Some(v),
            _ => None,
        }
    }

    /// Bytes this value takes on the wire, roughly; used for size limits.
    pub fn encoded_len_hint(&self) -> usize {
        match self {
            Value::Int(_) | Value::Float(_) => 9,
            Value::Bool(_) => 2,
            Value::Str(s) => s.len() + 5,
            Value::Bytes(b) => b.len() + 5,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Value {
    /// Values of different kinds order by kind; within a kind by value
    /// (floats by `total_cmp`, strings and bytes lexicographically).
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            _ => self.kind().cmp(&other.kind()),
        }
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Int(v) => {
                state.write_u8(0);
                v.hash(state)
            }
            Value::Float(v) => {
                state.write_u8(1);
                v.to_bits().hash(state)
            }
            Value::Str(v) => {
                state.write_u8(2);
                v.hash(state)
            }
            Value::Bool(v) => {
                state.write_u8(3);
                v.hash(state)
            }
            Value::Bytes(v) => {
                state.write_u8(4);
                v.hash(state)
            }
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}

/// An ordered list of values. The empty tuple is allowed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tuple(Vec<Value>);

impl Tuple {
    pub fn new(fields: Vec<Value>) -> Self {
        Tuple(fields)
    }

    pub fn fields(&self) -> &[Value] {
        &self.0
    }

    pub fn into_fields(self) -> Vec<Value> {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&Value> {
        self.0.get(index)
    }

    /// Bytes this tuple takes on the wire, roughly; used for size limits.
    pub fn encoded_len_hint(&self) -> usize {
        4 + self.0.iter().map(Value::encoded_len_hint).sum::<usize>()
    }
}

impl From<Vec<Value>> for Tuple {
    fn from(fields: Vec<Value>) -> Self {
        Tuple(fields)
    }
}

/// Builds a [`Tuple`] from expressions convertible into [`Value`]:
/// `tuple!("task", 42_i64, 1.5, true)`.
#[macro_export]
macro_rules! tuple {
    ($($v:expr),* $(,)?) => {
        $crate::tuple::Tuple::new(vec![$($crate::tuple::Value::from($v)),*])
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_compare_totally() {
        assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
        assert_ne!(Value::Float(0.0), Value::Float(-0.0));
        assert!(Value::Float(-1.0) < Value::Float(2.5));
    }

    #[test]
    fn kinds_order_before_values() {
        assert!(Value::Int(i64::MAX) < Value::Float(f64::NEG_INFINITY));
        assert!(Value::Str("z".into()) < Value::Bool(false));
    }

    #[test]
    fn macro_builds_tuples() {
        let t = tuple!("task", 7_i64, 0.5, false, vec![0xffu8]);
        assert_eq!(t.len(), 5);
        assert_eq!(t.get(0).and_then(Value::as_str), Some("task"));
        assert_eq!(t.get(1).and_then(Value::as_int), Some(7));
        assert_eq!(t.get(4).and_then(Value::as_bytes), Some(&[0xffu8][..]));
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in [Kind::Int, Kind::Float, Kind::Str, Kind::Bool, Kind::Bytes] {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(Kind::from_name("integer"), None);
    }
}
