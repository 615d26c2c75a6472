//! PostgreSQL's binary COPY format: the writer's encoder (here) and the reader's decoder
//! ([`decode`]), sharing the header, epochs and the [`Kind`] mapping.
//!
//! Only column types whose binary wire form is fixed and whose receive function does what the
//! text input would (lengths, typmods, rounding) are encoded here; a batch with any other column
//! goes through COPY text instead. Values land exactly as the text path would put them:
//! - text: raw UTF-8 (NUL characters dropped, as in COPY text); varchar/char typmods still apply;
//! - numeric: base-10000 digits of the exact decimal, display scale = the Arrow scale;
//! - date / time / timestamp(tz): days / microseconds from 2000-01-01 (time of day for time);
//! - floats: IEEE bits (no decimal round trip).

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, LargeStringArray, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::RecordBatch;
use fdi_sql_core::ReadKind;

pub mod decode;

/// The stream header: signature, flags, header extension length.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The stream trailer: a tuple with field count -1.
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Largest numeric scale encoded here (the base-10000 fraction must fit an u128).
const MAX_SCALE: i8 = 36;

/// How a target column is sent in binary, from its native type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
}

impl Kind {
    /// The binary kind of a PostgreSQL column type as discovery names it (None: text only).
    pub fn of_native(native: &str) -> Option<Kind> {
        Some(match native.trim().to_ascii_lowercase().as_str() {
            "boolean" | "bool" => Kind::Bool,
            "smallint" | "int2" => Kind::Int2,
            "integer" | "int" | "int4" => Kind::Int4,
            "bigint" | "int8" => Kind::Int8,
            "real" | "float4" => Kind::Float4,
            "double precision" | "float8" => Kind::Float8,
            "numeric" | "decimal" => Kind::Numeric,
            "text" | "character varying" | "varchar" | "character" | "bpchar" => Kind::Text,
            "bytea" => Kind::Bytea,
            "date" => Kind::Date,
            "time without time zone" | "time" => Kind::Time,
            "timestamp without time zone" | "timestamp" => Kind::Timestamp,
            "timestamp with time zone" | "timestamptz" => Kind::TimestampTz,
            _ => return None,
        })
    }

    /// The binary kind a reader's column arrives as when the SELECT returns it as `read` says
    /// (`TextAs` columns are cast to text by the SELECT). None: no binary decoder (`Int8`, which
    /// PostgreSQL has no type for).
    pub fn of_read(read: &ReadKind) -> Option<Kind> {
        Some(match read {
            ReadKind::Bool => Kind::Bool,
            ReadKind::Int16 => Kind::Int2,
            ReadKind::Int32 => Kind::Int4,
            ReadKind::Int64 => Kind::Int8,
            ReadKind::Float32 => Kind::Float4,
            ReadKind::Float64 => Kind::Float8,
            ReadKind::Utf8 | ReadKind::TextAs(_) => Kind::Text,
            ReadKind::Binary => Kind::Bytea,
            ReadKind::Date32 => Kind::Date,
            ReadKind::Timestamp => Kind::Timestamp,
            ReadKind::TimestampTz => Kind::TimestampTz,
            ReadKind::Int8 => return None,
        })
    }

    /// Whether values of Arrow type `t` are sent as this kind.
    fn accepts(self, t: &DataType) -> bool {
        match (self, t) {
            (Kind::Bool, DataType::Boolean)
            | (Kind::Int2, DataType::Int16)
            | (Kind::Int4, DataType::Int32)
            | (Kind::Int8, DataType::Int64)
            | (Kind::Float4, DataType::Float32)
            | (Kind::Float8, DataType::Float64)
            | (Kind::Text, DataType::Utf8 | DataType::LargeUtf8)
            | (Kind::Bytea, DataType::Binary)
            | (Kind::Date, DataType::Date32)
            | (Kind::Time, DataType::Time64(TimeUnit::Microsecond)) => true,
            (Kind::Numeric, DataType::Decimal128(_, s)) => (0..=MAX_SCALE).contains(s),
            (Kind::Timestamp, DataType::Timestamp(TimeUnit::Microsecond, tz)) => tz.is_none(),
            (Kind::TimestampTz, DataType::Timestamp(TimeUnit::Microsecond, tz)) => tz.is_some(),
            _ => false,
        }
    }
}

