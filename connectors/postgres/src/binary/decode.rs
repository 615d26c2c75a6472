//! Decoding PostgreSQL's binary COPY stream (`COPY (...) TO STDOUT (FORMAT binary)`) straight
//! into Arrow builders, for the reader's fast path.
//!
//! [`CopyDecoder`] is fed the stream in chunks of any size: a tuple, a field or even the header
//! may be split across chunks (the incomplete tail is kept until the next chunk completes it; a
//! tuple reaches the builders only once all of its fields are there). It cuts a `RecordBatch`
//! every `batch_rows` rows, or earlier once the batch holds `batch_bytes` of field data, so a table
//! of wide rows stays flat in memory.
//!
//! Each column arrives as a binary [`Kind`] and lands in the Arrow type of the read plan, exactly
//! as the row path (sqlx row decoding into `BatchAssembler`) puts it:
//! - bool, ints, floats: one byte / big-endian integers / IEEE bits;
//! - text: the raw UTF-8 (checked); bytea: the raw bytes;
//! - date, timestamp, timestamptz: days / microseconds from 2000-01-01, moved to 1970 (the
//!   instant of a timestamptz is UTC); `infinity` and values Arrow cannot hold are an error naming
//!   the column (the row path cannot represent them either);
//! - numeric read natively into `Decimal128(p, s)`: base-10000 digits scaled to `s`; NaN,
//!   infinities and values of more than `p` digits are NULL, as the text path's safe cast makes
//!   them (digits below `s`, which a `numeric(p, s)` column never has, round half away from zero
//!   as that cast does);
//! - time read natively into `Time64(µs)`: microseconds of the day; `24:00:00` is NULL, as the
//!   text path's parse makes it;
//! - a column the SELECT casts to text and that is parsed into another Arrow type (`TextAs`) is
//!   collected as text and cast with the same safe cast as `BatchAssembler`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use fdi_connector::{ConnectorError, Result};
use fdi_sql_core::ReadKind;
use fdi_sql_core::types::UTC;

use super::{HEADER, Kind, MICROS_PER_DAY, PG_EPOCH_DAYS, PG_EPOCH_MICROS};

/// The header's fixed part: signature (11 bytes), flags, extension length.
const HEADER_FIXED: usize = 19;
/// Flag bit 16 of the header: every tuple carries an OID (never asked for here).
const FLAG_OIDS: u32 = 1 << 16;
/// numeric sign words.
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_POS: u16 = 0x0000;

/// How one column of a read arrives in binary and where it lands.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnWire {
    /// The column's name (for errors).
    pub name: String,
    /// What the server sends.
    pub wire: Kind,
    /// What the reader makes of it (the read plan's kind).
    pub read: ReadKind,
}

impl ColumnWire {
    /// Whether this wire kind can be decoded into this read kind here.
    pub fn decodable(&self) -> bool {
        matches!(
            (&self.read, self.wire),
            (ReadKind::Bool, Kind::Bool)
                | (ReadKind::Int16, Kind::Int2)
                | (ReadKind::Int32, Kind::Int4)
                | (ReadKind::Int64, Kind::Int8)
                | (ReadKind::Float32, Kind::Float4)
                | (ReadKind::Float64, Kind::Float8)
                | (ReadKind::Utf8, Kind::Text)
                | (ReadKind::Binary, Kind::Bytea)
                | (ReadKind::Date32, Kind::Date)
                | (ReadKind::Timestamp, Kind::Timestamp)
                | (ReadKind::TimestampTz, Kind::TimestampTz)
                | (ReadKind::TextAs(_), Kind::Text)
                | (
                    ReadKind::TextAs(DataType::Time64(TimeUnit::Microsecond)),
                    Kind::Time
                )
        ) || matches!(
            (&self.read, self.wire),
            (ReadKind::TextAs(DataType::Decimal128(p, s)), Kind::Numeric)
                if (1..=38).contains(p) && (0..=*p as i8).contains(s)
        )
    }
}

