//! Identifier quoting and string-literal escaping per SQL dialect.

/// The SQL dialects fdi speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    MySql,
    Postgres,
    Sqlite,
}

impl Dialect {
    /// Quote one identifier part (no dots are interpreted).
    pub fn quote_ident(self, name: &str) -> String {
        match self {
            Dialect::MySql => format!("`{}`", name.replace('`', "``")),
            Dialect::Postgres | Dialect::Sqlite => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// Quote a possibly schema-qualified table name (`schema.table`).
    pub fn quote_table(self, name: &str) -> String {
        match split_qualified(name) {
            (Some(schema), table) => {
                format!("{}.{}", self.quote_ident(schema), self.quote_ident(table))
            }
            (None, table) => self.quote_ident(table),
        }
    }

    /// A quoted string literal with every special character escaped for this dialect.
    /// MySQL connections are opened with `NO_BACKSLASH_ESCAPES` removed from `sql_mode`.
    pub fn push_string_literal(self, out: &mut String, value: &str) {
        out.push('\'');
        match self {
            Dialect::MySql => {
                for c in value.chars() {
                    match c {
                        '\'' => out.push_str("''"),
                        '\\' => out.push_str("\\\\"),
                        '\0' => out.push_str("\\0"),
                        '\u{1a}' => out.push_str("\\Z"),
                        c => out.push(c),
                    }
                }
            }
            Dialect::Postgres | Dialect::Sqlite => {
                for c in value.chars() {
                    match c {
                        '\'' => out.push_str("''"),
                        // PostgreSQL text cannot hold NUL; drop it rather than fail the statement.
                        '\0' if self == Dialect::Postgres => {}
                        c => out.push(c),
                    }
                }
            }
        }
        out.push('\'');
    }

    pub fn string_literal(self, value: &str) -> String {
        let mut s = String::with_capacity(value.len() + 2);
        self.push_string_literal(&mut s, value);
        s
    }

    /// An expression that turns `expr` into text in this dialect.
    pub fn text_cast(self, expr: &str) -> String {
        match self {
            Dialect::MySql => format!("CAST({expr} AS CHAR)"),
            Dialect::Postgres => format!("({expr})::text"),
            Dialect::Sqlite => format!("CAST({expr} AS TEXT)"),
        }
    }
}

/// Split `schema.table` on the first dot that is not inside quotes. Plain names have no schema.
pub fn split_qualified(name: &str) -> (Option<&str>, &str) {
    match name.split_once('.') {
        Some((schema, table)) if !schema.is_empty() && !table.is_empty() => (Some(schema), table),
        _ => (None, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(Dialect::MySql.quote_ident("a`b"), "`a``b`");
        assert_eq!(Dialect::Postgres.quote_table("s.t\"x"), "\"s\".\"t\"\"x\"");
        assert_eq!(
            Dialect::MySql.string_literal("it's \\ ok"),
            "'it''s \\\\ ok'"
        );
        assert_eq!(Dialect::Sqlite.string_literal("it's \\"), "'it''s \\'");
    }
}
