//! Native column types -> how the column travels (Arrow type) and how a reader fetches it.

use arrow::datatypes::{DataType, TimeUnit};

use crate::dialect::Dialect;
use crate::rows::ReadKind;

/// The Arrow type of a column and how a reader decodes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrowMapping {
    pub arrow_type: DataType,
    pub read_kind: ReadKind,
}

/// Timezone name used for timezone-aware timestamps (values are UTC instants).
pub const UTC: &str = "UTC";

pub fn timestamp_type(with_tz: bool) -> DataType {
    DataType::Timestamp(
        TimeUnit::Microsecond,
        if with_tz { Some(UTC.into()) } else { None },
    )
}

fn direct(arrow_type: DataType, read_kind: ReadKind) -> ArrowMapping {
    ArrowMapping {
        arrow_type,
        read_kind,
    }
}

/// Read as text in SQL, then parse into `arrow_type`.
fn via_text(arrow_type: DataType) -> ArrowMapping {
    ArrowMapping {
        read_kind: ReadKind::TextAs(arrow_type.clone()),
        arrow_type,
    }
}

fn decimal(precision: Option<i64>, scale: Option<i64>) -> ArrowMapping {
    match (precision, scale) {
        (Some(p), s) if (1..=38).contains(&p) && (0..=p).contains(&s.unwrap_or(0)) => {
            via_text(DataType::Decimal128(p as u8, s.unwrap_or(0) as i8))
        }
        _ => via_text(DataType::Utf8),
    }
}

/// Parse `(p,s)` out of a declared type like `decimal(12,2)`.
pub fn type_params(declared: &str) -> (Option<i64>, Option<i64>) {
    let Some(open) = declared.find('(') else {
        return (None, None);
    };
    let Some(close) = declared[open..].find(')') else {
        return (None, None);
    };
    let mut parts = declared[open + 1..open + close]
        .split(',')
        .map(|p| p.trim().parse::<i64>().ok());
    (parts.next().flatten(), parts.next().flatten())
}

/// Map a column's native type. `data_type` is the bare type name (e.g. `int`, `character varying`),
/// `column_type` the full declaration when known (e.g. `int(10) unsigned`), `precision`/`scale`
/// the numeric precision and scale when known.
pub fn arrow_mapping(
    dialect: Dialect,
    data_type: &str,
    column_type: &str,
    precision: Option<i64>,
    scale: Option<i64>,
) -> ArrowMapping {
    let t = data_type.trim().to_ascii_lowercase();
    let full = column_type.to_ascii_lowercase();
    let base = match dialect {
        // MySQL names may carry modifiers (`bigint unsigned`, `int(10) unsigned`).
        Dialect::MySql => t.split(['(', ' ']).next().unwrap_or("").trim().to_string(),
        _ => t.split('(').next().unwrap_or("").trim().to_string(),
    };
    let full = if full.is_empty() { t.clone() } else { full };
    match dialect {
        Dialect::Sqlite => sqlite_mapping(&t, precision, scale),
        Dialect::MySql => {
            let unsigned = full.contains("unsigned");
            match base.as_str() {
                "tinyint" if unsigned => via_text(DataType::Int16),
                "tinyint" => direct(DataType::Int8, ReadKind::Int8),
                "smallint" if unsigned => via_text(DataType::Int32),
                "smallint" => direct(DataType::Int16, ReadKind::Int16),
                "mediumint" => direct(DataType::Int32, ReadKind::Int32),
                "int" | "integer" if unsigned => via_text(DataType::Int64),
                "int" | "integer" => direct(DataType::Int32, ReadKind::Int32),
                "bigint" if unsigned => via_text(DataType::Decimal128(20, 0)),
                "bigint" => direct(DataType::Int64, ReadKind::Int64),
                "bit" if precision == Some(1) || full == "bit(1)" => {
                    direct(DataType::Boolean, ReadKind::Bool)
                }
                "bool" | "boolean" => direct(DataType::Boolean, ReadKind::Bool),
                "float" => direct(DataType::Float32, ReadKind::Float32),
                "double" | "real" | "double precision" => {
                    direct(DataType::Float64, ReadKind::Float64)
                }
                "decimal" | "numeric" | "dec" | "fixed" => decimal(precision, scale),
                "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                    direct(DataType::Utf8, ReadKind::Utf8)
                }
                "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                    direct(DataType::Binary, ReadKind::Binary)
                }
                "date" => direct(DataType::Date32, ReadKind::Date32),
                "time" => via_text(DataType::Time64(TimeUnit::Microsecond)),
                "datetime" => direct(timestamp_type(false), ReadKind::Timestamp),
                "timestamp" => direct(timestamp_type(true), ReadKind::TimestampTz),
                "year" => via_text(DataType::Int32),
                _ => via_text(DataType::Utf8),
            }
        }
        Dialect::Postgres => match base.as_str() {
            "smallint" | "int2" | "smallserial" => direct(DataType::Int16, ReadKind::Int16),
            "integer" | "int" | "int4" | "serial" => direct(DataType::Int32, ReadKind::Int32),
            "bigint" | "int8" | "bigserial" => direct(DataType::Int64, ReadKind::Int64),
            "boolean" | "bool" => direct(DataType::Boolean, ReadKind::Bool),
            "real" | "float4" => direct(DataType::Float32, ReadKind::Float32),
            "double precision" | "float8" => direct(DataType::Float64, ReadKind::Float64),
            "numeric" | "decimal" => decimal(precision, scale),
            "character varying" | "varchar" | "text" | "character" | "char" | "bpchar" | "name" => {
                direct(DataType::Utf8, ReadKind::Utf8)
            }
            "bytea" => direct(DataType::Binary, ReadKind::Binary),
            "date" => direct(DataType::Date32, ReadKind::Date32),
            "time" | "time without time zone" => via_text(DataType::Time64(TimeUnit::Microsecond)),
            "timestamp" | "timestamp without time zone" => {
                direct(timestamp_type(false), ReadKind::Timestamp)
            }
            "timestamptz" | "timestamp with time zone" => {
                direct(timestamp_type(true), ReadKind::TimestampTz)
            }
            _ => via_text(DataType::Utf8),
        },
    }
}

