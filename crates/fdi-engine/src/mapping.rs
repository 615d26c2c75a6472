//! Between reader and writer: pick, rename and cast each batch's columns to the target's types,
//! drop rows whose values do not convert (counted as dirty), add the batch-number column.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use arrow::compute::kernels::boolean::{and_not, or};
use arrow::compute::{CastOptions, cast_with_options, filter_record_batch, is_not_null};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::array_value_to_string;

use crate::plan::ExecPlan;

/// Coarse families of Arrow types, for deciding which source -> target pairs make sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeFamily {
    Boolean,
    Numeric,
    Text,
    Binary,
    Date,
    Time,
    Timestamp,
    Other,
}

fn type_family(t: &DataType) -> TypeFamily {
    match t {
        DataType::Boolean => TypeFamily::Boolean,
        t if t.is_numeric() => TypeFamily::Numeric,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => TypeFamily::Text,
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => TypeFamily::Binary,
        DataType::Date32 | DataType::Date64 => TypeFamily::Date,
        DataType::Time32(_) | DataType::Time64(_) => TypeFamily::Time,
        DataType::Timestamp(_, _) => TypeFamily::Timestamp,
        _ => TypeFamily::Other,
    }
}

/// Whether values of `from` can sensibly become `to`. Clearly impossible pairs (binary -> integer,
/// date -> boolean, ...) are refused up front; text parses into anything, anything prints as
/// text, and values that fail to convert at run time become dirty rows.
pub fn convertible(from: &DataType, to: &DataType) -> bool {
    use TypeFamily::*;
    let (f, t) = (type_family(from), type_family(to));
    match (f, t) {
        _ if f == t => true,
        (_, Text) | (Text, _) => true,
        (Boolean, Numeric) | (Numeric, Boolean) => true,
        (Date, Timestamp) | (Timestamp, Date) | (Timestamp, Time) => true,
        _ => false,
    }
}

/// Turns reader batches into writer batches.
pub struct BatchMapper {
    /// (source column index, target type) per written column, in write order.
    columns: Vec<(usize, DataType)>,
    /// The batch-number column's value, already of the target's type (one row; repeated).
    batch_number: Option<(String, DataType)>,
    schema: SchemaRef,
}

/// A mapped batch and the rows dropped because a value did not convert.
pub struct Mapped {
    pub batch: RecordBatch,
    /// The dropped rows: (row index in the source batch, why), in row order.
    pub dirty: Vec<(usize, String)>,
}

impl BatchMapper {
    pub fn new(plan: &ExecPlan, batch_id: &str) -> Self {
        let columns = plan
            .pairs
            .iter()
            .map(|p| (p.source_index, p.target.arrow_type.clone()))
            .collect();
        let schema = Arc::new(Schema::new(
            plan.write
                .columns
                .iter()
                .map(|c| Field::new(&c.name, c.arrow_type.clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch_number = plan
            .batch_number
            .as_ref()
            .map(|c| (batch_id.to_string(), c.arrow_type.clone()));
        Self {
            columns,
            batch_number,
            schema,
        }
    }

    pub fn map(&self, batch: &RecordBatch) -> Result<Mapped, String> {
        let rows = batch.num_rows();
        let opts = CastOptions {
            safe: true,
            ..Default::default()
        };
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 1);
        // Rows where a non-null value became null by the cast.
        let mut lost: Option<BooleanArray> = None;
        // (row, why) for each value lost.
        let mut reasons: Vec<(usize, String)> = Vec::new();
        for (pos, (idx, to)) in self.columns.iter().enumerate() {
            let src = batch.column(*idx);
            if src.data_type() == to {
                out.push(src.clone());
                continue;
            }
            let cast = cast_with_options(src, to, &opts)
                .map_err(|e| format!("cast {} to {to}: {e}", src.data_type()))?;
            if cast.null_count() > src.null_count() {
                let was = is_not_null(src.as_ref()).map_err(|e| e.to_string())?;
                let now = is_not_null(cast.as_ref()).map_err(|e| e.to_string())?;
                let this_lost = and_not(&was, &now).map_err(|e| e.to_string())?;
                let target = self.schema.field(pos).name();
                for row in (0..rows).filter(|&r| this_lost.value(r)) {
                    let value = array_value_to_string(src.as_ref(), row).unwrap_or_default();
                    reasons.push((
                        row,
                        format!("column {target}: {value:?} does not convert to {to}"),
                    ));
                }
                lost = Some(match lost {
                    None => this_lost,
                    Some(prev) => or(&prev, &this_lost).map_err(|e| e.to_string())?,
                });
            }
            out.push(cast);
        }
        if let Some((id, to)) = &self.batch_number {
            let ids: ArrayRef = Arc::new(StringArray::from(vec![id.as_str(); rows]));
            let col = if *to == DataType::Utf8 {
                ids
            } else {
                cast_with_options(&ids, to, &opts).map_err(|e| e.to_string())?
            };
            out.push(col);
        }
        let mapped = RecordBatch::try_new(self.schema.clone(), out)
            .map_err(|e| format!("mapped batch: {e}"))?;
        match lost {
            Some(lost) if lost.true_count() > 0 => {
                let keep = arrow::compute::not(&lost).map_err(|e| e.to_string())?;
                let kept = filter_record_batch(&mapped, &keep).map_err(|e| e.to_string())?;
                Ok(Mapped {
                    batch: kept,
                    dirty: per_row(reasons),
                })
            }
            _ => Ok(Mapped {
                batch: mapped,
                dirty: Vec::new(),
            }),
        }
    }
}

/// One entry per row, in row order, the reasons of a row joined.
fn per_row(mut reasons: Vec<(usize, String)>) -> Vec<(usize, String)> {
    reasons.sort_by_key(|(row, _)| *row);
    let mut out: Vec<(usize, String)> = Vec::with_capacity(reasons.len());
    for (row, why) in reasons {
        match out.last_mut() {
            Some((last, all)) if *last == row => {
                all.push_str("; ");
                all.push_str(&why);
            }
            _ => out.push((row, why)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_impossible_pairs() {
        assert!(convertible(&DataType::Int32, &DataType::Utf8));
        assert!(convertible(&DataType::Utf8, &DataType::Int64));
        assert!(convertible(&DataType::Int32, &DataType::Decimal128(10, 2)));
        assert!(!convertible(&DataType::Binary, &DataType::Int64));
        assert!(!convertible(&DataType::Date32, &DataType::Boolean));
    }
}
