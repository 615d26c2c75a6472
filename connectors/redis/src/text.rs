//! Arrow values as the text (bytes) Redis stores: numbers as their digits, decimals exactly,
//! zoned timestamps as RFC 3339 instants in UTC, text and binary as their bytes.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Each column of `batch` as its values' bytes (None: NULL), column by column.
pub(crate) fn columns(batch: &RecordBatch) -> Result<Vec<Vec<Option<Vec<u8>>>>, String> {
    batch.columns().iter().map(column).collect()
}

fn column(c: &ArrayRef) -> Result<Vec<Option<Vec<u8>>>, String> {
    let n = c.len();
    let valid = |i: usize| c.is_valid(i);
    Ok(match c.data_type() {
        DataType::Utf8 => {
            let a = c.as_string::<i32>();
            (0..n)
                .map(|i| valid(i).then(|| a.value(i).as_bytes().to_vec()))
                .collect()
        }
        DataType::LargeUtf8 => {
            let a = c.as_string::<i64>();
            (0..n)
                .map(|i| valid(i).then(|| a.value(i).as_bytes().to_vec()))
                .collect()
        }
        DataType::Binary => {
            let a = c.as_binary::<i32>();
            (0..n)
                .map(|i| valid(i).then(|| a.value(i).to_vec()))
                .collect()
        }
        DataType::LargeBinary => {
            let a = c.as_binary::<i64>();
            (0..n)
                .map(|i| valid(i).then(|| a.value(i).to_vec()))
                .collect()
        }
        DataType::Timestamp(unit, Some(_)) => {
            // The same instants with the zone spelled as an offset (arrow resolves only offsets
            // without chrono-tz): written `...Z`.
            let utc = arrow::array::make_array(
                c.to_data()
                    .into_builder()
                    .data_type(DataType::Timestamp(*unit, Some("+00:00".into())))
                    .build()
                    .map_err(|e| e.to_string())?,
            );
            formatted(&utc)?
        }
        _ => formatted(c)?,
    })
}

fn formatted(c: &ArrayRef) -> Result<Vec<Option<Vec<u8>>>, String> {
    let options = FormatOptions::default();
    let f = ArrayFormatter::try_new(c.as_ref(), &options).map_err(|e| e.to_string())?;
    Ok((0..c.len())
        .map(|i| c.is_valid(i).then(|| f.value(i).to_string().into_bytes()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BinaryArray, BooleanArray, Decimal128Array, Float64Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn values_as_text() {
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("i", DataType::Int64, true),
                Field::new("d", DataType::Decimal128(38, 10), true),
                Field::new(
                    "t",
                    DataType::Timestamp(
                        arrow::datatypes::TimeUnit::Microsecond,
                        Some("UTC".into()),
                    ),
                    true,
                ),
                Field::new("b", DataType::Boolean, true),
                Field::new("s", DataType::Utf8, true),
                Field::new("x", DataType::Binary, true),
                Field::new("f", DataType::Float64, true),
            ])),
            vec![
                Arc::new(Int64Array::from(vec![Some(9_007_199_254_740_993), None])),
                Arc::new(
                    Decimal128Array::from(vec![
                        Some(123_456_789_012_345_678_900_123_456_789),
                        Some(-1),
                    ])
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
                ),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(-86_400_000_001), Some(0)])
                        .with_timezone("UTC"),
                ),
                Arc::new(BooleanArray::from(vec![Some(true), None])),
                Arc::new(StringArray::from(vec![Some("né"), Some("")])),
                Arc::new(BinaryArray::from(vec![Some(&[0u8, 255][..]), None])),
                Arc::new(Float64Array::from(vec![Some(1.5), Some(-0.25)])),
            ],
        )
        .unwrap();
        let t = columns(&b).unwrap();
        let s = |c: usize, r: usize| {
            t[c][r]
                .as_deref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(s(0, 0).as_deref(), Some("9007199254740993"));
        assert_eq!(s(0, 1), None);
        assert_eq!(s(1, 0).as_deref(), Some("12345678901234567890.0123456789"));
        assert_eq!(s(1, 1).as_deref(), Some("-0.0000000001"));
        assert_eq!(s(2, 0).as_deref(), Some("1969-12-30T23:59:59.999999Z"));
        assert_eq!(s(2, 1).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(s(3, 0).as_deref(), Some("true"));
        assert_eq!(s(4, 0).as_deref(), Some("né"));
        assert_eq!(s(4, 1).as_deref(), Some(""));
        assert_eq!(t[5][0].as_deref(), Some(&[0u8, 255][..]));
        assert_eq!(s(6, 0).as_deref(), Some("1.5"));
    }
}
