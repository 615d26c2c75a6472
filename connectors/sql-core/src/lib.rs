//! What the SQL connectors (MySQL, PostgreSQL, SQLite) really share: identifier quoting and
//! literal escaping per dialect, SELECT building from a table query (columns, filters, order),
//! native type -> Arrow type mapping, rows -> Arrow builders, Arrow values -> SQL literals / COPY
//! text, multi-row INSERT / upsert statements, connection `content` parsing, and incremental
//! windows (time zones, window bounds as literals, `${begin}`/`${end}` substitution).

pub mod content;
pub mod describe;
pub mod dialect;
pub mod error;
pub mod in_server;
pub mod insert;
pub mod literal;
pub mod reader;
pub mod rows;
pub mod select;
pub mod statement_log;
pub mod table_set;
pub mod types;
pub mod window;

pub use dialect::Dialect;
pub use error::{cancelled_or, map_sqlx_error};
pub use rows::{BatchAssembler, ReadKind};
pub use types::{ArrowMapping, arrow_mapping};
