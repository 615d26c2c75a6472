//! The combination-task mapper: which source tables a selection names, what each is called in the
//! target, and which columns pair up (by name, with compatible types), with the share matched.

use std::collections::BTreeSet;

use arrow::datatypes::DataType;
use fdi_connector::ColumnInfo;
use fdi_connector::change::TableId;
use serde::{Deserialize, Serialize};

use crate::TableMapping;

/// The mapping statuses of the reference: AUTO (made by auto-mapping), MANUAL (added by a user),
/// ADD (a new source table matching a `schema.*` selection), UPDATE (the source table's columns
/// changed), DELETE (the source table is gone), USING (applied by a running task).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MappingStatus {
    Auto,
    Manual,
    Add,
    Update,
    Delete,
    Using,
}

impl MappingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "AUTO",
            Self::Manual => "MANUAL",
            Self::Add => "ADD",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Using => "USING",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "AUTO" => Self::Auto,
            "MANUAL" => Self::Manual,
            "ADD" => Self::Add,
            "UPDATE" => Self::Update,
            "DELETE" => Self::Delete,
            "USING" => Self::Using,
            _ => return None,
        })
    }

    /// Whether a running task applies changes of a mapping in this state (a DELETE mapping's
    /// source table is gone).
    pub fn applies(self) -> bool {
        self != Self::Delete
    }
}

/// One pair of columns (the reference's MappingInfo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnPair {
    pub source_column: String,
    pub source_column_type: String,
    #[serde(default)]
    pub source_column_length: Option<String>,
    pub target_column: String,
    pub target_column_type: String,
    #[serde(default)]
    pub target_column_length: Option<String>,
}

/// A column as a mapping lists it (the reference's MultiTaskColumnInfo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedColumn {
    pub field_name: String,
    pub field_type: String,
    #[serde(default)]
    pub field_length: Option<String>,
}

impl From<&ColumnInfo> for MappedColumn {
    fn from(c: &ColumnInfo) -> Self {
        Self {
            field_name: c.name.clone(),
            field_type: c.native_type.clone(),
            field_length: c.length.map(|l| l.to_string()),
        }
    }
}

/// What auto-mapping made of one source table.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoMapped {
    pub pairs: Vec<ColumnPair>,
    /// Share of the source columns that found a target column, 0-100.
    pub percent: i32,
    /// Why the other source columns did not (`"c: no target column"`,
    /// `"b: int8 cannot hold text"`).
    pub mismatches: Vec<String>,
}

/// Pair the source columns with target columns of the same name (case-insensitive) whose type
/// can hold the source's.
pub fn auto_map(source: &[ColumnInfo], target: &[ColumnInfo]) -> AutoMapped {
    let mut pairs = Vec::new();
    let mut mismatches = Vec::new();
    for s in source {
        match target.iter().find(|t| t.name.eq_ignore_ascii_case(&s.name)) {
            None => mismatches.push(format!("{}: no target column of that name", s.name)),
            Some(t) if !compatible(&s.arrow_type, &t.arrow_type) => mismatches.push(format!(
                "{}: the target's {} cannot hold the source's {}",
                s.name, t.native_type, s.native_type
            )),
            Some(t) => pairs.push(ColumnPair {
                source_column: s.name.clone(),
                source_column_type: s.native_type.clone(),
                source_column_length: s.length.map(|l| l.to_string()),
                target_column: t.name.clone(),
                target_column_type: t.native_type.clone(),
                target_column_length: t.length.map(|l| l.to_string()),
            }),
        }
    }
    let percent = if source.is_empty() {
        0
    } else {
        (pairs.len() * 100 / source.len()) as i32
    };
    mismatches.extend(key_notes(target, &pairs));
    AutoMapped {
        pairs,
        percent,
        mismatches,
    }
}

/// What the target table's key means for the changes a task can apply: a target without a
/// primary key takes INSERTs only (UPDATE and DELETE changes are skipped and counted dirty);
/// a key column left unmapped keeps the task from starting.
pub fn key_notes(target: &[ColumnInfo], pairs: &[ColumnPair]) -> Vec<String> {
    let key: Vec<&ColumnInfo> = target.iter().filter(|c| c.primary).collect();
    if key.is_empty() {
        return vec![
            "the target table has no primary key: only INSERT changes are applied, UPDATE and \
             DELETE changes are skipped and counted as dirty rows"
                .to_string(),
        ];
    }
    key.iter()
        .filter(|k| !pairs.iter().any(|p| p.target_column == k.name))
        .map(|k| {
            format!(
                "{}: the target's key column is not mapped: the task cannot start until it is",
                k.name
            )
        })
        .collect()
}

/// Whether values of `source` can land in `target` without loss of meaning: same family
/// (numbers, text, time, binary, bool), or text as target of anything.
pub fn compatible(source: &DataType, target: &DataType) -> bool {
    use DataType::*;
    let family = |t: &DataType| -> u8 {
        match t {
            Boolean => 1,
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float16 | Float32
            | Float64 | Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => 2,
            Utf8 | LargeUtf8 | Utf8View => 3,
            Date32 | Date64 | Timestamp(..) => 4,
            Time32(_) | Time64(_) => 5,
            Binary | LargeBinary | FixedSizeBinary(_) | BinaryView => 6,
            _ => 0,
        }
    };
    let (s, t) = (family(source), family(target));
    t == 3 || (s != 0 && s == t) || (s == 1 && t == 2)
}