/// SQLite: declared type affinity rules, plus the usual date/decimal/bool declarations.
fn sqlite_mapping(declared: &str, precision: Option<i64>, scale: Option<i64>) -> ArrowMapping {
    let (p, s) = match (precision, scale) {
        (None, None) => type_params(declared),
        other => other,
    };
    let base = declared.split('(').next().unwrap_or("").trim();
    if base == "bool" || base == "boolean" {
        return direct(DataType::Boolean, ReadKind::Bool);
    }
    if declared.contains("int") {
        return direct(DataType::Int64, ReadKind::Int64);
    }
    if declared.contains("char") || declared.contains("clob") || declared.contains("text") {
        return direct(DataType::Utf8, ReadKind::Utf8);
    }
    if declared.contains("blob") {
        return direct(DataType::Binary, ReadKind::Binary);
    }
    if declared.contains("real") || declared.contains("floa") || declared.contains("doub") {
        return direct(DataType::Float64, ReadKind::Float64);
    }
    match base {
        "date" => via_text(DataType::Date32),
        "datetime" | "timestamp" => via_text(timestamp_type(false)),
        "time" => via_text(DataType::Time64(TimeUnit::Microsecond)),
        "decimal" | "numeric" if p.is_some() => decimal(p, s),
        _ => direct(DataType::Utf8, ReadKind::Utf8),
    }
}

/// How a reader fetches a discovered column (recomputed from its native type; anything whose
/// mapping disagrees with the column's Arrow type is read as text and parsed).
pub fn read_kind(dialect: Dialect, col: &fdi_connector::ColumnInfo) -> ReadKind {
    let m = arrow_mapping(
        dialect,
        &col.native_type,
        &col.native_type,
        col.length,
        col.decimal_digits,
    );
    if m.arrow_type == col.arrow_type {
        m.read_kind
    } else {
        ReadKind::TextAs(col.arrow_type.clone())
    }
}

/// The Arrow schema of a reader's batches.
pub fn schema_of(columns: &[fdi_connector::ColumnInfo]) -> arrow::datatypes::SchemaRef {
    std::sync::Arc::new(arrow::datatypes::Schema::new(
        columns
            .iter()
            .map(|c| arrow::datatypes::Field::new(&c.name, c.arrow_type.clone(), true))
            .collect::<Vec<_>>(),
    ))
}

/// Pick `wanted` columns (in that order) out of a table's columns; a missing one is a user error.
pub fn pick_columns(
    table: &str,
    all: &[fdi_connector::ColumnInfo],
    wanted: &[String],
) -> fdi_connector::Result<Vec<fdi_connector::ColumnInfo>> {
    if wanted.is_empty() {
        return Ok(all.to_vec());
    }
    wanted
        .iter()
        .map(|w| {
            all.iter()
                .find(|c| c.name == *w)
                .or_else(|| all.iter().find(|c| c.name.eq_ignore_ascii_case(w)))
                .cloned()
                .ok_or_else(|| {
                    fdi_connector::ConnectorError::user(format!(
                        "column \"{w}\" does not exist in table \"{table}\""
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_common_types() {
        let m = arrow_mapping(
            Dialect::Postgres,
            "numeric",
            "numeric(12,2)",
            Some(12),
            Some(2),
        );
        assert_eq!(m.arrow_type, DataType::Decimal128(12, 2));
        let m = arrow_mapping(Dialect::MySql, "int", "int(10) unsigned", None, None);
        assert_eq!(m.arrow_type, DataType::Int64);
        let m = arrow_mapping(Dialect::Sqlite, "decimal(8,3)", "decimal(8,3)", None, None);
        assert_eq!(m.arrow_type, DataType::Decimal128(8, 3));
    }
}
