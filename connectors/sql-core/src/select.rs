//! SELECT statements for readers: a table with selected columns, filters and order, or a custom
//! query wrapped as a derived table.

use fdi_connector::OrderBy;
use fdi_types::{WhereCondition, WhereOp};

use crate::dialect::Dialect;

/// One column of the SELECT list.
#[derive(Debug, Clone)]
pub struct SelectColumn<'a> {
    pub name: &'a str,
    /// Cast the column to text in SQL (the reader parses it into its Arrow type).
    pub as_text: bool,
    /// Or cast it to this SQL type (`CAST(col AS <type>)`), e.g. SQLite's storage classes.
    pub cast_to: Option<&'static str>,
}

/// Builds the final SELECT once the select list (with casts) is known.
pub type SelectBuilder = Box<dyn Fn(&[SelectColumn<'_>]) -> String + Send>;

fn select_list(dialect: Dialect, columns: &[SelectColumn<'_>]) -> String {
    if columns.is_empty() {
        return "*".to_string();
    }
    columns
        .iter()
        .map(|c| {
            let q = dialect.quote_ident(c.name);
            match (c.as_text, c.cast_to) {
                (true, _) => format!("{} AS {q}", dialect.text_cast(&q)),
                (false, Some(t)) => format!("CAST({q} AS {t}) AS {q}"),
                (false, None) => q,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SELECT cols FROM table [WHERE ...] [ORDER BY col ASC|DESC]`.
pub fn table_select(
    dialect: Dialect,
    table: &str,
    columns: &[SelectColumn<'_>],
    filters: &[WhereCondition],
    order_by: Option<&OrderBy>,
) -> String {
    let mut sql = format!(
        "SELECT {} FROM {}",
        select_list(dialect, columns),
        dialect.quote_table(table)
    );
    if let Some(w) = where_clause(dialect, filters) {
        sql.push_str(" WHERE ");
        sql.push_str(&w);
    }
    if let Some(o) = order_by {
        sql.push_str(&format!(
            " ORDER BY {} {}",
            dialect.quote_ident(&o.column),
            if o.descending { "DESC" } else { "ASC" }
        ));
    }
    sql
}

/// `SELECT min(column), max(column) FROM table [WHERE ...]` as 64-bit integers, for a table query
/// (`table` already qualified as the reader reads it); None for other queries.
pub fn key_range_select(
    dialect: Dialect,
    query: &fdi_connector::SourceQuery,
    table: &str,
    column: &str,
) -> Option<String> {
    let fdi_connector::SourceQuery::Table { filters, .. } = query else {
        return None;
    };
    let c = dialect.quote_ident(column);
    let int = match dialect {
        Dialect::Postgres => "bigint",
        Dialect::MySql => "SIGNED",
        Dialect::Sqlite => "INTEGER",
    };
    let mut sql = format!(
        "SELECT CAST(min({c}) AS {int}), CAST(max({c}) AS {int}) FROM {}",
        dialect.quote_table(table)
    );
    if let Some(w) = where_clause(dialect, filters) {
        sql.push_str(" WHERE ");
        sql.push_str(&w);
    }
    Some(sql)
}

/// A user's query without trailing semicolons.
pub fn trim_query(sql: &str) -> &str {
    sql.trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
}

/// `SELECT cols FROM (query) fdi_q`: the user's query as a derived table.
pub fn query_select(dialect: Dialect, query: &str, columns: &[SelectColumn<'_>]) -> String {
    format!(
        "SELECT {} FROM ({}) fdi_q",
        select_list(dialect, columns),
        trim_query(query)
    )
}

/// `SELECT count(*) AS "n" FROM table [WHERE ...]`: rows a table query would read.
pub fn count_select(dialect: Dialect, table: &str, filters: &[WhereCondition]) -> String {
    let mut sql = format!(
        "SELECT count(*) AS {} FROM {}",
        dialect.quote_ident("n"),
        dialect.quote_table(table)
    );
    if let Some(w) = where_clause(dialect, filters) {
        sql.push_str(" WHERE ");
        sql.push_str(&w);
    }
    sql
}

/// The query's result columns without rows.
pub fn describe_select(query: &str) -> String {
    format!("SELECT * FROM ({}) fdi_q LIMIT 0", trim_query(query))
}

/// Filters joined left to right: `((a AND b) OR c)`; values are escaped literals.
pub fn where_clause(dialect: Dialect, filters: &[WhereCondition]) -> Option<String> {
    let mut out: Option<String> = None;
    for f in filters {
        let cond = condition(dialect, f);
        out = Some(match out {
            None => cond,
            Some(prev) => format!("({prev}) {} ({cond})", if f.is_or() { "OR" } else { "AND" }),
        });
    }
    out
}

fn condition(dialect: Dialect, f: &WhereCondition) -> String {
    let col = dialect.quote_ident(&f.field_name);
    let lit = |v: Option<&str>| dialect.string_literal(v.unwrap_or(""));
    let value = || lit(f.value.as_deref());
    let list = || {
        f.list_values()
            .iter()
            .map(|v| dialect.string_literal(v))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match f.op {
        WhereOp::Equal => format!("{col} = {}", value()),
        WhereOp::NotEqual => format!("{col} <> {}", value()),
        WhereOp::Less => format!("{col} < {}", value()),
        WhereOp::LessEqual => format!("{col} <= {}", value()),
        WhereOp::More => format!("{col} > {}", value()),
        WhereOp::MoreEqual => format!("{col} >= {}", value()),
        WhereOp::IsNull => format!("{col} IS NULL"),
        WhereOp::NotNull => format!("{col} IS NOT NULL"),
        WhereOp::Between => format!(
            "{col} BETWEEN {} AND {}",
            lit(f.min_value.as_deref()),
            lit(f.max_value.as_deref())
        ),
        WhereOp::NotBetween => format!(
            "{col} NOT BETWEEN {} AND {}",
            lit(f.min_value.as_deref()),
            lit(f.max_value.as_deref())
        ),
        WhereOp::InList => format!("{col} IN ({})", list()),
        WhereOp::NotInList => format!("{col} NOT IN ({})", list()),
        WhereOp::InWindow => format!(
            "({col} >= {} AND {col} < {})",
            lit(f.min_value.as_deref()),
            lit(f.max_value.as_deref())
        ),
        WhereOp::InWindowOrNull => format!(
            "(({col} >= {} AND {col} < {}) OR {col} IS NULL)",
            lit(f.min_value.as_deref()),
            lit(f.max_value.as_deref())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(andor: Option<&str>, field: &str, op: WhereOp, value: Option<&str>) -> WhereCondition {
        WhereCondition {
            andor: andor.map(str::to_string),
            field_name: field.into(),
            field_type: None,
            op,
            value: value.map(str::to_string),
            min_value: Some("1".into()),
            max_value: Some("9".into()),
        }
    }

    #[test]
    fn builds_filters_and_order() {
        let cols = [
            SelectColumn {
                name: "id",
                as_text: false,
                cast_to: None,
            },
            SelectColumn {
                name: "amt",
                as_text: true,
                cast_to: None,
            },
        ];
        let filters = [
            w(None, "id", WhereOp::LessEqual, Some("900")),
            w(Some("or"), "name", WhereOp::Equal, Some("o'k")),
            w(Some("and"), "id", WhereOp::NotBetween, None),
            w(None, "id", WhereOp::InList, Some("1, 2,3")),
        ];
        let sql = table_select(
            Dialect::Postgres,
            "s.t",
            &cols,
            &filters,
            Some(&OrderBy {
                column: "id".into(),
                descending: true,
            }),
        );
        assert_eq!(
            sql,
            "SELECT \"id\", (\"amt\")::text AS \"amt\" FROM \"s\".\"t\" WHERE (((\"id\" <= '900') OR (\"name\" = 'o''k')) AND (\"id\" NOT BETWEEN '1' AND '9')) AND (\"id\" IN ('1', '2', '3')) ORDER BY \"id\" DESC"
        );
        assert_eq!(
            query_select(Dialect::MySql, "select 1 as a;", &[]),
            "SELECT * FROM (select 1 as a) fdi_q"
        );
    }
}