/// One column's values, downcast once per batch.
enum Col<'a> {
    Bool(&'a BooleanArray),
    Int2(&'a Int16Array),
    Int4(&'a Int32Array),
    Int8(&'a Int64Array),
    Float4(&'a Float32Array),
    Float8(&'a Float64Array),
    Numeric(&'a Decimal128Array, u32),
    Text(&'a StringArray),
    LargeText(&'a LargeStringArray),
    Bytea(&'a BinaryArray),
    Date(&'a Date32Array),
    Time(&'a Time64MicrosecondArray),
    Timestamp(&'a TimestampMicrosecondArray),
}

impl<'a> Col<'a> {
    fn new(a: &'a ArrayRef) -> Option<Self> {
        Some(match a.data_type() {
            DataType::Boolean => Col::Bool(a.as_boolean()),
            DataType::Int16 => Col::Int2(a.as_primitive()),
            DataType::Int32 => Col::Int4(a.as_primitive()),
            DataType::Int64 => Col::Int8(a.as_primitive()),
            DataType::Float32 => Col::Float4(a.as_primitive()),
            DataType::Float64 => Col::Float8(a.as_primitive()),
            DataType::Decimal128(_, s) if (0..=MAX_SCALE).contains(s) => {
                Col::Numeric(a.as_primitive(), *s as u32)
            }
            DataType::Utf8 => Col::Text(a.as_string()),
            DataType::LargeUtf8 => Col::LargeText(a.as_string()),
            DataType::Binary => Col::Bytea(a.as_binary()),
            DataType::Date32 => Col::Date(a.as_primitive()),
            DataType::Time64(TimeUnit::Microsecond) => Col::Time(a.as_primitive()),
            DataType::Timestamp(TimeUnit::Microsecond, _) => Col::Timestamp(a.as_primitive()),
            _ => return None,
        })
    }

    fn put(&self, out: &mut Vec<u8>, i: usize) {
        match self {
            Col::Bool(a) => put_field(out, &[a.value(i) as u8]),
            Col::Int2(a) => put_field(out, &a.value(i).to_be_bytes()),
            Col::Int4(a) => put_field(out, &a.value(i).to_be_bytes()),
            Col::Int8(a) => put_field(out, &a.value(i).to_be_bytes()),
            Col::Float4(a) => put_field(out, &a.value(i).to_bits().to_be_bytes()),
            Col::Float8(a) => put_field(out, &a.value(i).to_bits().to_be_bytes()),
            Col::Numeric(a, scale) => put_numeric(out, a.value(i), *scale),
            Col::Text(a) => put_text(out, a.value(i)),
            Col::LargeText(a) => put_text(out, a.value(i)),
            Col::Bytea(a) => put_field(out, a.value(i)),
            Col::Date(a) => put_field(out, &a.value(i).saturating_sub(PG_EPOCH_DAYS).to_be_bytes()),
            Col::Time(a) => put_field(out, &a.value(i).rem_euclid(MICROS_PER_DAY).to_be_bytes()),
            Col::Timestamp(a) => put_field(
                out,
                &a.value(i).saturating_sub(PG_EPOCH_MICROS).to_be_bytes(),
            ),
        }
    }
}

/// Per-column binary kinds of a target, when every column has one.
pub fn kinds_of(natives: &[&str]) -> Option<Vec<Kind>> {
    natives.iter().map(|n| Kind::of_native(n)).collect()
}

/// Whether `batch` can be sent in binary to columns of `kinds`.
pub fn fits(kinds: &[Kind], batch: &RecordBatch) -> bool {
    kinds.len() == batch.num_columns()
        && kinds
            .iter()
            .zip(batch.columns())
            .all(|(k, c)| k.accepts(c.data_type()))
}

/// Append the batch's rows as binary COPY tuples (no header or trailer). The caller checked
/// [`fits`]. Returns false (appending nothing) if a column cannot be encoded.
pub fn encode(out: &mut Vec<u8>, batch: &RecordBatch) -> bool {
    let Some(cols) = batch
        .columns()
        .iter()
        .map(Col::new)
        .collect::<Option<Vec<_>>>()
    else {
        return false;
    };
    let Ok(ncols) = i16::try_from(cols.len()) else {
        return false;
    };
    let arrays = batch.columns();
    let any_nulls = arrays.iter().any(|a| a.null_count() > 0);
    for i in 0..batch.num_rows() {
        out.extend_from_slice(&ncols.to_be_bytes());
        for (c, a) in cols.iter().zip(arrays) {
            if any_nulls && a.is_null(i) {
                out.extend_from_slice(&(-1i32).to_be_bytes());
            } else {
                c.put(out, i);
            }
        }
    }
    true
}

fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !bytes.contains(&0) {
        put_field(out, bytes);
        return;
    }
    // COPY text drops NUL characters (PostgreSQL text cannot hold them); so does this path.
    let len = bytes.iter().filter(|b| **b != 0).count();
    out.extend_from_slice(&(len as i32).to_be_bytes());
    out.extend(bytes.iter().copied().filter(|b| *b != 0));
}

/// `numeric` in binary: ndigits, weight, sign, dscale, then base-10000 digits (big-endian).
/// The value is `unscaled * 10^-scale`; trailing and leading zero digits are left out.
pub fn put_numeric(out: &mut Vec<u8>, unscaled: i128, scale: u32) {
    debug_assert!(scale <= MAX_SCALE as u32);
    let abs = unscaled.unsigned_abs();
    let mut digits = [0u16; 16];
    let mut n = 0usize;
    // Whole part, most significant group first.
    let pow = 10u128.pow(scale);
    let (whole, frac) = (abs / pow, abs % pow);
    let mut whole_groups = [0u16; 10];
    let mut nw = 0usize;
    if whole <= u64::MAX as u128 {
        let mut w = whole as u64;
        while w > 0 {
            whole_groups[nw] = (w % 10_000) as u16;
            w /= 10_000;
            nw += 1;
        }
    } else {
        let mut w = whole;
        while w > 0 {
            whole_groups[nw] = (w % 10_000) as u16;
            w /= 10_000;
            nw += 1;
        }
    }
    for k in (0..nw).rev() {
        digits[n] = whole_groups[k];
        n += 1;
    }
    // Fraction, padded on the right to whole groups of four digits.
    let pad = (4 - scale % 4) % 4;
    let nf = ((scale + pad) / 4) as usize;
    let f = frac * 10u128.pow(pad);
    if f <= u64::MAX as u128 {
        let mut f = f as u64;
        for k in (0..nf).rev() {
            digits[n + k] = (f % 10_000) as u16;
            f /= 10_000;
        }
    } else {
        let mut f = f;
        for k in (0..nf).rev() {
            digits[n + k] = (f % 10_000) as u16;
            f /= 10_000;
        }
    }
    n += nf;
    let mut weight = nw as i16 - 1;
    let mut start = 0;
    while start < n && digits[start] == 0 {
        start += 1;
        weight -= 1;
    }
    let mut end = n;
    while end > start && digits[end - 1] == 0 {
        end -= 1;
    }
    let ndigits = end - start;
    if ndigits == 0 {
        weight = 0;
    }
    let sign: u16 = if unscaled < 0 && ndigits > 0 {
        0x4000
    } else {
        0
    };
    out.extend_from_slice(&((8 + 2 * ndigits) as i32).to_be_bytes());
    out.extend_from_slice(&(ndigits as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for d in &digits[start..end] {
        out.extend_from_slice(&d.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (ndigits, weight, sign, dscale, digits) of an encoded numeric.
    fn numeric(unscaled: i128, scale: u32) -> (i16, i16, u16, u16, Vec<u16>) {
        let mut out = Vec::new();
        put_numeric(&mut out, unscaled, scale);
        let len = i32::from_be_bytes(out[0..4].try_into().unwrap()) as usize;
        assert_eq!(len, out.len() - 4);
        let be = |k: usize| u16::from_be_bytes([out[4 + 2 * k], out[5 + 2 * k]]);
        let nd = be(0) as i16;
        let digits = (0..nd as usize).map(|k| be(4 + k)).collect();
        (nd, be(1) as i16, be(2), be(3), digits)
    }

    fn reference(unscaled: i128, scale: u32) -> (i16, i16, u16, u16, Vec<u16>) {
        let mut s = unscaled.unsigned_abs().to_string();
        while s.len() <= scale as usize {
            s.insert(0, '0');
        }
        let (int, frac) = s.split_at(s.len() - scale as usize);
        let int = int.trim_start_matches('0');
        let mut int_s = int.to_string();
        while int_s.len() % 4 != 0 {
            int_s.insert(0, '0');
        }
        let mut frac_s = frac.to_string();
        while frac_s.len() % 4 != 0 {
            frac_s.push('0');
        }
        let group = |t: &str| -> Vec<u16> {
            t.as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
                .collect()
        };
        let mut digits = group(&int_s);
        let mut weight = digits.len() as i16 - 1;
        digits.extend(group(&frac_s));
        while digits.first() == Some(&0) {
            digits.remove(0);
            weight -= 1;
        }
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            weight = 0;
        }
        let sign = if unscaled < 0 && !digits.is_empty() {
            0x4000
        } else {
            0
        };
        (digits.len() as i16, weight, sign, scale as u16, digits)
    }

    #[test]
    fn numerics() {
        assert_eq!(numeric(0, 2), (0, 0, 0, 2, vec![]));
        assert_eq!(numeric(12345, 2), (2, 0, 0, 2, vec![123, 4500]));
        assert_eq!(numeric(-12345, 2), (2, 0, 0x4000, 2, vec![123, 4500]));
        assert_eq!(numeric(1, 2), (1, -1, 0, 2, vec![100]));
        assert_eq!(numeric(1, 6), (1, -2, 0, 6, vec![100]));
        assert_eq!(numeric(100_000_000, 0), (1, 2, 0, 0, vec![1]));
        assert_eq!(numeric(123_456_789, 0), (3, 2, 0, 0, vec![1, 2345, 6789]));
        assert_eq!(numeric(50_000_500, 4), (2, 0, 0, 4, vec![5000, 500]));
        // Large values take the u128 paths; check against a decimal-string reference.
        let big: i128 = 12_345_678_901_234_567_890_123_456_789_123_456_789;
        for (v, scale) in [
            (big, 9),
            (-big, 0),
            (big, 36),
            (i128::MAX, 5),
            (i128::MIN + 1, 30),
            (10i128.pow(20) + 7, 3),
            (987_654_321, 35),
        ] {
            assert_eq!(numeric(v, scale), reference(v, scale), "{v} scale {scale}");
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = ((x as i128) << 20) ^ (x >> 11) as i128;
            let scale = (x % 37) as u32;
            assert_eq!(numeric(v, scale), reference(v, scale), "{v} scale {scale}");
        }
        let max = 10i128.pow(36) - 1;
        let (nd, w, _, ds, d) = numeric(max, 36);
        assert_eq!((nd, w, ds), (9, -1, 36));
        assert!(d.iter().all(|x| *x == 9999));
    }
}
