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
