//! The text syntax of tuples and templates (CONTRACT.md), both ways.
//!
//! ```text
//! tuple:     ("task", 42, -3.5, true, b"00ff", "a \"quoted\" string")
//! template:  ("task", ?int, *, 10..20, 1.5..=2.5, "img-"*, ?bytes)
//! ```
//!
//! `Display` on [`Value`], [`Tuple`], [`Field`] and [`Template`] prints this
//! syntax; [`parse_tuple`] / [`parse_template`] (and `str::parse`) read it
//! back, and `parse(display(x)) == x` for every tuple and template.
//!
//! Details the contract leaves open, fixed here:
//! - Floats print in Rust's shortest round-trip form (`1.0`, `-3.5`, `1e-7`,
//!   `1e16`), always with a `.` or an exponent. The non-finite floats are
//!   `inf`, `-inf`, `nan` and `-nan` (the canonical quiet NaN and its
//!   negation); any other NaN prints its 52-bit payload, `nan(0x1)`, so that
//!   every float value round-trips bit for bit.
//! - Strings escape `\"`, `\\`, `\n`, `\t`, and every other control character
//!   as `\u{hex}`; the parser also accepts `\r` and `\u{hex}` for any char.
//! - Bytes print as lower-case hex, `b"00ff"`; the parser accepts either case.
//! - Ints must fit an i64 and float literals an f64 (`1e999` is an error,
//!   not `inf`); a float literal too small rounds to zero.
//! - Whitespace (any Unicode white space) may surround every token; a
//!   trailing comma is not allowed.
//!
//! Who uses it: the CLI (`out`, `rd`, `in`, `scan` arguments and output) and
//! anything that logs tuples.

mod parse;
#[cfg(test)]
mod tests;

use std::fmt::{self, Write};

pub use parse::{ParseError, parse_template, parse_tuple};

use crate::template::{Field, Template};
use crate::tuple::{Tuple, Value};

/// The mantissa bits of an `f64`: a NaN's payload.
const NAN_PAYLOAD_MASK: u64 = (1 << 52) - 1;

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write_float(f, *v),
            Value::Str(s) => write_str_literal(f, s),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Bytes(bytes) => {
                f.write_str("b\"")?;
                for byte in bytes {
                    write!(f, "{byte:02x}")?;
                }
                f.write_char('"')
            }
        }
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, self.fields())
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Actual(v) => write!(f, "{v}"),
            Field::Any => f.write_char('*'),
            Field::Typed(kind) => write!(f, "?{kind}"),
            Field::Range(range) => {
                let dots = if range.inclusive() { "..=" } else { ".." };
                write!(f, "{}{dots}{}", range.lo(), range.hi())
            }
            Field::Prefix(prefix) => {
                write_str_literal(f, prefix)?;
                f.write_char('*')
            }
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, self.fields())
    }
}

fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    f.write_char('(')?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    f.write_char(')')
}

fn write_float(f: &mut fmt::Formatter<'_>, v: f64) -> fmt::Result {
    let sign = if v.is_sign_negative() { "-" } else { "" };
    if v.is_nan() {
        let payload = v.to_bits() & NAN_PAYLOAD_MASK;
        if payload == f64::NAN.to_bits() & NAN_PAYLOAD_MASK {
            write!(f, "{sign}nan")
        } else {
            write!(f, "{sign}nan(0x{payload:x})")
        }
    } else if v.is_infinite() {
        write!(f, "{sign}inf")
    } else {
        // Debug is the shortest text that parses back to the same bits, and
        // it always carries a `.` or an exponent.
        write!(f, "{v:?}")
    }
}

fn write_str_literal(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}
