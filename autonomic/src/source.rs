//! Errors that point into a TOML file: `file:line:col: field: what was expected`.
//!
//! Serde errors from `toml` carry a byte span; validation errors carry a field
//! path such as `resources[1].billing`. Both are turned into a line and column
//! here, and the field path of a span is recovered from the text around it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::clock::Secs;

/// A file that could not be read or is not what it should be.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{at}: {field}{message}", field = field_prefix(field))]
    Invalid {
        at: Location,
        field: String,
        message: String,
    },
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

/// `file:line:col`, or just `file` when the place is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: Option<(usize, usize)>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some((line, col)) => write!(f, "{}:{line}:{col}", self.file),
            None => write!(f, "{}", self.file),
        }
    }
}

/// Reads a file to a string, naming it on failure.
pub fn read(path: &Path) -> Result<String, SourceError> {
    std::fs::read_to_string(path).map_err(|source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parses TOML text, turning a serde error into one that names line and field.
pub fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, SourceError> {
    toml::from_str(text).map_err(|error| {
        let (line, mut field) = match error.span() {
            // An empty span at 0: the document itself (a missing top-level key).
            Some(span) if span.end == 0 => (Some((1, 1)), String::new()),
            Some(span) => (Some(line_col(text, span.start)), field_at(text, span.start)),
            None => (None, String::new()),
        };
        let mut message = humane(error.message());
        if let Some(missing) = error.message().trim().strip_prefix("missing field ") {
            let missing = missing.trim_matches('`');
            field = if field.is_empty() {
                missing.to_string()
            } else {
                format!("{field}.{missing}")
            };
            message = "missing".to_string();
        }
        SourceError::Invalid {
            at: Location {
                file: file.to_string(),
                line,
            },
            field,
            message,
        }
    })
}

/// A validation error on `field` (`resources[1].max`), located in `text`.
pub fn invalid(file: &str, text: &str, field: &str, message: String) -> SourceError {
    SourceError::Invalid {
        at: Location {
            file: file.to_string(),
            line: locate_field(text, field).map(|offset| line_col(text, offset)),
        },
        field: field.to_string(),
        message,
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Rewrites serde's "unknown variant `x`, expected `a` or `b`" the way users read it.
fn humane(message: &str) -> String {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("unknown variant ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        return format!("expected {}, found {}", quote(expected), quote(found));
    }
    if let Some(rest) = message.strip_prefix("unknown field ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        return format!("unknown key {}; expected {}", quote(found), quote(expected));
    }
    quote(message)
}

fn quote(text: &str) -> String {
    text.replace('`', "\"")
}

/// The dotted path of the key whose value starts at `offset`.
fn field_at(text: &str, offset: usize) -> String {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = &text[start..];
    let line = line.split('\n').next().unwrap_or("");
    let key = match line.split_once('=') {
        Some((key, _)) if !line.trim_start().starts_with('[') => key.trim().trim_matches('"'),
        _ => "",
    };
    let inner = inner_key(&text[start..offset.min(text.len())]);
    let key = match inner {
        Some(inner) if !key.is_empty() && inner != key => format!("{key}.{inner}"),
        _ => key.to_string(),
    };
    let key = key.as_str();
    let header = line.trim_start().starts_with('[');
    let section = section_before(text, if header { start + line.len() } else { start });
    match (section.is_empty(), key.is_empty()) {
        (_, true) => section,
        (true, false) => key.to_string(),
        (false, false) => format!("{section}.{key}"),
    }
}

/// In `a = { b = 1, c = `, the key of the innermost value: `c`.
fn inner_key(before: &str) -> Option<&str> {
    let before = before[..before.rfind('=')?].trim_end();
    // After the last character that cannot be in a key (which may be
    // several bytes long: a BOM, an accent).
    let start = before
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_alphanumeric() || "_-\".".contains(c)))
        .map_or(0, |(i, c)| i + c.len_utf8());
    Some(before[start..].trim_matches('"')).filter(|k| !k.is_empty())
}

/// The table header in force at `offset`: `objective` or `resources[1]`.
fn section_before(text: &str, offset: usize) -> String {
    let mut section = String::new();
    let mut counts: Vec<(String, usize)> = Vec::new();
    for line in text[..offset].lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            let name = name.trim().to_string();
            let index = match counts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => {
                    *count += 1;
                    *count - 1
                }
                None => {
                    counts.push((name.clone(), 1));
                    0
                }
            };
            section = format!("{name}[{index}]");
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            section = name.trim().to_string();
        }
    }
    section
}

