//! Column names, keys and value kinds of the captured tables, from information_schema (the
//! binlog's table map has types but no names unless `binlog_row_metadata=FULL`).

use std::sync::Arc;

use fdi_connector::change::{ChangeColumn, ChangeTable, TableId};
use fdi_connector::{ConnectorError, Result};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::map_err;

/// How a column's values are turned into [`fdi_connector::change::ChangeValue`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Integer of `bits` width; unsigned ones arrive signed from the binlog and are fixed here.
    Int {
        unsigned: bool,
        bits: u32,
    },
    Float,
    Double,
    Decimal,
    Bit,
    Year,
    Date,
    DateTime,
    Timestamp,
    Time,
    /// Text in the column's character set (the binlog carries the stored bytes).
    Text {
        charset: Charset,
    },
    Binary,
    Enum(Vec<String>),
    Set(Vec<String>),
    /// MySQL's binary JSON (MariaDB stores JSON as LONGTEXT: [`Kind::Text`]).
    Json,
    /// Anything else (geometry, MariaDB's inet6 / uuid, ...): text when it is UTF-8, else bytes.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    Latin1,
    /// Another character set: decoded as UTF-8 where it is, lossily otherwise.
    Other,
}

/// A captured table: its columns as the change events name them, and how to read each.
#[derive(Debug, Clone)]
pub struct TableSchema {
    pub table: Arc<ChangeTable>,
    pub kinds: Vec<Kind>,
}

impl TableSchema {
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// The first `n` columns only (a binlog event written before columns were appended).
    pub fn truncated(&self, n: usize) -> TableSchema {
        TableSchema {
            table: Arc::new(ChangeTable {
                id: self.table.id.clone(),
                columns: self.table.columns[..n].to_vec(),
            }),
            kinds: self.kinds[..n].to_vec(),
        }
    }
}

type ColumnRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Load a table's columns in table order; None when the table does not exist.
pub async fn load(conn: &mut Conn, id: &TableId) -> Result<Option<TableSchema>> {
    let rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME, COLUMN_KEY, \
             IS_NULLABLE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND \
             TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&id.schema, &id.name),
        )
        .await
        .map_err(|e| map_err(&format!("columns of {id}"), e))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut keys: Vec<bool> = rows.iter().map(|r| r.4.as_deref() == Some("PRI")).collect();
    if !keys.contains(&true) {
        // No primary key: the first unique index over NOT NULL columns identifies rows.
        let index: Vec<(String, String)> = conn
            .exec(
                "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE \
                 TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, \
                 SEQ_IN_INDEX",
                (&id.schema, &id.name),
            )
            .await
            .map_err(|e| map_err(&format!("indexes of {id}"), e))?;
        let not_null = |c: &str| {
            rows.iter()
                .any(|r| r.0 == c && r.5.as_deref() == Some("NO"))
        };
        let mut names: Vec<&str> = index.iter().map(|(i, _)| i.as_str()).collect();
        names.dedup();
        if let Some(chosen) = names.into_iter().find(|name| {
            index
                .iter()
                .filter(|(i, _)| i == name)
                .all(|(_, c)| not_null(c))
        }) {
            for (_, c) in index.iter().filter(|(i, _)| i == chosen) {
                if let Some(k) = rows.iter().position(|r| &r.0 == c) {
                    keys[k] = true;
                }
            }
        }
    }
    let mut columns = Vec::with_capacity(rows.len());
    let mut kinds = Vec::with_capacity(rows.len());
    for ((name, data_type, column_type, charset, _, _), key) in rows.into_iter().zip(keys) {
        kinds.push(kind(&data_type, &column_type, charset.as_deref()));
        columns.push(ChangeColumn {
            name,
            native_type: column_type.to_ascii_lowercase(),
            key,
        });
    }
    Ok(Some(TableSchema {
        table: Arc::new(ChangeTable {
            id: id.clone(),
            columns,
        }),
        kinds,
    }))
}

/// Like [`load`], a missing table being a user error.
pub async fn require(conn: &mut Conn, id: &TableId) -> Result<TableSchema> {
    load(conn, id)
        .await?
        .ok_or_else(|| ConnectorError::user(format!("table {id} does not exist")))
}

fn kind(data_type: &str, column_type: &str, charset: Option<&str>) -> Kind {
    let t = data_type.to_ascii_lowercase();
    let full = column_type.to_ascii_lowercase();
    let unsigned = full.contains("unsigned");
    let int = |bits| Kind::Int { unsigned, bits };
    match t.as_str() {
        "tinyint" => int(8),
        "smallint" => int(16),
        "mediumint" => int(24),
        "int" | "integer" => int(32),
        "bigint" => int(64),
        "float" => Kind::Float,
        "double" | "real" | "double precision" => Kind::Double,
        "decimal" | "numeric" | "dec" | "fixed" => Kind::Decimal,
        "bit" => Kind::Bit,
        "year" => Kind::Year,
        "date" => Kind::Date,
        "datetime" => Kind::DateTime,
        "timestamp" => Kind::Timestamp,
        "time" => Kind::Time,
        "json" => Kind::Json,
        "enum" => Kind::Enum(members(column_type)),
        "set" => Kind::Set(members(column_type)),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Kind::Binary,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
            match charset.map(str::to_ascii_lowercase).as_deref() {
                Some("binary") => Kind::Binary,
                Some(c) if c.starts_with("utf8") || c == "ascii" => Kind::Text {
                    charset: Charset::Utf8,
                },
                Some("latin1") => Kind::Text {
                    charset: Charset::Latin1,
                },
                _ => Kind::Text {
                    charset: Charset::Other,
                },
            }
        }
        _ => Kind::Other,
    }
}

/// The members of `enum('a','b''c')` / `set(...)` as COLUMN_TYPE spells them (`''` and `\\`
/// escaped).
fn members(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut chars = column_type[start + 1..].chars().peekable();
    let mut current: Option<String> = None;
    while let Some(c) = chars.next() {
        match (&mut current, c) {
            (None, '\'') => current = Some(String::new()),
            (None, ')') => break,
            (None, _) => {}
            (Some(s), '\\') => {
                if let Some(n) = chars.next() {
                    s.push(n);
                }
            }
            (Some(s), '\'') => {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    s.push('\'');
                } else {
                    out.extend(current.take());
                }
            }
            (Some(s), _) => s.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_members_are_unescaped() {
        assert_eq!(
            members(r"enum('a''b','c\\d','x,y','')"),
            vec!["a'b", r"c\d", "x,y", ""]
        );
        assert_eq!(members("set('a','b')"), vec!["a", "b"]);
    }

    #[test]
    fn kinds_follow_the_declared_type() {
        assert_eq!(
            kind("int", "int(10) unsigned", None),
            Kind::Int {
                unsigned: true,
                bits: 32
            }
        );
        assert_eq!(kind("varchar", "varchar(10)", Some("binary")), Kind::Binary);
        assert_eq!(
            kind("longtext", "longtext", Some("utf8mb4")),
            Kind::Text {
                charset: Charset::Utf8
            }
        );
        assert_eq!(kind("geometry", "geometry", None), Kind::Other);
    }
}