enum Builder {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Date32(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    TimestampTz(TimestampMicrosecondBuilder),
    Time(Time64MicrosecondBuilder),
    Numeric(Decimal128Builder, u8, u32),
    TextAs(StringBuilder, DataType),
}

impl Builder {
    /// A builder for `rows` values (`data` bytes of variable-length data).
    fn new(c: &ColumnWire, rows: usize, data: usize) -> Self {
        match (&c.read, c.wire) {
            (ReadKind::Bool, _) => Self::Bool(BooleanBuilder::with_capacity(rows)),
            (ReadKind::Int16, _) => Self::Int16(Int16Builder::with_capacity(rows)),
            (ReadKind::Int32, _) => Self::Int32(Int32Builder::with_capacity(rows)),
            (ReadKind::Int64, _) => Self::Int64(Int64Builder::with_capacity(rows)),
            (ReadKind::Float32, _) => Self::Float32(Float32Builder::with_capacity(rows)),
            (ReadKind::Float64, _) => Self::Float64(Float64Builder::with_capacity(rows)),
            (ReadKind::Utf8, _) => Self::Utf8(StringBuilder::with_capacity(rows, data)),
            (ReadKind::Binary, _) => Self::Binary(BinaryBuilder::with_capacity(rows, data)),
            (ReadKind::Date32, _) => Self::Date32(Date32Builder::with_capacity(rows)),
            (ReadKind::Timestamp, _) => {
                Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(rows))
            }
            (ReadKind::TimestampTz, _) => {
                Self::TimestampTz(TimestampMicrosecondBuilder::with_capacity(rows))
            }
            (ReadKind::TextAs(_), Kind::Time) => {
                Self::Time(Time64MicrosecondBuilder::with_capacity(rows))
            }
            (ReadKind::TextAs(DataType::Decimal128(p, s)), Kind::Numeric) => Self::Numeric(
                Decimal128Builder::with_capacity(rows).with_data_type(DataType::Decimal128(*p, *s)),
                *p,
                *s as u32,
            ),
            (ReadKind::TextAs(t), _) => {
                Self::TextAs(StringBuilder::with_capacity(rows, data), t.clone())
            }
            // Not decodable (checked by `ColumnWire::decodable` before).
            (ReadKind::Int8, _) => Self::TextAs(StringBuilder::new(), DataType::Int8),
        }
    }