/// Byte offset of the line defining `field` (`resources[1].max`), if written.
fn locate_field(text: &str, field: &str) -> Option<usize> {
    let quoted = field.strip_suffix('"').and_then(|f| f.rsplit_once(".\""));
    let (section, key) = match quoted.or_else(|| field.rsplit_once('.')) {
        Some((section, key)) => (section, key),
        None if field.contains('[') => (field, ""),
        None => ("", field),
    };
    let mut offset = 0;
    let mut header_at = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            header_at = (section_before(text, offset + line.len()) == section).then_some(offset);
        } else if (header_at.is_some() || section.is_empty())
            && !key.is_empty()
            && trimmed
                .split('=')
                .next()
                .map(|k| k.trim().trim_matches('"'))
                == Some(key)
            && trimmed.contains('=')
        {
            return Some(offset + line.len() - line.trim_start().len());
        }
        offset += line.len();
    }
    header_at
}

/// A humane duration ("30s", "2h") or a number of seconds.
pub fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Secs, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(f64),
    }
    let expected = "a duration like \"30s\", \"5m\" or \"2h\"";
    match Raw::deserialize(d) {
        Ok(Raw::Number(n)) if n.is_finite() && n >= 0.0 => Ok(n),
        Ok(Raw::Number(n)) => Err(serde::de::Error::custom(format!(
            "expected {expected}, found {n}"
        ))),
        Ok(Raw::Text(text)) => humantime::parse_duration(text.trim())
            .map(|d| d.as_secs_f64())
            .map_err(|_| {
                serde::de::Error::custom(format!("expected {expected}, found \"{text}\""))
            }),
        Err(_) => Err(serde::de::Error::custom(format!("expected {expected}"))),
    }
}

/// An optional humane duration.
pub fn some_secs<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Secs>, D::Error> {
    secs(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[objective]\nbudget = 5.0\n\n[[resources]]\nname = \"a\"\n\n[[resources]]\nname = \"b\"\nmax = 0\n";

    #[test]
    fn a_key_after_a_multibyte_character_is_cut_on_a_character_boundary() {
        // Found by the `policy` fuzz target: a BOM inside a key panicked.
        assert_eq!(inner_key("x = { task_estimat\u{feff}e = "), Some("e"));
        assert_eq!(inner_key("{ é = 1, ñame = "), Some("ñame"));
    }

    #[test]
    fn finds_the_field_path_of_an_offset() {
        let at = TEXT.find("max").unwrap();
        assert_eq!(field_at(TEXT, at + 6), "resources[1].max");
        assert_eq!(
            field_at(TEXT, TEXT.find("5.0").unwrap()),
            "objective.budget"
        );
    }

    #[test]
    fn locates_a_field_by_its_path() {
        let offset = locate_field(TEXT, "resources[1].max").unwrap();
        assert_eq!(line_col(TEXT, offset), (9, 1));
        let offset = locate_field(TEXT, "resources[1]").unwrap();
        assert_eq!(line_col(TEXT, offset), (7, 1));
        assert_eq!(locate_field(TEXT, "scaling.interval"), None);
    }

    #[test]
    fn rewrites_unknown_variants() {
        assert_eq!(
            humane("unknown variant `weekly`, expected `per-second` or `per-hour`"),
            "expected \"per-second\" or \"per-hour\", found \"weekly\""
        );
    }
}
