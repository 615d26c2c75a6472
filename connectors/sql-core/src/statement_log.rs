//! Statements in the log: only at debug level, and never with the values they carry.
//!
//! sqlx's own statement logging is turned off on every pool ([`quiet`]): it prints whole
//! statements (filter values, inserted rows) at debug and slow ones as warnings at the default
//! level. Connectors log what they run through [`debug`] instead, with every literal elided.

use std::borrow::Cow;

/// Turn off sqlx's statement and slow-statement logging on a pool's connect options.
pub fn quiet<O: sqlx::ConnectOptions>(options: O) -> O {
    options.disable_statement_logging()
}

/// Log a statement at debug level with its literals elided (`WHERE a = ?`), at most 500 chars.
pub fn debug(what: &str, sql: &str) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::debug!(target: "fdi::sql", statement = %elide_literals(sql, 500), "{what}");
    }
}

/// `sql` with string and numeric literals replaced by `?`; identifiers (plain, `"quoted"`,
/// `` `quoted` ``) kept. Cut to about `max_chars` characters.
pub fn elide_literals(sql: &str, max_chars: usize) -> Cow<'_, str> {
    let mut out = String::with_capacity(sql.len().min(max_chars + 8));
    let mut chars = sql.chars().peekable();
    let mut prev_word = false;
    while let Some(c) = chars.next() {
        if out.len() >= max_chars {
            out.push('…');
            break;
        }
        match c {
            '\'' => {
                skip_quoted(&mut chars, '\'', true);
                out.push('?');
                prev_word = false;
            }
            '"' | '`' => {
                out.push(c);
                while let Some(d) = chars.next() {
                    out.push(d);
                    if d == c {
                        if chars.peek() == Some(&c) {
                            out.extend(chars.next());
                        } else {
                            break;
                        }
                    }
                }
                prev_word = false;
            }
            '$' if chars.peek() == Some(&'$') => {
                // PostgreSQL dollar quoting ($$...$$).
                chars.next();
                while let Some(d) = chars.next() {
                    if d == '$' && chars.peek() == Some(&'$') {
                        chars.next();
                        break;
                    }
                }
                out.push('?');
                prev_word = false;
            }
            c if c.is_ascii_digit() && !prev_word => {
                while chars
                    .peek()
                    .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '.')
                {
                    chars.next();
                }
                out.push('?');
            }
            c => {
                prev_word = c.is_alphanumeric() || c == '_' || c == '$';
                out.push(c);
            }
        }
    }
    Cow::Owned(out)
}

/// Skip a quoted literal whose opening quote was consumed: a doubled quote is an escaped quote,
/// and with `backslash` a backslash escapes the next character (MySQL).
fn skip_quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, q: char, backslash: bool) {
    while let Some(d) = chars.next() {
        if backslash && d == '\\' {
            chars.next();
        } else if d == q {
            if chars.peek() == Some(&q) {
                chars.next();
            } else {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_elided() {
        assert_eq!(
            elide_literals(
                "SELECT \"a1\", `b` FROM t2 WHERE name = 'O''Brien' AND x >= 12.5e3 AND y = 'a\\'b'",
                500
            ),
            "SELECT \"a1\", `b` FROM t2 WHERE name = ? AND x >= ? AND y = ?"
        );
        assert_eq!(
            elide_literals("INSERT INTO t VALUES (1,'secret'),(2,$$x$$)", 500),
            "INSERT INTO t VALUES (?,?),(?,?)"
        );
        assert!(elide_literals(&"x ".repeat(1000), 50).chars().count() < 60);
    }
}
