//! Arrow values -> SQL literals (per dialect) or PostgreSQL COPY text fields.
//!
//! A [`ColumnFormatter`] is built once per column per batch (one downcast), then formats each
//! row's value straight into a reusable `String` without per-value allocations on the hot types.

use std::fmt::Write;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    LargeStringArray, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use fdi_connector::{ConnectorError, Result};

use crate::dialect::Dialect;

/// Where the formatted value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A literal inside a SQL statement of this dialect.
    Literal(Dialect),
    /// A field of PostgreSQL's COPY text format.
    CopyText,
    /// A field of MySQL's `LOAD DATA` text (`FIELDS TERMINATED BY '\t' ESCAPED BY '\\'`, lines
    /// ending in `\n`): `\N` is NULL, text escaped with backslashes (NUL kept as `\0`),
    /// booleans `1`/`0`, binary values as bare hex digits (the statement loads them through
    /// `UNHEX`), timestamps without zone (the session's zone is UTC), non-finite floats NULL.
    LoadData,
}

enum Values<'a> {
    Bool(&'a BooleanArray),
    I8(&'a arrow::array::PrimitiveArray<Int8Type>),
    I16(&'a arrow::array::PrimitiveArray<Int16Type>),
    I32(&'a arrow::array::PrimitiveArray<Int32Type>),
    I64(&'a arrow::array::PrimitiveArray<Int64Type>),
    U8(&'a arrow::array::PrimitiveArray<UInt8Type>),
    U16(&'a arrow::array::PrimitiveArray<UInt16Type>),
    U32(&'a arrow::array::PrimitiveArray<UInt32Type>),
    U64(&'a arrow::array::PrimitiveArray<UInt64Type>),
    F32(&'a arrow::array::PrimitiveArray<Float32Type>),
    F64(&'a arrow::array::PrimitiveArray<Float64Type>),
    Decimal(&'a Decimal128Array, i8),
    Str(&'a StringArray),
    LargeStr(&'a LargeStringArray),
    Bin(&'a BinaryArray),
    Date(&'a Date32Array),
    Time(&'a Time64MicrosecondArray),
    Ts(&'a TimestampMicrosecondArray, bool),
    Other(ArrayFormatter<'a>),
}

/// Formats the values of one column.
pub struct ColumnFormatter<'a> {
    array: &'a dyn Array,
    values: Values<'a>,
    output: Output,
}

const UNIX_EPOCH_CE_DAYS: i32 = 719_163;

fn push_date(out: &mut String, days: i32) {
    use chrono::Datelike;
    match chrono::NaiveDate::from_num_days_from_ce_opt(days.saturating_add(UNIX_EPOCH_CE_DAYS)) {
        Some(d) => {
            let _ = write!(out, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
        }
        None => out.push_str("1970-01-01"),
    }
}

fn push_time_of_day(out: &mut String, micros_of_day: i64) {
    let secs = micros_of_day / 1_000_000;
    let frac = micros_of_day % 1_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    if frac != 0 {
        let _ = write!(out, ".{frac:06}");
    }
}

fn push_timestamp(out: &mut String, micros: i64) {
    let days = micros.div_euclid(86_400_000_000);
    let rest = micros.rem_euclid(86_400_000_000);
    push_date(out, days as i32);
    out.push(' ');
    push_time_of_day(out, rest);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

fn push_load_text(out: &mut String, s: &str) {
    if !s
        .bytes()
        .any(|b| matches!(b, b'\\' | b'\n' | b'\r' | b'\t' | 0))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
}

fn push_copy_text(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => {}
            c => out.push(c),
        }
    }
}

impl<'a> ColumnFormatter<'a> {
    pub fn new(array: &'a ArrayRef, output: Output) -> Result<Self> {
        let values = match array.data_type() {
            DataType::Boolean => Values::Bool(array.as_boolean()),
            DataType::Int8 => Values::I8(array.as_primitive()),
            DataType::Int16 => Values::I16(array.as_primitive()),
            DataType::Int32 => Values::I32(array.as_primitive()),
            DataType::Int64 => Values::I64(array.as_primitive()),
            DataType::UInt8 => Values::U8(array.as_primitive()),
            DataType::UInt16 => Values::U16(array.as_primitive()),
            DataType::UInt32 => Values::U32(array.as_primitive()),
            DataType::UInt64 => Values::U64(array.as_primitive()),
            DataType::Float32 => Values::F32(array.as_primitive()),
            DataType::Float64 => Values::F64(array.as_primitive()),
            DataType::Decimal128(_, s) => Values::Decimal(array.as_primitive(), *s),
            DataType::Utf8 => Values::Str(array.as_string()),
            DataType::LargeUtf8 => Values::LargeStr(array.as_string()),
            DataType::Binary => Values::Bin(array.as_binary()),
            DataType::Date32 => Values::Date(array.as_primitive()),
            DataType::Time64(TimeUnit::Microsecond) => Values::Time(array.as_primitive()),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => {
                Values::Ts(array.as_primitive(), tz.is_some())
            }
            _ => Values::Other(
                ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default()).map_err(
                    |e| ConnectorError::internal(format!("format {}: {e}", array.data_type())),
                )?,
            ),
        };
        Ok(Self {
            array: array.as_ref(),
            values,
            output,
        })
    }

    fn push_null(&self, out: &mut String) {
        match self.output {
            Output::Literal(_) => out.push_str("NULL"),
            Output::CopyText | Output::LoadData => out.push_str("\\N"),
        }
    }

    /// Text that must be quoted as a literal (or escaped for COPY).
    fn push_text(&self, out: &mut String, s: &str) {
        match self.output {
            Output::Literal(d) => d.push_string_literal(out, s),
            Output::CopyText => push_copy_text(out, s),
            Output::LoadData => push_load_text(out, s),
        }
    }

    /// Text that needs quotes in SQL but no escaping (dates, times).
    fn push_quoted(&self, out: &mut String, f: impl FnOnce(&mut String)) {
        let quoted = matches!(self.output, Output::Literal(_));
        if quoted {
            out.push('\'');
        }
        f(out);
        if quoted {
            out.push('\'');
        }
    }

    fn push_float(&self, out: &mut String, v: f64) {
        if v.is_finite() {
            let _ = write!(out, "{v}");
            return;
        }
        let word = if v.is_nan() {
            "NaN"
        } else if v > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        match self.output {
            Output::CopyText => out.push_str(word),
            Output::Literal(Dialect::Postgres) => {
                let _ = write!(out, "'{word}'");
            }
            Output::Literal(_) => out.push_str("NULL"),
            Output::LoadData => out.push_str("\\N"),
        }
    }

    /// Append row `i`'s value.
    pub fn push(&self, out: &mut String, i: usize) {
        if self.array.is_null(i) {
            self.push_null(out);
            return;
        }
        match &self.values {
            Values::Bool(a) => {
                let v = a.value(i);
                out.push_str(match (self.output, v) {
                    (Output::CopyText, true) => "t",
                    (Output::CopyText, false) => "f",
                    (Output::Literal(Dialect::Postgres), true) => "true",
                    (Output::Literal(Dialect::Postgres), false) => "false",
                    (_, true) => "1",
                    (_, false) => "0",
                })
            }
            Values::I8(a) => {
                let _ = write!(out, "{}", a.value(i));
            }
            Values::I16(a) => {
                let _ = write!(out, "{}", a.value(i));
            }
            Values::I32(a) => {
                let _ = write!(out, "{}", a.value(i));
            }
            Values::I64(a) => {
                let _ = write!(out, "{}", a.value(i));
            }
            Values::U8(a) => {
                let _ = write!(out, "{}", a.value(i));
            }
            Values::U16(a) => {
                let _ = write!(out, "{}", a.value(i));
            }
            Values::U32(a) => {
                let _ = write!(out, "{}", a.value(i));
            }
            Values::U64(a) => {
                let _ = write!(out, "{}", a.value(i));
            }
            Values::F32(a) => self.push_float(out, a.value(i) as f64),
            Values::F64(a) => self.push_float(out, a.value(i)),
            Values::Decimal(a, scale) => push_decimal(out, a.value(i), *scale),
            Values::Str(a) => self.push_text(out, a.value(i)),
            Values::LargeStr(a) => self.push_text(out, a.value(i)),
            Values::Bin(a) => {
                let bytes = a.value(i);
                match self.output {
                    Output::CopyText => {
                        out.push_str("\\\\x");
                        push_hex(out, bytes);
                    }
                    Output::Literal(Dialect::Postgres) => {
                        out.push_str("'\\x");
                        push_hex(out, bytes);
                        out.push('\'');
                    }
                    Output::LoadData => push_hex(out, bytes),
                    Output::Literal(_) => {
                        out.push_str("X'");
                        push_hex(out, bytes);
                        out.push('\'');
                    }
                }
            }
            Values::Date(a) => {
                let v = a.value(i);
                self.push_quoted(out, |o| push_date(o, v));
            }
            Values::Time(a) => {
                let v = a.value(i);
                self.push_quoted(out, |o| push_time_of_day(o, v.rem_euclid(86_400_000_000)));
            }
            Values::Ts(a, with_tz) => {
                let v = a.value(i);
                let pg_tz = *with_tz
                    && matches!(
                        self.output,
                        Output::CopyText | Output::Literal(Dialect::Postgres)
                    );
                self.push_quoted(out, |o| {
                    push_timestamp(o, v);
                    if pg_tz {
                        o.push_str("+00");
                    }
                });
            }
            Values::Other(f) => {
                let s = f.value(i).to_string();
                self.push_text(out, &s);
            }
        }
    }
}

/// An exact decimal from its unscaled value.
pub fn push_decimal(out: &mut String, unscaled: i128, scale: i8) {
    if scale <= 0 {
        let _ = write!(out, "{unscaled}");
        for _ in 0..(-scale) {
            out.push('0');
        }
        return;
    }
    let scale = scale as u32;
    let pow = 10i128.pow(scale);
    let abs = unscaled.unsigned_abs();
    let (int, frac) = (abs / pow as u128, abs % pow as u128);
    if unscaled < 0 {
        out.push('-');
    }
    let _ = write!(out, "{int}.{frac:0width$}", width = scale as usize);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn formats_values() {
        let mut s = String::new();
        push_decimal(&mut s, -105, 2);
        assert_eq!(s, "-1.05");
        let ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![
            Some(1_709_214_330_123_456),
            None,
        ]));
        let f = ColumnFormatter::new(&ts, Output::Literal(Dialect::MySql)).unwrap();
        let mut s = String::new();
        f.push(&mut s, 0);
        s.push(',');
        f.push(&mut s, 1);
        assert_eq!(s, "'2024-02-29 13:45:30.123456',NULL");
        let t: ArrayRef = Arc::new(StringArray::from(vec!["a\tb\\c"]));
        let f = ColumnFormatter::new(&t, Output::CopyText).unwrap();
        let mut s = String::new();
        f.push(&mut s, 0);
        assert_eq!(s, "a\\tb\\\\c");
    }

    #[test]
    fn formats_load_data_fields() {
        let t: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a\tb\\c\nd\0e\r"),
            Some(""),
            None,
            Some("plain ü"),
        ]));
        let f = ColumnFormatter::new(&t, Output::LoadData).unwrap();
        let got: Vec<String> = (0..4)
            .map(|i| {
                let mut s = String::new();
                f.push(&mut s, i);
                s
            })
            .collect();
        assert_eq!(got, ["a\\tb\\\\c\\nd\\0e\\r", "", "\\N", "plain ü"]);
        let b: ArrayRef = Arc::new(BinaryArray::from(vec![Some(&[0u8, 9, 10, 0x5c][..]), None]));
        let f = ColumnFormatter::new(&b, Output::LoadData).unwrap();
        let mut s = String::new();
        f.push(&mut s, 0);
        s.push('|');
        f.push(&mut s, 1);
        assert_eq!(s, "00090a5c|\\N");
        let ts: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![1_709_214_330_123_456]).with_timezone("UTC"),
        );
        let f = ColumnFormatter::new(&ts, Output::LoadData).unwrap();
        let mut s = String::new();
        f.push(&mut s, 0);
        assert_eq!(s, "2024-02-29 13:45:30.123456");
    }
}