    fn append_null(&mut self) {
        match self {
            Self::Bool(b) => b.append_null(),
            Self::Int16(b) => b.append_null(),
            Self::Int32(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::Float32(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Utf8(b) | Self::TextAs(b, _) => b.append_null(),
            Self::Binary(b) => b.append_null(),
            Self::Date32(b) => b.append_null(),
            Self::Timestamp(b) | Self::TimestampTz(b) => b.append_null(),
            Self::Time(b) => b.append_null(),
            Self::Numeric(b, ..) => b.append_null(),
        }
    }

    /// Append one non-NULL field. `Err` carries the reason (the caller names the column).
    fn append(&mut self, v: &[u8]) -> std::result::Result<(), String> {
        match self {
            Self::Bool(b) => b.append_value(fixed::<1>(v)?[0] != 0),
            Self::Int16(b) => b.append_value(i16::from_be_bytes(fixed(v)?)),
            Self::Int32(b) => b.append_value(i32::from_be_bytes(fixed(v)?)),
            Self::Int64(b) => b.append_value(i64::from_be_bytes(fixed(v)?)),
            Self::Float32(b) => b.append_value(f32::from_bits(u32::from_be_bytes(fixed(v)?))),
            Self::Float64(b) => b.append_value(f64::from_bits(u64::from_be_bytes(fixed(v)?))),
            Self::Utf8(b) | Self::TextAs(b, _) => b.append_value(utf8(v)?),
            Self::Binary(b) => b.append_value(v),
            Self::Date32(b) => {
                let days = i32::from_be_bytes(fixed(v)?);
                if days == i32::MIN || days == i32::MAX {
                    return Err("date infinity has no Arrow value".into());
                }
                b.append_value(
                    days.checked_add(PG_EPOCH_DAYS)
                        .ok_or_else(|| format!("date out of range ({days} days from 2000)"))?,
                )
            }
            Self::Timestamp(b) | Self::TimestampTz(b) => b.append_value(timestamp(v)?),
            Self::Time(b) => {
                let micros = i64::from_be_bytes(fixed(v)?);
                if (0..MICROS_PER_DAY).contains(&micros) {
                    b.append_value(micros)
                } else {
                    b.append_null()
                }
            }
            Self::Numeric(b, p, s) => b.append_option(numeric(v, *p, *s)?),
        }
        Ok(())
    }

    /// The array of the values appended so far; the builder starts over with room for a batch
    /// like this one.
    fn finish(&mut self, c: &ColumnWire, rows: usize) -> Result<ArrayRef> {
        let data = match self {
            Self::Utf8(b) | Self::TextAs(b, _) => b.values_slice().len(),
            Self::Binary(b) => b.values_slice().len(),
            _ => 0,
        };
        let next = Builder::new(c, rows, data);
        Ok(match std::mem::replace(self, next) {
            Self::Bool(mut b) => Arc::new(b.finish()),
            Self::Int16(mut b) => Arc::new(b.finish()),
            Self::Int32(mut b) => Arc::new(b.finish()),
            Self::Int64(mut b) => Arc::new(b.finish()),
            Self::Float32(mut b) => Arc::new(b.finish()),
            Self::Float64(mut b) => Arc::new(b.finish()),
            Self::Utf8(mut b) => Arc::new(b.finish()),
            Self::Binary(mut b) => Arc::new(b.finish()),
            Self::Date32(mut b) => Arc::new(b.finish()),
            Self::Timestamp(mut b) => Arc::new(b.finish()),
            Self::TimestampTz(mut b) => Arc::new(b.finish().with_timezone(UTC)),
            Self::Time(mut b) => Arc::new(b.finish()),
            Self::Numeric(mut b, ..) => Arc::new(b.finish()),
            Self::TextAs(mut b, t) => {
                let text: ArrayRef = Arc::new(b.finish());
                if t == DataType::Utf8 {
                    text
                } else {
                    // As BatchAssembler does: unparsable text becomes NULL.
                    let opts = CastOptions {
                        safe: true,
                        ..Default::default()
                    };
                    cast_with_options(&text, &t, &opts)
                        .map_err(|e| ConnectorError::internal(format!("parse text as {t}: {e}")))?
                }
            }
        })
    }
}

fn fixed<const N: usize>(v: &[u8]) -> std::result::Result<[u8; N], String> {
    v.try_into().map_err(|_| {
        format!(
            "a field of {} bytes where the type has {N} (the column's type is not the one planned)",
            v.len()
        )
    })
}

fn utf8(v: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(v).map_err(|e| format!("invalid UTF-8 text: {e}"))
}

fn timestamp(v: &[u8]) -> std::result::Result<i64, String> {
    let micros = i64::from_be_bytes(fixed(v)?);
    if micros == i64::MIN || micros == i64::MAX {
        return Err("timestamp infinity has no Arrow value".into());
    }
    micros
        .checked_add(PG_EPOCH_MICROS)
        .ok_or_else(|| format!("timestamp out of range ({micros} µs from 2000)"))
}

/// A binary `numeric` as the unscaled value of a `Decimal128(p, s)`; None for NaN, infinities
/// and values of more than `p` digits (what the text path's safe cast gives them).
fn numeric(v: &[u8], p: u8, s: u32) -> std::result::Result<Option<i128>, String> {
    if v.len() < 8 {
        return Err(format!("a numeric of {} bytes", v.len()));
    }
    let word = |k: usize| u16::from_be_bytes([v[2 * k], v[2 * k + 1]]);
    let ndigits = word(0) as usize;
    let weight = word(1) as i16 as i32;
    let sign = word(2);
    if v.len() != 8 + 2 * ndigits {
        return Err(format!(
            "a numeric of {} bytes for {ndigits} digits",
            v.len()
        ));
    }
    if sign != NUMERIC_POS && sign != NUMERIC_NEG {
        return Ok(None); // NaN, Infinity, -Infinity
    }
    let mut acc: i128 = 0;
    for i in 0..ndigits {
        let d = word(4 + i) as i128;
        if d > 9999 {
            return Err(format!("a numeric digit of {d}"));
        }
        if d == 0 {
            continue;
        }
        // This digit is worth d * 10000^(weight - i); scaled by 10^s: d * 10^(4 (weight - i) + s).
        let exp = 4 * (weight - i as i32) + s as i32;
        let term = if exp >= 0 {
            match 10i128
                .checked_pow(exp as u32)
                .and_then(|m| d.checked_mul(m))
            {
                Some(t) => t,
                None => return Ok(None),
            }
        } else if exp >= -4 {
            // Digits below the scale (none in a numeric(p, s) value) are rounded half away from
            // zero on the first of them, as the text path's parse does.
            let k = (-exp) as u32;
            d / 10i128.pow(k) + i128::from((d / 10i128.pow(k - 1)) % 10 >= 5)
        } else {
            0
        };
        acc = match acc.checked_add(term) {
            Some(a) => a,
            None => return Ok(None),
        };
    }
    if acc >= 10i128.pow(p as u32) {
        return Ok(None);
    }
    Ok(Some(if sign == NUMERIC_NEG { -acc } else { acc }))
}

enum State {
    Header,
    Tuples,
    Done,
}

/// Parses a binary COPY stream into batches of a read plan's schema (see the module doc).
pub struct CopyDecoder {
    schema: SchemaRef,
    columns: Vec<ColumnWire>,
    builders: Vec<Builder>,
    state: State,
    /// An incomplete tail of the stream, waiting for the next chunk.
    pending: Vec<u8>,
    /// Per field of the tuple being parsed: (offset, length; -1 = NULL).
    fields: Vec<(usize, i32)>,
    rows: usize,
    bytes: usize,
    batch_rows: usize,
    batch_bytes: usize,
    total: u64,
}

impl CopyDecoder {
    /// A decoder for columns `columns` (each `decodable`) of batches of `schema`.
    pub fn new(
        schema: SchemaRef,
        columns: Vec<ColumnWire>,
        batch_rows: usize,
        batch_bytes: usize,
    ) -> Result<Self> {
        if columns.len() != schema.fields().len() {
            return Err(ConnectorError::internal(
                "binary COPY: columns and schema differ",
            ));
        }
        if let Some(c) = columns.iter().find(|c| !c.decodable()) {
            return Err(ConnectorError::internal(format!(
                "binary COPY: column \"{}\" ({:?} as {:?}) has no decoder",
                c.name, c.wire, c.read
            )));
        }
        let batch_rows = batch_rows.max(1);
        let builders = columns
            .iter()
            .map(|c| Builder::new(c, batch_rows.min(8192), batch_rows.min(8192) * 16))
            .collect();
        Ok(Self {
            schema,
            fields: Vec::with_capacity(columns.len()),
            columns,
            builders,
            state: State::Header,
            pending: Vec::new(),
            rows: 0,
            bytes: 0,
            batch_rows,
            batch_bytes: batch_bytes.max(1),
            total: 0,
        })
    }

    /// Rows decoded so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Decode the next chunk of the stream; full batches are pushed onto `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.pending.is_empty() {
            let used = self.parse(chunk, out)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(chunk);
            let used = self.parse(&buf, out)?;
            buf.drain(..used);
            self.pending = buf;
        }
        Ok(())
    }

