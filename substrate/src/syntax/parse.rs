//! The parser of the text syntax: a hand-written recursive descent over the
//! characters of one line, reporting the first error with its 1-based column.

use std::str::FromStr;

use super::NAN_PAYLOAD_MASK;
use crate::template::{Field, Range, Template};
use crate::tuple::{Kind, Tuple, Value};

/// Why a text is not a tuple or a template: where, what the grammar wanted
/// there, and what it found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: expected {expected}, found {found}")]
pub struct ParseError {
    /// 1-based, counted in chars.
    pub column: usize,
    pub expected: String,
    pub found: String,
}

/// Parses a tuple: `("task", 42, -3.5, true, b"00ff")`.
pub fn parse_tuple(text: &str) -> Result<Tuple, ParseError> {
    let mut parser = Parser { src: text, pos: 0 };
    let fields = parser.list(Mode::Tuple)?;
    fields
        .into_iter()
        .map(|(start, end, field)| match field {
            Field::Actual(v) => Ok(v),
            _ => Err(parser.error_found(
                start,
                "a value",
                format!("the template field '{}'", &text[start..end]),
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Tuple::new)
}

/// Parses a template: `("task", ?int, *, 10..20, 1.5..=2.5, "img-"*)`.
pub fn parse_template(text: &str) -> Result<Template, ParseError> {
    let mut parser = Parser { src: text, pos: 0 };
    let fields = parser.list(Mode::Template)?;
    Ok(Template::new(
        fields.into_iter().map(|(_, _, field)| field).collect(),
    ))
}

impl FromStr for Tuple {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_tuple(s)
    }
}

impl FromStr for Template {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_template(s)
    }
}

/// What the list holds, for the wording of errors.
#[derive(Clone, Copy)]
enum Mode {
    Tuple,
    Template,
}

impl Mode {
    fn item(self) -> &'static str {
        match self {
            Mode::Tuple => "a value",
            Mode::Template => "a field",
        }
    }

    fn item_or_close(self) -> &'static str {
        match self {
            Mode::Tuple => "a value or ')'",
            Mode::Template => "a field or ')'",
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the next char.
    pos: usize,
}

impl<'a> Parser<'a> {
    /// `( item, item, ... )` followed by the end of the text; each item with
    /// its byte span.
    fn list(&mut self, mode: Mode) -> Result<Vec<(usize, usize, Field)>, ParseError> {
        self.skip_ws();
        if !self.eat('(') {
            return Err(self.error(self.pos, "'('"));
        }
        self.skip_ws();
        let mut fields = Vec::new();
        if !self.eat(')') {
            let mut expected = mode.item_or_close();
            loop {
                let start = self.pos;
                let field = self.field(expected)?;
                fields.push((start, self.pos, field));
                self.skip_ws();
                if self.eat(')') {
                    break;
                }
                if !self.eat(',') {
                    return Err(self.error(self.pos, "',' or ')'"));
                }
                self.skip_ws();
                expected = mode.item();
            }
        }
        self.skip_ws();
        if self.pos < self.src.len() {
            return Err(self.error(self.pos, "the end of the text"));
        }
        Ok(fields)
    }

    fn field(&mut self, expected: &str) -> Result<Field, ParseError> {
        if self.eat('*') {
            return Ok(Field::Any);
        }
        if self.eat('?') {
            let start = self.pos;
            let word = self.word();
            return Kind::from_name(word).map(Field::Typed).ok_or_else(|| {
                self.error(start, "a kind: int, float, str, bool or bytes")
                    .with_word(word)
            });
        }
        let lo_start = self.pos;
        let lo = self.value(expected)?;
        let end = self.pos;
        self.skip_ws();
        if let Value::Str(prefix) = &lo
            && self.eat('*')
        {
            return Ok(Field::Prefix(prefix.clone()));
        }
        if !self.src[self.pos..].starts_with("..") {
            self.pos = end;
            return Ok(Field::Actual(lo));
        }
        self.pos += 2;
        let inclusive = self.eat('=');
        self.skip_ws();
        let hi_start = self.pos;
        let hi = self.value("the range's upper bound")?;
        let hi_end = self.pos;
        let (lo_kind, hi_kind) = (lo.kind(), hi.kind());
        Range::new(lo, hi, inclusive)
            .map(Field::Range)
            .map_err(|_| {
                if matches!(lo_kind, Kind::Int | Kind::Float | Kind::Str) {
                    self.error_found(
                        hi_start,
                        &format!("an upper bound of the lower bound's kind, {lo_kind}"),
                        format!("the {hi_kind} '{}'", &self.src[hi_start..hi_end]),
                    )
                } else {
                    self.error_found(
                        lo_start,
                        "a range bound of kind int, float or str",
                        format!("a {lo_kind}"),
                    )
                }
            })
    }

    fn value(&mut self, expected: &str) -> Result<Value, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some('"') => self.string().map(Value::Str),
            Some('b') if self.peek_second() == Some('"') => self.bytes(),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some(c) if c.is_alphabetic() => match self.word() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                "inf" => Ok(Value::Float(f64::INFINITY)),
                "nan" => self.nan(false),
                word => Err(self.error(start, expected).with_word(word)),
            },
            _ => Err(self.error(start, expected)),
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.eat('-') && self.peek().is_some_and(char::is_alphabetic) {
            let word_start = self.pos;
            return match self.word() {
                "inf" => Ok(Value::Float(f64::NEG_INFINITY)),
                "nan" => self.nan(true),
                word => Err(self
                    .error(word_start, "a number, 'inf' or 'nan'")
                    .with_word(word)),
            };
        }
        self.digits("a digit")?;
        let mut float = false;
        if self.peek() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            self.digits("a digit")?;
            float = true;
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.pos += 1;
            let _ = self.eat('+') || self.eat('-');
            self.digits("a digit of the exponent")?;
            float = true;
        }
        let text = &self.src[start..self.pos];
        if float {
            // `inf` is written as such; a literal that rounds to it is an
            // overflow, like an int's.
            let v = text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    self.error(start, "a float of magnitude at most 1.7976931348623157e308")
                        .with_word(text)
                })?;
            Ok(Value::Float(v))
        } else {
            let v = text.parse::<i64>().map_err(|_| {
                self.error(
                    start,
                    "an integer from -9223372036854775808 to 9223372036854775807",
                )
                .with_word(text)
            })?;
            Ok(Value::Int(v))
        }
    }

    /// After `nan` or `-nan`: an optional `(0x<payload>)`.
    fn nan(&mut self, negative: bool) -> Result<Value, ParseError> {
        let mut payload = f64::NAN.to_bits() & NAN_PAYLOAD_MASK;
        if self.eat('(') {
            if !self.src[self.pos..].starts_with("0x") {
                return Err(self.error(self.pos, "'0x'"));
            }
            self.pos += 2;
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            let text = &self.src[start..self.pos];
            payload = u64::from_str_radix(text, 16)
                .ok()
                .filter(|p| (1..=NAN_PAYLOAD_MASK).contains(p))
                .ok_or_else(|| {
                    self.error(start, "a NaN payload from 0x1 to 0xfffffffffffff")
                        .with_word(text)
                })?;
            if !self.eat(')') {
                return Err(self.error(self.pos, "a hex digit or ')'"));
            }
        }
        let sign = if negative { 1 << 63 } else { 0 };
        let bits = f64::INFINITY.to_bits() | payload | sign;
        Ok(Value::Float(f64::from_bits(bits)))
    }

    /// A string literal, starting at its opening quote.
    fn string(&mut self) -> Result<String, ParseError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => return Err(self.error(at, "'\"' closing the string")),
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape()?),
                Some(c) => out.push(c),
            }
        }
    }

    /// The rest of an escape, after its backslash.
    fn escape(&mut self) -> Result<char, ParseError> {
        let at = self.pos;
        match self.bump() {
            Some('"') => Ok('"'),
            Some('\\') => Ok('\\'),
            Some('n') => Ok('\n'),
            Some('t') => Ok('\t'),
            Some('r') => Ok('\r'),
            Some('u') => {
                if !self.eat('{') {
                    return Err(self.error(self.pos, "'{'"));
                }
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                    self.pos += 1;
                }
                let text = &self.src[start..self.pos];
                let c = u32::from_str_radix(text, 16)
                    .ok()
                    .filter(|_| text.len() <= 6)
                    .and_then(char::from_u32)
                    .ok_or_else(|| {
                        self.error(start, "a Unicode scalar value in hex")
                            .with_word(text)
                    })?;
                if !self.eat('}') {
                    return Err(self.error(self.pos, "a hex digit or '}'"));
                }
                Ok(c)
            }
            _ => Err(self.error(at, "an escape: \\\", \\\\, \\n, \\t, \\r or \\u{...}")),
        }
    }

    /// `b"<hex>"`, starting at the `b`.
    fn bytes(&mut self) -> Result<Value, ParseError> {
        self.pos += 2;
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let hex = &self.src[start..self.pos];
        if self.peek() != Some('"') {
            return Err(self.error(self.pos, "a hex digit or '\"'"));
        }
        if hex.len() % 2 == 1 {
            return Err(self.error_found(
                self.pos,
                "an even number of hex digits",
                format!("{} digits", hex.len()),
            ));
        }
        self.pos += 1;
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| self.error(start, "hex digits").with_word(hex))?;
        Ok(Value::Bytes(bytes))
    }

    /// One or more ASCII digits.
    fn digits(&mut self, expected: &str) -> Result<(), ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error(start, expected));
        }
        Ok(())
    }

    /// A run of letters, digits and underscores (possibly empty).
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.bump();
        }
        &self.src[start..self.pos]
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.src[self.pos..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.pos += c.len_utf8();
        }
        hit
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// An error at byte offset `pos`, naming the char found there.
    fn error(&self, pos: usize, expected: &str) -> ParseError {
        let found = match self.src[pos..].chars().next() {
            Some(c) => format!("'{}'", c.escape_debug()),
            None => "the end of the text".to_owned(),
        };
        self.error_found(pos, expected, found)
    }

    fn error_found(&self, pos: usize, expected: &str, found: String) -> ParseError {
        ParseError {
            column: self.src[..pos].chars().count() + 1,
            expected: expected.to_owned(),
            found,
        }
    }
}

impl ParseError {
    /// Names a whole word as what was found, when there is one.
    fn with_word(mut self, word: &str) -> ParseError {
        if !word.is_empty() {
            self.found = format!("'{word}'");
        }
        self
    }
}
