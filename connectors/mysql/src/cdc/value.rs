//! MySQL values (binlog rows and the snapshot's binary-protocol rows) to [`ChangeValue`]s in the
//! SPI's text conventions.

use chrono::DateTime;
use fdi_connector::change::ChangeValue;
use mysql_async::Value;

use super::schema::{Charset, Kind};

/// Where a value comes from: the binlog carries storage forms (ENUM index, SET bit mask,
/// TIMESTAMP epoch seconds, text in the column's character set, unsigned integers as signed),
/// the snapshot's binary protocol what a client sees (UTF-8 text, TIMESTAMP in the session's
/// UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Binlog,
    Snapshot,
}

/// Convert one value of a column of `kind`. Zero dates (`0000-00-00`), which no target can
/// hold, become NULL.
pub fn convert(kind: &Kind, value: Value, origin: Origin) -> ChangeValue {
    use ChangeValue::{Null, Text};
    match (kind, value) {
        (_, Value::NULL) => Null,
        (Kind::Int { unsigned, bits }, Value::Int(i)) => {
            // Read the value's low `bits` bits as the column's type: unsigned columns arrive
            // signed, and mysql_common reads a signed MEDIUMINT's minimum as positive.
            let bits = (*bits).clamp(1, 64);
            let mask = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            let raw = (i as u64) & mask;
            if *unsigned {
                Text(raw.to_string())
            } else if bits < 64 && raw >= 1u64 << (bits - 1) {
                Text((raw as i64 - (1i64 << bits)).to_string())
            } else {
                Text((raw as i64).to_string())
            }
        }
        (_, Value::Int(i)) if matches!(kind, Kind::Enum(_)) => {
            let Kind::Enum(members) = kind else {
                unreachable!()
            };
            // 1-based; 0 is the empty string MySQL stores for an invalid value.
            match usize::try_from(i).ok().and_then(|i| i.checked_sub(1)) {
                Some(i) => Text(
                    members
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| (i + 1).to_string()),
                ),
                None => Text(String::new()),
            }
        }
        (Kind::Timestamp, Value::Int(secs)) => timestamp(secs, 0),
        (_, Value::Int(i)) => Text(i.to_string()),
        (_, Value::UInt(u)) => Text(u.to_string()),
        (_, Value::Float(f)) => Text(float_text(f as f64, f.to_string(), f)),
        (_, Value::Double(d)) => Text(float_text(d, d.to_string(), d)),
        (kind, Value::Date(y, mo, d, h, mi, s, us)) => {
            if y == 0 && mo == 0 && d == 0 {
                return Null;
            }
            let date = format!("{y:04}-{mo:02}-{d:02}");
            let frac = fraction(us);
            match kind {
                Kind::Date => Text(date),
                Kind::Timestamp => Text(format!("{date}T{h:02}:{mi:02}:{s:02}{frac}Z")),
                _ => Text(format!("{date} {h:02}:{mi:02}:{s:02}{frac}")),
            }
        }
        (_, Value::Time(neg, days, h, m, s, us)) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            let sign = if neg { "-" } else { "" };
            Text(format!("{sign}{hours:02}:{m:02}:{s:02}{}", fraction(us)))
        }
        (kind, Value::Bytes(b)) => bytes(kind, b, origin),
    }
}

fn bytes(kind: &Kind, b: Vec<u8>, origin: Origin) -> ChangeValue {
    use ChangeValue::{Bytes, Text};
    match kind {
        Kind::Binary => Bytes(b),
        Kind::Decimal => Text(decimal(&String::from_utf8_lossy(&b))),
        Kind::Bit => {
            // Big-endian bits: the column's value as an unsigned number (BIT(1): 0 / 1).
            let n = b
                .iter()
                .skip_while(|&&x| x == 0)
                .fold(0u128, |n, &x| (n << 8) | u128::from(x));
            Text(n.to_string())
        }
        Kind::Year => {
            let text = String::from_utf8_lossy(&b).into_owned();
            // mysql_common renders the binlog's stored 0 (year 0000) as 1900 + 0.
            if origin == Origin::Binlog && text == "1900" {
                Text("0".into())
            } else {
                Text(text)
            }
        }
        Kind::Timestamp if origin == Origin::Binlog => {
            // TIMESTAMP2 arrives as "seconds[.micros]" since the epoch.
            let text = String::from_utf8_lossy(&b);
            let (secs, micros) = text.split_once('.').unwrap_or((&text, "0"));
            let micros = format!("{micros:0<6}");
            match (secs.parse::<i64>(), micros[..6].parse::<u32>()) {
                (Ok(s), Ok(us)) => timestamp(s, us),
                _ => Text(text.into_owned()),
            }
        }
        Kind::Set(members) if origin == Origin::Binlog => {
            // A little-endian bit mask of the members.
            let mut names = Vec::new();
            for (i, m) in members.iter().enumerate() {
                if b.get(i / 8).is_some_and(|x| x & (1 << (i % 8)) != 0) {
                    names.push(m.as_str());
                }
            }
            Text(names.join(","))
        }
        Kind::Text { charset } if origin == Origin::Binlog => Text(decode(&b, *charset)),
        Kind::Other => match String::from_utf8(b) {
            Ok(s) => Text(s),
            Err(e) => Bytes(e.into_bytes()),
        },
        _ => Text(decode(&b, Charset::Utf8)),
    }
}

