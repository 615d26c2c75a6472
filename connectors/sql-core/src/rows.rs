//! Rows fetched with sqlx -> Arrow builders -> `RecordBatch`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder,
    Int8Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use fdi_connector::{ConnectorError, Result};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::types::UTC;

/// How a reader fetches one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadKind {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Utf8,
    Binary,
    Date32,
    /// A timestamp without time zone (microseconds).
    Timestamp,
    /// A UTC instant (microseconds).
    TimestampTz,
    /// Fetched as text (the SELECT casts it), then parsed into the Arrow type.
    TextAs(DataType),
}

impl ReadKind {
    /// Whether the SELECT must cast the column to text.
    pub fn needs_text_cast(&self) -> bool {
        matches!(self, ReadKind::TextAs(_))
    }
}

enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int8(Int8Builder),
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
    TextAs(StringBuilder, DataType),
}

impl ColumnBuilder {
    fn new(kind: &ReadKind, capacity: usize) -> Self {
        match kind {
            ReadKind::Bool => Self::Bool(BooleanBuilder::with_capacity(capacity)),
            ReadKind::Int8 => Self::Int8(Int8Builder::with_capacity(capacity)),
            ReadKind::Int16 => Self::Int16(Int16Builder::with_capacity(capacity)),
            ReadKind::Int32 => Self::Int32(Int32Builder::with_capacity(capacity)),
            ReadKind::Int64 => Self::Int64(Int64Builder::with_capacity(capacity)),
            ReadKind::Float32 => Self::Float32(Float32Builder::with_capacity(capacity)),
            ReadKind::Float64 => Self::Float64(Float64Builder::with_capacity(capacity)),
            ReadKind::Utf8 => Self::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
            ReadKind::Binary => Self::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            ReadKind::Date32 => Self::Date32(Date32Builder::with_capacity(capacity)),
            ReadKind::Timestamp => {
                Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            ReadKind::TimestampTz => {
                Self::TimestampTz(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            ReadKind::TextAs(t) => Self::TextAs(
                StringBuilder::with_capacity(capacity, capacity * 8),
                t.clone(),
            ),
        }
    }

    fn finish(&mut self) -> Result<ArrayRef> {
        Ok(match self {
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Int8(b) => Arc::new(b.finish()),
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Utf8(b) => Arc::new(b.finish()),
            Self::Binary(b) => Arc::new(b.finish()),
            Self::Date32(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish()),
            Self::TimestampTz(b) => Arc::new(b.finish().with_timezone(UTC)),
            Self::TextAs(b, t) => {
                let text: ArrayRef = Arc::new(b.finish());
                if *t == DataType::Utf8 {
                    text
                } else {
                    let opts = CastOptions {
                        safe: true,
                        ..Default::default()
                    };
                    cast_with_options(&text, t, &opts)
                        .map_err(|e| ConnectorError::internal(format!("parse text as {t}: {e}")))?
                }
            }
        })
    }
}

/// Accumulates rows into column builders and cuts `RecordBatch`es of the reader's schema.
pub struct BatchAssembler {
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    rows: usize,
    batch_rows: usize,
    /// Bytes of text and binary values appended since the last flush.
    bytes: usize,
}

fn days_from_ce_to_epoch() -> i32 {
    // 1970-01-01 counted from 0001-01-01 (CE day 1).
    719_163
}

fn decode_err(column: usize, e: sqlx::Error) -> ConnectorError {
    ConnectorError::user(format!("decode column {column}: {e}"))
}

impl BatchAssembler {
    pub fn new(schema: SchemaRef, kinds: Vec<ReadKind>, batch_rows: usize) -> Self {
        let batch_rows = batch_rows.max(1);
        let builders = kinds
            .iter()
            .map(|k| ColumnBuilder::new(k, batch_rows))
            .collect();
        Self {
            schema,
            builders,
            rows: 0,
            batch_rows,
            bytes: 0,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `batch_rows` rows, or [`fdi_connector::BATCH_BYTES`] of text and binary values.
    pub fn is_full(&self) -> bool {
        self.rows >= self.batch_rows || self.bytes >= fdi_connector::BATCH_BYTES
    }

    /// Decode one row into the builders.
    pub fn append<'r, R>(&mut self, row: &'r R) -> Result<()>
    where
        R: Row,
        usize: ColumnIndex<R>,
        bool: Decode<'r, R::Database> + Type<R::Database>,
        i8: Decode<'r, R::Database> + Type<R::Database>,
        i16: Decode<'r, R::Database> + Type<R::Database>,
        i32: Decode<'r, R::Database> + Type<R::Database>,
        i64: Decode<'r, R::Database> + Type<R::Database>,
        f32: Decode<'r, R::Database> + Type<R::Database>,
        f64: Decode<'r, R::Database> + Type<R::Database>,
        &'r str: Decode<'r, R::Database> + Type<R::Database>,
        &'r [u8]: Decode<'r, R::Database> + Type<R::Database>,
        NaiveDate: Decode<'r, R::Database> + Type<R::Database>,
        NaiveDateTime: Decode<'r, R::Database> + Type<R::Database>,
        DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
    {
        for (i, b) in self.builders.iter_mut().enumerate() {
            match b {
                ColumnBuilder::Bool(b) => b.append_option(
                    row.try_get::<Option<bool>, _>(i)
                        .map_err(|e| decode_err(i, e))?,
                ),
                ColumnBuilder::Int8(b) => b.append_option(
                    row.try_get::<Option<i8>, _>(i)
                        .map_err(|e| decode_err(i, e))?,
                ),
                ColumnBuilder::Int16(b) => b.append_option(
                    row.try_get::<Option<i16>, _>(i)
                        .map_err(|e| decode_err(i, e))?,
                ),
                ColumnBuilder::Int32(b) => b.append_option(
                    row.try_get::<Option<i32>, _>(i)
                        .map_err(|e| decode_err(i, e))?,
                ),
                ColumnBuilder::Int64(b) => b.append_option(
                    row.try_get::<Option<i64>, _>(i)
                        .map_err(|e| decode_err(i, e))?,
                ),
                ColumnBuilder::Float32(b) => b.append_option(
                    row.try_get::<Option<f32>, _>(i)
                        .map_err(|e| decode_err(i, e))?,
                ),
                ColumnBuilder::Float64(b) => b.append_option(
                    row.try_get::<Option<f64>, _>(i)
                        .map_err(|e| decode_err(i, e))?,
                ),
                ColumnBuilder::Utf8(b) | ColumnBuilder::TextAs(b, _) => {
                    let v = row
                        .try_get::<Option<&str>, _>(i)
                        .map_err(|e| decode_err(i, e))?;
                    self.bytes += v.map_or(0, str::len);
                    b.append_option(v)
                }
                ColumnBuilder::Binary(b) => {
                    let v = row
                        .try_get::<Option<&[u8]>, _>(i)
                        .map_err(|e| decode_err(i, e))?;
                    self.bytes += v.map_or(0, <[u8]>::len);
                    b.append_option(v)
                }
                ColumnBuilder::Date32(b) => b.append_option(
                    row.try_get::<Option<NaiveDate>, _>(i)
                        .map_err(|e| decode_err(i, e))?
                        .map(|d| chrono::Datelike::num_days_from_ce(&d) - days_from_ce_to_epoch()),
                ),
                ColumnBuilder::Timestamp(b) => b.append_option(
                    row.try_get::<Option<NaiveDateTime>, _>(i)
                        .map_err(|e| decode_err(i, e))?
                        .map(|t| t.and_utc().timestamp_micros()),
                ),
                ColumnBuilder::TimestampTz(b) => b.append_option(
                    row.try_get::<Option<DateTime<Utc>>, _>(i)
                        .map_err(|e| decode_err(i, e))?
                        .map(|t| t.timestamp_micros()),
                ),
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Cut the rows appended so far into a batch (None when empty).
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let columns = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect::<Result<Vec<_>>>()?;
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), columns)
            .map(Some)
            .map_err(|e| ConnectorError::internal(format!("build batch: {e}")))
    }
}
