//! Templates: the patterns `in`, `rd`, `scan` and `subscribe` match tuples with.
//!
//! Linda semantics: a [`Template`] matches a [`Tuple`] of equal arity whose
//! every field matches the template's field at the same position.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::tuple::{Kind, Tuple, Value};

/// One field of a template.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Field {
    /// Matches exactly this value.
    Actual(Value),
    /// `*`: matches any value.
    Any,
    /// `?int`, `?str`, ...: matches any value of this kind.
    Typed(Kind),
    /// `lo..hi` or `lo..=hi`: matches values of the bounds' kind between them.
    Range(Range),
    /// `"prefix"*`: matches strings that start with the prefix.
    Prefix(String),
}

/// A range of ints, floats or strings; both bounds have the same kind.
/// Built only through [`Range::new`], which checks that.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Range {
    lo: Value,
    hi: Value,
    inclusive: bool,
}

/// Why a template could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("range bounds must be both int, both float or both str, found {lo} and {hi}")]
    RangeKinds { lo: &'static str, hi: &'static str },
}

impl Range {
    pub fn new(lo: Value, hi: Value, inclusive: bool) -> Result<Range, TemplateError> {
        let ok = matches!(
            (&lo, &hi),
            (Value::Int(_), Value::Int(_))
                | (Value::Float(_), Value::Float(_))
                | (Value::Str(_), Value::Str(_))
        );
        if !ok {
            return Err(TemplateError::RangeKinds {
                lo: lo.kind().name(),
                hi: hi.kind().name(),
            });
        }
        Ok(Range { lo, hi, inclusive })
    }

    pub fn lo(&self) -> &Value {
        &self.lo
    }

    pub fn hi(&self) -> &Value {
        &self.hi
    }

    pub fn inclusive(&self) -> bool {
        self.inclusive
    }

    pub fn contains(&self, value: &Value) -> bool {
        value.kind() == self.lo.kind()
            && *value >= self.lo
            && if self.inclusive {
                *value <= self.hi
            } else {
                *value < self.hi
            }
    }
}

impl Field {
    pub fn matches(&self, value: &Value) -> bool {
        match self {
            Field::Actual(v) => v == value,
            Field::Any => true,
            Field::Typed(kind) => value.kind() == *kind,
            Field::Range(range) => range.contains(value),
            Field::Prefix(prefix) => value.as_str().is_some_and(|s| s.starts_with(prefix)),
        }
    }

    /// The value this field requires, when it is an actual value.
    pub fn actual(&self) -> Option<&Value> {
        match self {
            Field::Actual(v) => Some(v),
            _ => None,
        }
    }
}

/// A pattern over tuples of one arity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Template(Vec<Field>);

impl Template {
    pub fn new(fields: Vec<Field>) -> Self {
        Template(fields)
    }

    /// The template that matches exactly `tuple`.
    pub fn exact(tuple: &Tuple) -> Self {
        Template(tuple.fields().iter().cloned().map(Field::Actual).collect())
    }

    pub fn fields(&self) -> &[Field] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Linda matching: equal arity and every field matches.
    pub fn matches(&self, tuple: &Tuple) -> bool {
        self.0.len() == tuple.len()
            && self
                .0
                .iter()
                .zip(tuple.fields())
                .all(|(field, value)| field.matches(value))
    }

    /// Bytes this template takes on the wire, roughly; used for size limits.
    pub fn encoded_len_hint(&self) -> usize {
        4 + self
            .0
            .iter()
            .map(|f| match f {
                Field::Actual(v) => v.encoded_len_hint(),
                Field::Range(r) => r.lo.encoded_len_hint() + r.hi.encoded_len_hint() + 1,
                Field::Prefix(p) => p.len() + 5,
                Field::Any | Field::Typed(_) => 2,
            })
            .sum::<usize>()
    }
}

impl From<Vec<Field>> for Template {
    fn from(fields: Vec<Field>) -> Self {
        Template(fields)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple;

    fn range(lo: impl Into<Value>, hi: impl Into<Value>, inclusive: bool) -> Field {
        Field::Range(Range::new(lo.into(), hi.into(), inclusive).unwrap())
    }

    #[test]
    fn arity_must_match() {
        let t = Template::new(vec![Field::Any, Field::Any]);
        assert!(t.matches(&tuple!(1_i64, 2_i64)));
        assert!(!t.matches(&tuple!(1_i64)));
        assert!(!t.matches(&tuple!(1_i64, 2_i64, 3_i64)));
    }

    #[test]
    fn every_field_kind_matches() {
        let t = Template::new(vec![
            Field::Actual("task".into()),
            Field::Typed(Kind::Int),
            range(10_i64, 20_i64, false),
            range(1.5, 2.5, true),
            Field::Prefix("img-".into()),
        ]);
        assert!(t.matches(&tuple!("task", 1_i64, 10_i64, 2.5, "img-7")));
        assert!(!t.matches(&tuple!("task", 1_i64, 20_i64, 2.5, "img-7")));
        assert!(!t.matches(&tuple!("task", 1.0, 10_i64, 2.5, "img-7")));
        assert!(!t.matches(&tuple!("task", 1_i64, 10_i64, 2.6, "img-7")));
        assert!(!t.matches(&tuple!("task", 1_i64, 10_i64, 2.5, "im")));
        assert!(!t.matches(&tuple!("tusk", 1_i64, 10_i64, 2.5, "img-7")));
    }

    #[test]
    fn ranges_do_not_cross_kinds() {
        let f = range(0_i64, 10_i64, true);
        assert!(!f.matches(&Value::Float(5.0)));
        assert!(f.matches(&Value::Int(10)));
        let s = range("a", "c", false);
        assert!(s.matches(&Value::Str("bzz".into())));
        assert!(!s.matches(&Value::Str("c".into())));
    }

    #[test]
    fn mixed_range_bounds_are_refused() {
        assert_eq!(
            Range::new(Value::Int(1), Value::Float(2.0), false),
            Err(TemplateError::RangeKinds {
                lo: "int",
                hi: "float"
            })
        );
        assert!(Range::new(Value::Bool(false), Value::Bool(true), true).is_err());
    }

    #[test]
    fn exact_template_matches_only_its_tuple() {
        let t = tuple!("a", 1_i64);
        let tpl = Template::exact(&t);
        assert!(tpl.matches(&t));
        assert!(!tpl.matches(&tuple!("a", 2_i64)));
    }
}