/// Epoch seconds to `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`; 0 is MySQL's zero timestamp (NULL).
fn timestamp(secs: i64, micros: u32) -> ChangeValue {
    if secs == 0 && micros == 0 {
        return ChangeValue::Null;
    }
    match DateTime::from_timestamp(secs, micros * 1000) {
        Some(t) => ChangeValue::Text(format!(
            "{}{}Z",
            t.format("%Y-%m-%dT%H:%M:%S"),
            fraction(micros)
        )),
        None => ChangeValue::Text(secs.to_string()),
    }
}

fn fraction(micros: u32) -> String {
    if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    }
}

/// Shortest text that reads back the same: plain digits for ordinary magnitudes, an exponent
/// for very large or small ones (`3.4e38`), `NaN` / `Infinity` / `-Infinity`.
fn float_text<T: std::fmt::LowerExp>(v: f64, plain: String, original: T) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if v != 0.0 && (v.abs() >= 1e16 || v.abs() < 1e-5) {
        format!("{original:e}")
    } else {
        plain
    }
}

/// A decimal's text without leading zeros of the integer part or a negative zero (the binlog's
/// decoder may write both); the scale's digits stay as the column has them.
fn decimal(text: &str) -> String {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let zero = int == "0" && frac.chars().all(|c| c == '0');
    let mut out = String::with_capacity(text.len());
    if neg && !zero {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Text stored in `charset` to a String (MySQL's latin1 is Windows-1252).
fn decode(b: &[u8], charset: Charset) -> String {
    match charset {
        Charset::Latin1 => b.iter().map(|&x| cp1252(x)).collect(),
        Charset::Utf8 | Charset::Other => match std::str::from_utf8(b) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(b).into_owned(),
        },
    }
}

fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '\u{20AC}', '\u{81}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}',
        '\u{2021}', '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{8D}',
        '\u{017D}', '\u{8F}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}',
        '\u{2013}', '\u{2014}', '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}',
        '\u{9D}', '\u{017E}', '\u{0178}',
    ];
    match b {
        0x80..=0x9F => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> ChangeValue {
        ChangeValue::Text(s.into())
    }

    #[test]
    fn unsigned_integers_are_fixed_by_width() {
        let k = |bits| Kind::Int {
            unsigned: true,
            bits,
        };
        let b = Origin::Binlog;
        assert_eq!(convert(&k(8), Value::Int(-1), b), text("255"));
        assert_eq!(convert(&k(16), Value::Int(-1), b), text("65535"));
        assert_eq!(convert(&k(24), Value::Int(-1), b), text("16777215"));
        assert_eq!(convert(&k(32), Value::Int(-1), b), text("4294967295"));
        assert_eq!(
            convert(&k(64), Value::Int(-1), b),
            text("18446744073709551615")
        );
        let signed = Kind::Int {
            unsigned: false,
            bits: 64,
        };
        assert_eq!(convert(&signed, Value::Int(-5), b), text("-5"));
        let medium = Kind::Int {
            unsigned: false,
            bits: 24,
        };
        assert_eq!(convert(&medium, Value::Int(8388608), b), text("-8388608"));
        assert_eq!(convert(&medium, Value::Int(8388607), b), text("8388607"));
        assert_eq!(convert(&medium, Value::Int(-1), b), text("-1"));
    }

    #[test]
    fn decimals_floats_and_times() {
        assert_eq!(decimal("0001.5000"), "1.5000");
        assert_eq!(decimal("-000.0000"), "0.0000");
        assert_eq!(decimal("-0.0000000001"), "-0.0000000001");
        assert_eq!(decimal("12"), "12");
        let b = Origin::Binlog;
        assert_eq!(convert(&Kind::Float, Value::Float(1.1), b), text("1.1"));
        assert_eq!(
            convert(&Kind::Float, Value::Float(-3.4e38), b),
            text("-3.4e38")
        );
        assert_eq!(
            convert(&Kind::Double, Value::Double(f64::NEG_INFINITY), b),
            text("-Infinity")
        );
        assert_eq!(
            convert(&Kind::Time, Value::Time(true, 34, 22, 59, 59, 500_000), b),
            text("-838:59:59.500000")
        );
        assert_eq!(
            convert(
                &Kind::Timestamp,
                Value::Bytes(b"1704164645.123".to_vec()),
                b
            ),
            text("2024-01-02T03:04:05.123000Z")
        );
        assert_eq!(
            convert(&Kind::DateTime, Value::Date(2024, 1, 2, 3, 4, 5, 0), b),
            text("2024-01-02 03:04:05")
        );
        assert_eq!(
            convert(&Kind::Date, Value::Date(0, 0, 0, 0, 0, 0, 0), b),
            ChangeValue::Null
        );
    }

    #[test]
    fn enums_sets_bits_and_text() {
        let b = Origin::Binlog;
        let e = Kind::Enum(vec!["x".into(), "y".into()]);
        assert_eq!(convert(&e, Value::Int(2), b), text("y"));
        let s = Kind::Set(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(convert(&s, Value::Bytes(vec![5]), b), text("a,c"));
        assert_eq!(convert(&s, Value::Bytes(vec![0]), b), text(""));
        assert_eq!(convert(&Kind::Bit, Value::Bytes(vec![0, 5]), b), text("5"));
        let latin1 = Kind::Text {
            charset: Charset::Latin1,
        };
        assert_eq!(
            convert(&latin1, Value::Bytes(vec![0x80, b'a', 0xE9]), b),
            text("€aé")
        );
    }
}
