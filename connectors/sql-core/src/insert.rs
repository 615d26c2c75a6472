//! Multi-row INSERT / upsert statements with literal values.

use arrow::record_batch::RecordBatch;
use fdi_connector::Result;

use crate::dialect::Dialect;
use crate::literal::{ColumnFormatter, Output};

/// `INSERT INTO t (a, b) VALUES `
pub fn insert_prefix(dialect: Dialect, table: &str, columns: &[String]) -> String {
    let cols = columns
        .iter()
        .map(|c| dialect.quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {} ({cols}) VALUES ",
        dialect.quote_table(table)
    )
}

/// `INSERT INTO t AS fdi_t (a, b) VALUES ` (PostgreSQL / SQLite upserts refer to the alias).
pub fn upsert_prefix(dialect: Dialect, table: &str, columns: &[String]) -> String {
    if dialect == Dialect::MySql {
        return insert_prefix(dialect, table, columns);
    }
    let cols = columns
        .iter()
        .map(|c| dialect.quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO {} AS fdi_t ({cols}) VALUES ",
        dialect.quote_table(table)
    )
}

/// The upsert clause appended after the VALUES list (MySQL / SQLite).
pub fn upsert_suffix(
    dialect: Dialect,
    columns: &[String],
    keys: &[String],
    part_update: bool,
) -> String {
    let q = |c: &String| dialect.quote_ident(c);
    let updates: Vec<&String> = columns.iter().filter(|c| !keys.contains(c)).collect();
    match dialect {
        Dialect::MySql => {
            if updates.is_empty() {
                let k = q(&keys[0]);
                return format!(" ON DUPLICATE KEY UPDATE {k} = {k}");
            }
            // MySQL only writes rows whose values changed, so part_update needs nothing more.
            let set = updates
                .iter()
                .map(|c| format!("{0} = VALUES({0})", q(c)))
                .collect::<Vec<_>>()
                .join(", ");
            format!(" ON DUPLICATE KEY UPDATE {set}")
        }
        Dialect::Sqlite | Dialect::Postgres => {
            let keys_sql = keys.iter().map(q).collect::<Vec<_>>().join(", ");
            if updates.is_empty() {
                return format!(" ON CONFLICT ({keys_sql}) DO NOTHING");
            }
            let set = updates
                .iter()
                .map(|c| format!("{0} = excluded.{0}", q(c)))
                .collect::<Vec<_>>()
                .join(", ");
            let mut s = format!(" ON CONFLICT ({keys_sql}) DO UPDATE SET {set}");
            if part_update {
                let op = if dialect == Dialect::Postgres {
                    "IS DISTINCT FROM"
                } else {
                    "IS NOT"
                };
                let (old_row, new_row) = if updates.len() == 1 {
                    (
                        format!("fdi_t.{}", q(updates[0])),
                        format!("excluded.{}", q(updates[0])),
                    )
                } else {
                    let old = updates
                        .iter()
                        .map(|c| format!("fdi_t.{}", q(c)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let new = updates
                        .iter()
                        .map(|c| format!("excluded.{}", q(c)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    (format!("({old})"), format!("({new})"))
                };
                s.push_str(&format!(" WHERE {old_row} {op} {new_row}"));
            }
            s
        }
    }
}

/// `DELETE FROM table WHERE (k1, k2) IN ((..), (..))` statements of at most `rows_per_statement`
/// rows each, for the key rows of `keys` (its columns are the key columns, named as the table's);
/// `table_sql` is already quoted.
pub fn delete_statements(
    dialect: Dialect,
    table_sql: &str,
    keys: &RecordBatch,
    rows_per_statement: usize,
) -> Result<Vec<String>> {
    let key_list = keys
        .schema()
        .fields()
        .iter()
        .map(|f| dialect.quote_ident(f.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let formatters = formatters(keys, Output::Literal(dialect))?;
    let mut statements = Vec::new();
    let rows = keys.num_rows();
    let mut start = 0;
    while start < rows {
        let end = (start + rows_per_statement.max(1)).min(rows);
        let mut sql = format!("DELETE FROM {table_sql} WHERE ({key_list}) IN (");
        for i in start..end {
            if i > start {
                sql.push(',');
            }
            push_row_tuple(&mut sql, &formatters, i);
        }
        sql.push(')');
        statements.push(sql);
        start = end;
    }
    Ok(statements)
}

/// Formatters for every column of a batch.
pub fn formatters(batch: &RecordBatch, output: Output) -> Result<Vec<ColumnFormatter<'_>>> {
    batch
        .columns()
        .iter()
        .map(|c| ColumnFormatter::new(c, output))
        .collect()
}

/// Append `(v1, v2, ...)` for row `i`.
pub fn push_row_tuple(out: &mut String, formatters: &[ColumnFormatter<'_>], i: usize) {
    out.push('(');
    for (j, f) in formatters.iter().enumerate() {
        if j > 0 {
            out.push(',');
        }
        f.push(out, i);
    }
    out.push(')');
}

/// Append one COPY text line for row `i`.
pub fn push_copy_line(out: &mut String, formatters: &[ColumnFormatter<'_>], i: usize) {
    for (j, f) in formatters.iter().enumerate() {
        if j > 0 {
            out.push('\t');
        }
        f.push(out, i);
    }
    out.push('\n');
}

/// Multi-row statements of at most about `max_statement_bytes` each, and the payload bytes
/// (values only) they carry.
pub fn insert_statements(
    batch: &RecordBatch,
    dialect: Dialect,
    prefix: &str,
    suffix: &str,
    max_statement_bytes: usize,
) -> Result<(Vec<String>, u64)> {
    let fmts = formatters(batch, Output::Literal(dialect))?;
    let mut statements = Vec::new();
    let mut payload = 0u64;
    let mut buf = String::new();
    for i in 0..batch.num_rows() {
        if buf.is_empty() {
            buf.reserve(max_statement_bytes.min(1 << 20) + 1024);
            buf.push_str(prefix);
        } else {
            buf.push(',');
        }
        let before = buf.len();
        push_row_tuple(&mut buf, &fmts, i);
        payload += (buf.len() - before) as u64;
        if buf.len() >= max_statement_bytes {
            buf.push_str(suffix);
            statements.push(std::mem::take(&mut buf));
        }
    }
    if !buf.is_empty() {
        buf.push_str(suffix);
        statements.push(buf);
    }
    Ok((statements, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_clauses() {
        let cols = vec!["id".to_string(), "a".to_string(), "b".to_string()];
        let keys = vec!["id".to_string()];
        assert_eq!(
            upsert_suffix(Dialect::MySql, &cols, &keys, false),
            " ON DUPLICATE KEY UPDATE `a` = VALUES(`a`), `b` = VALUES(`b`)"
        );
        assert_eq!(
            upsert_suffix(Dialect::Postgres, &cols, &keys, true),
            " ON CONFLICT (\"id\") DO UPDATE SET \"a\" = excluded.\"a\", \"b\" = excluded.\"b\" WHERE (fdi_t.\"a\", fdi_t.\"b\") IS DISTINCT FROM (excluded.\"a\", excluded.\"b\")"
        );
        let two = vec!["id".to_string(), "a".to_string()];
        assert_eq!(
            upsert_suffix(Dialect::Postgres, &two, &keys, true),
            " ON CONFLICT (\"id\") DO UPDATE SET \"a\" = excluded.\"a\" WHERE fdi_t.\"a\" IS DISTINCT FROM excluded.\"a\""
        );
    }
}
