//! sqlx errors -> connector errors (kind + retry hint), keeping the driver's cause as message.

use fdi_connector::ConnectorError;

/// Classify a driver error: database errors (bad SQL, constraint violations) are the user's,
/// I/O, TLS and pool problems are external and worth a retry.
pub fn map_sqlx_error(context: &str, e: sqlx::Error) -> ConnectorError {
    let message = if context.is_empty() {
        e.to_string()
    } else {
        format!("{context}: {e}")
    };
    match e {
        sqlx::Error::Database(db) if is_login_refused(db.code().as_deref()) => {
            ConnectorError::refused(message)
        }
        sqlx::Error::Database(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. } => ConnectorError::user(message),
        sqlx::Error::Configuration(_) => ConnectorError::user(message),
        _ => ConnectorError::external(message),
    }
}

/// `cancelled` when the token fired, otherwise the mapped error.
pub fn cancelled_or(cancelled: bool, e: ConnectorError) -> ConnectorError {
    if cancelled {
        ConnectorError::cancelled()
    } else {
        e
    }
}

/// SQLSTATE of a refused login: class 28 (invalid authorization: wrong user or password, MySQL's
/// 1045 too) and 3D000 (PostgreSQL: the database does not exist).
fn is_login_refused(sqlstate: Option<&str>) -> bool {
    sqlstate.is_some_and(|c| c.starts_with("28") || c == "3D000")
}