    /// The end of the stream: the last (partial) batch. Fails unless the trailer was read.
    pub fn finish(&mut self) -> Result<Option<RecordBatch>> {
        if !matches!(self.state, State::Done) || !self.pending.is_empty() {
            return Err(ConnectorError::external(
                "binary COPY: the stream ended in the middle (no trailer)",
            ));
        }
        self.flush()
    }

    /// Parse whole tuples out of `buf`; returns the bytes used (the rest is an incomplete tail).
    fn parse(&mut self, buf: &[u8], out: &mut Vec<RecordBatch>) -> Result<usize> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Header => {
                    let Some(fixed) = buf.get(pos..pos + HEADER_FIXED) else {
                        return Ok(pos);
                    };
                    if fixed[..11] != HEADER[..11] {
                        return Err(bad("no binary COPY signature"));
                    }
                    let flags = u32::from_be_bytes([fixed[11], fixed[12], fixed[13], fixed[14]]);
                    if flags & FLAG_OIDS != 0 {
                        return Err(bad("tuples carry OIDs"));
                    }
                    let ext = u32::from_be_bytes([fixed[15], fixed[16], fixed[17], fixed[18]]);
                    let end = pos + HEADER_FIXED + ext as usize;
                    if buf.len() < end {
                        return Ok(pos);
                    }
                    pos = end;
                    self.state = State::Tuples;
                }
                State::Tuples => {
                    let Some(n) = buf.get(pos..pos + 2) else {
                        return Ok(pos);
                    };
                    let n = i16::from_be_bytes([n[0], n[1]]);
                    if n == -1 {
                        self.state = State::Done;
                        pos += 2;
                        continue;
                    }
                    if n as usize != self.columns.len() {
                        return Err(bad(&format!(
                            "a tuple of {n} fields for {} columns",
                            self.columns.len()
                        )));
                    }
                    let Some(end) = self.scan(buf, pos + 2)? else {
                        return Ok(pos);
                    };
                    self.append(buf)?;
                    self.rows += 1;
                    self.total += 1;
                    self.bytes += end - pos;
                    pos = end;
                    if (self.rows >= self.batch_rows || self.bytes >= self.batch_bytes)
                        && let Some(b) = self.flush()?
                    {
                        out.push(b);
                    }
                }
                State::Done => {
                    if pos < buf.len() {
                        return Err(bad("data after the trailer"));
                    }
                    return Ok(pos);
                }
            }
        }
    }

    /// Find the fields of the tuple starting at `pos` (after its field count); None when the
    /// tuple does not end within `buf`. Returns where it ends.
    fn scan(&mut self, buf: &[u8], mut pos: usize) -> Result<Option<usize>> {
        self.fields.clear();
        for _ in 0..self.columns.len() {
            let Some(len) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            pos += 4;
            if len < -1 {
                return Err(bad(&format!("a field length of {len}")));
            }
            self.fields.push((pos, len));
            if len > 0 {
                pos += len as usize;
            }
        }
        Ok((pos <= buf.len()).then_some(pos))
    }

    /// Append the scanned tuple's fields to the builders.
    fn append(&mut self, buf: &[u8]) -> Result<()> {
        for ((b, &(at, len)), c) in self
            .builders
            .iter_mut()
            .zip(&self.fields)
            .zip(&self.columns)
        {
            if len < 0 {
                b.append_null();
            } else {
                b.append(&buf[at..at + len as usize]).map_err(|e| {
                    ConnectorError::external(format!("decode column \"{}\": {e}", c.name))
                })?;
            }
        }
        Ok(())
    }

    /// Cut the rows decoded so far into a batch (None when empty).
    fn flush(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let rows = self.rows;
        let columns = self
            .builders
            .iter_mut()
            .zip(&self.columns)
            .map(|(b, c)| b.finish(c, rows))
            .collect::<Result<Vec<_>>>()?;
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), columns)
            .map(Some)
            .map_err(|e| ConnectorError::internal(format!("build batch: {e}")))
    }
}

