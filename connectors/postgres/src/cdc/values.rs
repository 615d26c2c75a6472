//! PostgreSQL text output -> [`ChangeValue`] in the change log's source-independent form.
//!
//! Both paths hand over PostgreSQL's own text output: pgoutput sends every value as its type's
//! output function writes it, and the snapshot selects `column::text`. Both sessions run with
//! `DateStyle = ISO`, `TimeZone = UTC`, `bytea_output = hex` and `extra_float_digits = 1`, so
//! the text already follows the conventions for most types (integers, numeric, floats with
//! `NaN` / `Infinity`, dates, times, timestamps, text, JSON, UUID). What is left is converted
//! here: booleans (`t` / `f` from pgoutput, `true` / `false` from `::text`), timestamps with
//! zone (`2024-01-02 03:04:05.5+00` -> `2024-01-02T03:04:05.5Z`, other offsets converted to
//! UTC) and bytea (`\x0102` -> the bytes).

use chrono::{NaiveDateTime, Timelike};
use fdi_connector::change::ChangeValue;

/// How a column's text becomes a value, by its (base) type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Text,
    Bool,
    TimestampTz,
    Bytea,
}

impl ValueKind {
    /// The kind for a type name (a domain's base type name, when the column's type is one).
    pub fn of(base_type: &str) -> Self {
        match base_type {
            "bool" => ValueKind::Bool,
            "timestamptz" => ValueKind::TimestampTz,
            "bytea" => ValueKind::Bytea,
            _ => ValueKind::Text,
        }
    }

    /// Convert one non-NULL value from its text output.
    pub fn convert(self, text: &[u8]) -> ChangeValue {
        match self {
            ValueKind::Bytea => ChangeValue::Bytes(decode_bytea(text)),
            ValueKind::Text => ChangeValue::Text(utf8(text)),
            ValueKind::Bool => ChangeValue::Text(
                match text {
                    b"t" | b"true" => "true",
                    b"f" | b"false" => "false",
                    other => return ChangeValue::Text(utf8(other)),
                }
                .to_string(),
            ),
            ValueKind::TimestampTz => ChangeValue::Text(timestamptz_utc(&utf8(text))),
        }
    }
}

fn utf8(b: &[u8]) -> String {
    // Both connections use client_encoding UTF8, so this is never lossy in practice.
    String::from_utf8_lossy(b).into_owned()
}

/// `bytea` output in either format: hex (`\x0a0b`, the default) or escape (`a\000\\`).
pub fn decode_bytea(text: &[u8]) -> Vec<u8> {
    if let Some(hex) = text.strip_prefix(b"\\x") {
        let nibble = |c: u8| match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => 0,
        };
        return hex
            .chunks_exact(2)
            .map(|p| (nibble(p[0]) << 4) | nibble(p[1]))
            .collect();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' {
            if text.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if let Some(oct) = text.get(i + 1..i + 4)
                && oct.iter().all(|c| (b'0'..=b'7').contains(c))
            {
                out.push(((oct[0] - b'0') << 6) | ((oct[1] - b'0') << 3) | (oct[2] - b'0'));
                i += 4;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

/// A `timestamptz` in ISO output (`YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM[:SS]]`) as UTC
/// `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`. `infinity`, `-infinity`, BC dates and anything else that
/// does not parse come back unchanged.
pub fn timestamptz_utc(s: &str) -> String {
    let Some((date, rest)) = s.split_once(' ') else {
        return s.to_string();
    };
    let Some(sign_at) = rest.rfind(['+', '-']) else {
        return s.to_string();
    };
    let (time, offset) = rest.split_at(sign_at);
    if offset.contains(' ') {
        // "... BC"
        return s.to_string();
    }
    let Some(offset_secs) = parse_offset(offset) else {
        return s.to_string();
    };
    if offset_secs == 0 {
        return format!("{date}T{time}Z");
    }
    let Ok(local) =
        NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S%.f")
    else {
        return s.to_string();
    };
    let utc = local - chrono::TimeDelta::seconds(offset_secs);
    let mut out = utc.format("%Y-%m-%dT%H:%M:%S").to_string();
    let micros = utc.nanosecond() / 1000;
    if micros > 0 {
        let frac = format!("{micros:06}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// `+HH`, `-HH:MM`, `+HH:MM:SS` -> seconds east of UTC.
fn parse_offset(o: &str) -> Option<i64> {
    let (sign, rest) = match o.as_bytes().first()? {
        b'+' => (1, &o[1..]),
        b'-' => (-1, &o[1..]),
        _ => return None,
    };
    let mut secs = 0i64;
    for (i, part) in rest.split(':').enumerate() {
        if i > 2 || part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let v: i64 = part.parse().ok()?;
        secs += v * [3600, 60, 1][i];
    }
    Some(sign * secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: ChangeValue) -> String {
        match v {
            ChangeValue::Text(s) => s,
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn booleans_from_both_spellings() {
        assert_eq!(text(ValueKind::Bool.convert(b"t")), "true");
        assert_eq!(text(ValueKind::Bool.convert(b"f")), "false");
        assert_eq!(text(ValueKind::Bool.convert(b"true")), "true");
        assert_eq!(text(ValueKind::Bool.convert(b"false")), "false");
    }

    #[test]
    fn timestamptz_to_utc() {
        assert_eq!(
            timestamptz_utc("2024-01-02 03:04:05.123456+00"),
            "2024-01-02T03:04:05.123456Z"
        );
        assert_eq!(
            timestamptz_utc("2024-01-02 03:04:05+00"),
            "2024-01-02T03:04:05Z"
        );
        assert_eq!(
            timestamptz_utc("2024-01-02 03:04:05.5+02"),
            "2024-01-02T01:04:05.5Z"
        );
        assert_eq!(
            timestamptz_utc("2024-01-01 23:30:00-05:30"),
            "2024-01-02T05:00:00Z"
        );
        assert_eq!(
            timestamptz_utc("1900-01-01 00:00:00+00:19:32"),
            "1899-12-31T23:40:28Z"
        );
        assert_eq!(timestamptz_utc("infinity"), "infinity");
        assert_eq!(timestamptz_utc("-infinity"), "-infinity");
        assert_eq!(
            timestamptz_utc("0044-03-15 12:00:00+00 BC"),
            "0044-03-15 12:00:00+00 BC"
        );
    }

    #[test]
    fn bytea_hex_and_escape() {
        assert_eq!(decode_bytea(b"\\x00ff10"), vec![0, 255, 16]);
        assert_eq!(decode_bytea(b"\\x"), Vec::<u8>::new());
        assert_eq!(decode_bytea(b"a\\000\\\\b"), vec![b'a', 0, b'\\', b'b']);
        assert_eq!(
            ValueKind::Bytea.convert(b"\\xdead"),
            ChangeValue::Bytes(vec![0xde, 0xad])
        );
    }

    #[test]
    fn other_types_keep_their_text() {
        assert_eq!(text(ValueKind::of("numeric").convert(b"1.50")), "1.50");
        assert_eq!(text(ValueKind::of("float8").convert(b"NaN")), "NaN");
        assert_eq!(text(ValueKind::of("text").convert("ü€".as_bytes())), "ü€");
    }
}
