//! The same-server shortcut: a run whose source and target are tables of one database server,
//! reached with one login, and whose mapping needs nothing the server cannot do itself, is one
//! `INSERT … SELECT` inside the server (`fdi_connector::in_server`) instead of rows streamed out
//! and back in. `targetSelectedDatasource.isSupportInServerCopy: false` turns it off for a task.

use fdi_connector::SourceQuery;
use fdi_connector::in_server::InServerCopy;
use fdi_types::TaskDetail;

use crate::plan::ExecPlan;
use crate::{DirtyDataPolicy, Endpoint, EngineOptions};

/// The copy to run inside the server, or why the run streams rows instead.
pub(crate) fn shortcut(
    detail: &TaskDetail,
    plan: &ExecPlan,
    source: &Endpoint,
    target: &Endpoint,
    dirty: &DirtyDataPolicy,
    options: &EngineOptions,
    run_id: &str,
) -> Result<InServerCopy, &'static str> {
    if detail.target.in_server_copy == Some(false) {
        return Err("turned off by the task");
    }
    if options.follow || matches!(plan.read.query, SourceQuery::Messages { .. }) {
        return Err("not a table source");
    }
    if dirty.dir.is_some() {
        // Dirty rows are counted and kept row by row: the server would fail the whole statement.
        return Err("the task keeps dirty rows");
    }
    if source.datasource_type != target.datasource_type {
        return Err("different database types");
    }
    let (Some(src), Some(dst)) = (source.connector.in_server(), target.connector.in_server())
    else {
        return Err("the connector cannot");
    };
    match (src.server_scope(), dst.server_scope()) {
        (Some(a), Some(b)) if a == b => {}
        _ => return Err("different servers, databases or logins"),
    }
    // The engine would cast these values itself (and count rows that do not convert as dirty);
    // the server's casts may differ, so only columns of one type travel inside it.
    if plan
        .pairs
        .iter()
        .any(|p| p.source.arrow_type != p.target.arrow_type)
    {
        return Err("a column changes type");
    }
    if plan
        .batch_number
        .as_ref()
        .is_some_and(|b| b.arrow_type != arrow::datatypes::DataType::Utf8)
    {
        return Err("a batch-number column that is not text");
    }
    let select_sql = src
        .select_sql(&plan.read.query)
        .ok_or("no SQL for the source")?;
    let source_columns = plan.pairs.iter().map(|p| p.source.name.clone()).collect();
    Ok(InServerCopy {
        select_sql,
        source_columns,
        batch_value: plan.batch_number.as_ref().map(|_| run_id.to_string()),
        write: plan.write.clone(),
    })
}