fn bad(what: &str) -> ConnectorError {
    ConnectorError::external(format!("binary COPY stream: {what}"))
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        Array, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int16Array,
        Int32Array, Int64Array, StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
    };
    use arrow::compute::concat_batches;
    use arrow::datatypes::{Field, Schema};

    use super::super::{TRAILER, encode};
    use super::*;

    fn wire(name: &str, wire: Kind, read: ReadKind) -> ColumnWire {
        ColumnWire {
            name: name.into(),
            wire,
            read,
        }
    }

    /// A batch of every natively decoded type, with NULLs, and how each column travels.
    fn sample(n: usize) -> (RecordBatch, Vec<ColumnWire>) {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        let tstz = DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("b", DataType::Boolean, true),
            Field::new("s", DataType::Int16, true),
            Field::new("i", DataType::Int32, true),
            Field::new("l", DataType::Int64, true),
            Field::new("d", DataType::Float64, true),
            Field::new("n", DataType::Decimal128(38, 10), true),
            Field::new("t", DataType::Utf8, true),
            Field::new("x", DataType::Binary, true),
            Field::new("day", DataType::Date32, true),
            Field::new("tod", DataType::Time64(TimeUnit::Microsecond), true),
            Field::new("at", ts.clone(), true),
            Field::new("attz", tstz.clone(), true),
        ]));
        let null = |k: usize, c: usize| (k + c).is_multiple_of(7);
        let k = 0..n;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(BooleanArray::from_iter(
                k.clone().map(|k| (!null(k, 0)).then_some(k % 2 == 0)),
            )),
            Arc::new(Int16Array::from_iter(
                k.clone().map(|k| (!null(k, 1)).then_some(k as i16 - 300)),
            )),
            Arc::new(Int32Array::from_iter(
                k.clone().map(|k| (!null(k, 2)).then_some(k as i32 * -7919)),
            )),
            Arc::new(Int64Array::from_iter(
                k.clone().map(|k| (!null(k, 3)).then_some((k as i64) << 40)),
            )),
            Arc::new(Float64Array::from_iter(
                k.clone().map(|k| (!null(k, 4)).then_some(k as f64 / 3.0)),
            )),
            Arc::new(
                Decimal128Array::from_iter(k.clone().map(|k| {
                    (!null(k, 5)).then_some(
                        (k as i128 * 1_234_567_890_123_456_789_012_345)
                            * if k % 2 == 0 { 1 } else { -1 },
                    )
                }))
                .with_precision_and_scale(38, 10)
                .unwrap(),
            ),
            Arc::new(StringArray::from_iter(k.clone().map(|k| {
                (!null(k, 6)).then(|| "ü名🚀".repeat(k % 4) + &"x".repeat(k % 50))
            }))),
            Arc::new(BinaryArray::from_iter(
                k.clone()
                    .map(|k| (!null(k, 7)).then(|| vec![k as u8; k % 9])),
            )),
            Arc::new(Date32Array::from_iter(
                k.clone()
                    .map(|k| (!null(k, 8)).then_some(k as i32 * 97 - 20_000)),
            )),
            Arc::new(Time64MicrosecondArray::from_iter(k.clone().map(|k| {
                (!null(k, 9)).then_some((k as i64 * 421_000_001) % MICROS_PER_DAY)
            }))),
            Arc::new(TimestampMicrosecondArray::from_iter(k.clone().map(|k| {
                (!null(k, 10)).then_some(k as i64 * 4_406_400_000_001 - 315_619_200_000_000)
            }))),
            Arc::new(
                TimestampMicrosecondArray::from_iter(k.map(|k| {
                    (!null(k, 11)).then_some(1_704_049_200_000_000 + k as i64 * 1_000_001)
                }))
                .with_timezone(UTC),
            ),
        ];
        let batch = RecordBatch::try_new(schema, cols).unwrap();
        let wires = vec![
            wire("b", Kind::Bool, ReadKind::Bool),
            wire("s", Kind::Int2, ReadKind::Int16),
            wire("i", Kind::Int4, ReadKind::Int32),
            wire("l", Kind::Int8, ReadKind::Int64),
            wire("d", Kind::Float8, ReadKind::Float64),
            wire(
                "n",
                Kind::Numeric,
                ReadKind::TextAs(DataType::Decimal128(38, 10)),
            ),
            wire("t", Kind::Text, ReadKind::Utf8),
            wire("x", Kind::Bytea, ReadKind::Binary),
            wire("day", Kind::Date, ReadKind::Date32),
            wire(
                "tod",
                Kind::Time,
                ReadKind::TextAs(DataType::Time64(TimeUnit::Microsecond)),
            ),
            wire("at", Kind::Timestamp, ReadKind::Timestamp),
            wire("attz", Kind::TimestampTz, ReadKind::TimestampTz),
        ];
        (batch, wires)
    }

    fn stream_of(batch: &RecordBatch) -> Vec<u8> {
        let mut s = HEADER.to_vec();
        assert!(encode(&mut s, batch));
        s.extend_from_slice(TRAILER);
        s
    }

    fn decode_in(
        schema: &SchemaRef,
        wires: &[ColumnWire],
        chunks: &[&[u8]],
        batch_rows: usize,
        batch_bytes: usize,
    ) -> Result<(Vec<RecordBatch>, u64)> {
        let mut d = CopyDecoder::new(schema.clone(), wires.to_vec(), batch_rows, batch_bytes)?;
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out)?;
        }
        out.extend(d.finish()?);
        Ok((out, d.total()))
    }

    /// The encoder's stream decodes back to the batch it was made of, whatever the cuts.
    #[test]
    fn round_trip_cut_at_every_offset() {
        let (batch, wires) = sample(40);
        let schema = batch.schema();
        let s = stream_of(&batch);
        let (whole, n) = decode_in(&schema, &wires, &[&s], 1000, 1 << 20).unwrap();
        assert_eq!(n, 40);
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0], batch);
        for cut in 0..=s.len() {
            let (got, n) = decode_in(&schema, &wires, &[&s[..cut], &s[cut..]], 7, 1 << 20).unwrap();
            assert_eq!(n, 40);
            assert_eq!(got.len(), 6, "cut at {cut}");
            assert!(got[..5].iter().all(|b| b.num_rows() == 7));
            assert_eq!(
                concat_batches(&schema, &got).unwrap(),
                batch,
                "cut at {cut}"
            );
        }
        // Three cuts, and one byte at a time.
        for (a, b) in [
            (1, 2),
            (18, 19),
            (19, 21),
            (100, 101),
            (s.len() - 2, s.len() - 1),
        ] {
            let (got, _) = decode_in(
                &schema,
                &wires,
                &[&s[..a], &s[a..b], &s[b..]],
                1000,
                1 << 20,
            )
            .unwrap();
            assert_eq!(got, vec![batch.clone()]);
        }
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        let (got, _) = decode_in(&schema, &wires, &bytes, 1000, 1 << 20).unwrap();
        assert_eq!(got, vec![batch.clone()]);
    }

    /// A batch is also cut by bytes; an empty stream has no batch; broken streams fail.
    #[test]
    fn byte_bound_empty_and_broken_streams() {
        let (batch, wires) = sample(200);
        let schema = batch.schema();
        let s = stream_of(&batch);
        let (got, _) = decode_in(&schema, &wires, &[&s], 1000, 2000).unwrap();
        assert!(got.len() > 5, "{}", got.len());
        assert!(got.iter().all(|b| b.num_rows() < 100));
        assert_eq!(concat_batches(&schema, &got).unwrap(), batch);

        let empty = stream_of(&batch.slice(0, 0));
        let (got, n) = decode_in(&schema, &wires, &[&empty], 10, 1 << 20).unwrap();
        assert!(got.is_empty());
        assert_eq!(n, 0);

        // No trailer, half a tuple, data after the trailer, a wrong signature, a wrong width.
        assert!(decode_in(&schema, &wires, &[&s[..s.len() - 2]], 10, 1 << 20).is_err());
        assert!(decode_in(&schema, &wires, &[&s[..s.len() - 9]], 10, 1 << 20).is_err());
        let mut extra = s.clone();
        extra.push(0);
        assert!(decode_in(&schema, &wires, &[&extra], 10, 1 << 20).is_err());
        let mut sig = s.clone();
        sig[0] = b'Q';
        assert!(decode_in(&schema, &wires, &[&sig], 10, 1 << 20).is_err());
        let mut w = wires.clone();
        w[2] = wire("i", Kind::Int8, ReadKind::Int64);
        let e = decode_in(&schema, &w, &[&s], 10, 1 << 20)
            .map(|_| ())
            .unwrap_err();
        assert!(e.to_string().contains("decode column \"i\""), "{e}");
        let mut w = wires.clone();
        w.swap(1, 2);
        w[1].name = "s".into();
        w[2].name = "i".into();
        let e = decode_in(&schema, &w, &[&s], 10, 1 << 20)
            .map(|_| ())
            .unwrap_err();
        assert!(e.to_string().contains("decode column"), "{e}");
        // The header's extension area is skipped.
        let mut ext = HEADER[..15].to_vec();
        ext.extend_from_slice(&3u32.to_be_bytes());
        ext.extend_from_slice(b"abc");
        ext.extend_from_slice(&s[HEADER.len()..]);
        let (got, _) =
            decode_in(&schema, &wires, &[&ext[..20], &ext[20..]], 1000, 1 << 20).unwrap();
        assert_eq!(got, vec![batch]);
    }

    /// `numeric` in binary, built from its decimal text the way PostgreSQL lays it out.
    fn numeric_bytes(text: &str) -> Vec<u8> {
        let (neg, t) = match text.strip_prefix('-') {
            Some(t) => (true, t),
            None => (false, text),
        };
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
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
        let mut out = Vec::new();
        for w in [
            digits.len() as u16,
            weight as u16,
            if neg { NUMERIC_NEG } else { NUMERIC_POS },
            frac.len() as u16,
        ]
        .into_iter()
        .chain(digits)
        {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Native numeric decoding gives what the text path's safe cast gives, rounding and
    /// overflow included.
    #[test]
    fn numeric_matches_the_text_cast() {
        let cast = |text: &str, p: u8, s: i8| -> Option<i128> {
            let a: ArrayRef = Arc::new(StringArray::from(vec![text]));
            let opts = CastOptions {
                safe: true,
                ..Default::default()
            };
            let c = cast_with_options(&a, &DataType::Decimal128(p, s), &opts).unwrap();
            let c = c.as_any().downcast_ref::<Decimal128Array>().unwrap();
            c.is_valid(0).then(|| c.value(0))
        };
        let mut texts: Vec<String> = [
            "0",
            "0.00",
            "-0.01",
            "1",
            "12345.6789",
            "-99999999999.99",
            "0.000000001",
            "-9.999999999",
            "999999999999999999999999999999",
            "12.345",
            "12.355",
            "-0.005",
            "0.0049999",
            "99.995",
            "123456789012345678901234567890.12345678",
            "99999999999999999999999999999999999999",
            "100000000000000000000000000000000000000",
            "0.00000000000000000000000000000000000001",
            "10000",
            "0.5",
            "-0.5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let int = (x % 10u64.pow((x >> 60) as u32 % 19)).to_string();
            let frac = format!("{:0>18}", (x >> 3) % 10u64.pow(18));
            let frac = &frac[..(x >> 50) as usize % 19];
            let sign = if x & 1 == 1 { "-" } else { "" };
            texts.push(if frac.is_empty() {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac}")
            });
        }
        for t in &texts {
            let b = numeric_bytes(t);
            for (p, s) in [
                (38, 10),
                (12, 2),
                (10, 9),
                (30, 0),
                (38, 0),
                (5, 5),
                (38, 38),
                (18, 4),
            ] {
                assert_eq!(
                    numeric(&b, p, s as u32).unwrap(),
                    cast(t, p, s),
                    "{t} as ({p},{s})"
                );
            }
        }
        for sign in [0xC000u16, 0xD000, 0xF000] {
            let mut b = vec![0u8; 8];
            b[4..6].copy_from_slice(&sign.to_be_bytes());
            assert_eq!(numeric(&b, 38, 2).unwrap(), None);
        }
        assert_eq!(cast("NaN", 38, 2), None);
        assert!(numeric(&[0, 1], 38, 2).is_err());
    }
}
