//! Result columns of a custom query (`test-sql`, `isAddSql`), from preparing it.

use fdi_connector::ColumnInfo;
use sqlx::{Column, ColumnOrigin, TypeInfo};

use crate::{Dialect, arrow_mapping};

/// A prepared statement's result columns. Columns that come straight from a table column can
/// take that column's own metadata (nullable, primary, unique, length, decimal digits) with
/// [`ResultColumns::apply_table`]; the others stay nullable and not a key.
pub struct ResultColumns {
    columns: Vec<ColumnInfo>,
    /// Per column: the table and column it is read from, when the driver knows.
    origins: Vec<Option<(String, String)>>,
}

impl ResultColumns {
    pub fn new<C: Column>(dialect: Dialect, columns: &[C]) -> Self {
        let mut out = Self {
            columns: Vec::with_capacity(columns.len()),
            origins: Vec::with_capacity(columns.len()),
        };
        for c in columns {
            let native = c.type_info().name().to_ascii_lowercase();
            let native = if dialect == Dialect::Sqlite && native == "null" {
                "text".to_string()
            } else {
                native
            };
            let mapping = arrow_mapping(dialect, &native, &native, None, None);
            out.columns.push(ColumnInfo {
                name: c.name().to_string(),
                native_type: native,
                length: None,
                decimal_digits: None,
                nullable: true,
                primary: false,
                unique: false,
                arrow_type: mapping.arrow_type,
            });
            out.origins.push(match c.origin() {
                ColumnOrigin::Table(t) => Some((t.table.to_string(), t.name.to_string())),
                _ => None,
            });
        }
        out
    }

    /// The distinct tables the columns are read from.
    pub fn origin_tables(&self) -> Vec<String> {
        let mut tables: Vec<String> = self
            .origins
            .iter()
            .flatten()
            .map(|(t, _)| t.clone())
            .collect();
        tables.sort();
        tables.dedup();
        tables
    }

    /// Copy the metadata of `table`'s columns onto the result columns read from them.
    pub fn apply_table(&mut self, table: &str, table_columns: &[ColumnInfo]) {
        for (info, origin) in self.columns.iter_mut().zip(&self.origins) {
            let Some((t, col)) = origin else { continue };
            if t != table {
                continue;
            }
            if let Some(tc) = table_columns.iter().find(|tc| tc.name == *col) {
                info.length = tc.length;
                info.decimal_digits = tc.decimal_digits;
                info.nullable = tc.nullable;
                info.primary = tc.primary;
                info.unique = tc.unique;
            }
        }
    }

    pub fn into_columns(self) -> Vec<ColumnInfo> {
        self.columns
    }
}