/// What a stored mapping holds besides its tables, status and percent (the `body` column of the
/// store): both sides' columns and the pairs, and why unpaired source columns are unpaired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingBody {
    #[serde(default)]
    pub source_columns: Vec<MappedColumn>,
    #[serde(default)]
    pub target_columns: Vec<MappedColumn>,
    #[serde(default)]
    pub mapping: Vec<ColumnPair>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<String>,
}

impl MappingBody {
    pub fn parse(body: &str) -> Result<Self, String> {
        serde_json::from_str(body).map_err(|e| format!("stored mapping: {e}"))
    }

    /// The table mapping a running task applies.
    pub fn table_mapping(
        &self,
        source_table: &str,
        target_table: &str,
    ) -> Result<TableMapping, String> {
        let (schema, name) = source_table
            .split_once('.')
            .ok_or_else(|| format!("source_table: {source_table:?} is not schema.table"))?;
        Ok(TableMapping {
            source: TableId::new(schema, name),
            target_table: target_table.to_string(),
            columns: self
                .mapping
                .iter()
                .map(|p| (p.source_column.clone(), p.target_column.clone()))
                .collect(),
            source_columns: self
                .source_columns
                .iter()
                .map(|c| c.field_name.clone())
                .collect(),
        })
    }
}

/// A table selection: `schema.t1,schema.t2`, `schema.*`, or both mixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub tables: BTreeSet<TableId>,
    /// Schemas all of whose tables are selected, now and later.
    pub schemas: BTreeSet<String>,
}

impl Selection {
    /// Parse `field`'s value; the error names the field and the entry.
    pub fn parse(field: &str, s: &str) -> Result<Self, String> {
        let mut tables = BTreeSet::new();
        let mut schemas = BTreeSet::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((schema, table)) = entry.split_once('.') else {
                return Err(format!(
                    "{field}: {entry:?} is not schema.table or schema.*"
                ));
            };
            if schema.is_empty() || table.is_empty() || table.contains('.') {
                return Err(format!(
                    "{field}: {entry:?} is not schema.table or schema.*"
                ));
            }
            if table == "*" {
                schemas.insert(schema.to_string());
            } else {
                tables.insert(TableId::new(schema, table));
            }
        }
        if tables.is_empty() && schemas.is_empty() {
            return Err(format!("{field}: no table selected"));
        }
        Ok(Self { tables, schemas })
    }

    pub fn matches(&self, t: &TableId) -> bool {
        self.schemas.contains(&t.schema) || self.tables.contains(t)
    }
}

/// The target name of a source table: prefix + name + suffix.
pub fn target_name(source: &TableId, prefix: &str, suffix: &str) -> String {
    format!("{prefix}{}{suffix}", source.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, native: &str, t: DataType) -> ColumnInfo {
        ColumnInfo::new(name, native, t)
    }

    #[test]
    fn auto_map_pairs_by_name_and_type_and_reports_the_rest() {
        let source = [
            col("id", "int4", DataType::Int32),
            col("Name", "text", DataType::Utf8),
            col("price", "numeric", DataType::Decimal128(10, 2)),
            col("extra", "text", DataType::Utf8),
            col("flag", "bool", DataType::Boolean),
        ];
        let target = [
            col("id", "bigint", DataType::Int64),
            col("name", "varchar", DataType::Utf8),
            col("price", "date", DataType::Date32),
            col("flag", "tinyint", DataType::Int8),
        ];
        let m = auto_map(&source, &target);
        let names: Vec<_> = m
            .pairs
            .iter()
            .map(|p| (p.source_column.as_str(), p.target_column.as_str()))
            .collect();
        assert_eq!(names, [("id", "id"), ("Name", "name"), ("flag", "flag")]);
        assert_eq!(m.percent, 60);
        assert_eq!(m.mismatches.len(), 3);
        assert!(m.mismatches[0].starts_with("price: the target's date"));
        assert!(m.mismatches[1].starts_with("extra: no target column"));
        assert!(
            m.mismatches[2].starts_with("the target table has no primary key"),
            "{:?}",
            m.mismatches
        );

        // A keyed target: nothing to say; its key unmapped: said.
        let mut keyed = target.to_vec();
        keyed[0].primary = true;
        assert_eq!(auto_map(&source, &keyed).mismatches.len(), 2);
        keyed[0].name = "code".into();
        let m = auto_map(&source, &keyed);
        assert!(
            m.mismatches
                .iter()
                .any(|n| n.starts_with("code: the target's key column is not mapped")),
            "{:?}",
            m.mismatches
        );
    }

    #[test]
    fn selections() {
        let s = Selection::parse("tables", "public.a, public.b,sales.*").unwrap();
        assert!(s.matches(&TableId::new("public", "a")));
        assert!(!s.matches(&TableId::new("public", "c")));
        assert!(s.matches(&TableId::new("sales", "anything")));
        let e = Selection::parse("tables", "public.a,b").unwrap_err();
        assert!(e.contains("tables") && e.contains("\"b\""), "{e}");
        assert!(Selection::parse("tables", " , ").is_err());
        assert_eq!(
            target_name(&TableId::new("s", "t"), "ods_", "_v1"),
            "ods_t_v1"
        );
    }
}
