//! resolve_plan against real tables: pairs, and errors that name the field.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn resolves_pairs_and_refuses_bad_mappings() {
    let src = unique("p_src");
    let dst = unique("p_dst");
    exec_pg(&format!(
        "CREATE TABLE {src} (id int PRIMARY KEY, name text, raw bytea, day date, n numeric(10,2))"
    ))
    .await;
    exec_pg(&format!("CREATE TABLE {dst} (key int PRIMARY KEY, title varchar(20), flag boolean, qty int, bn text, u text UNIQUE)")).await;
    let base = |mapping: serde_json::Value, target: serde_json::Value| {
        let mut t = json!({"targetTable": dst});
        if let (Some(o), Some(extra)) = (t.as_object_mut(), target.as_object()) {
            o.extend(extra.clone());
        }
        detail(
            json!({"sourceSelectedDatasource": {"sourceTable": src}, "targetSelectedDatasource": t, "mappingTable": mapping}),
        )
    };
    let ok = fdi_engine::resolve_plan(
        &base(json!([{"sourceColumn": "id", "targetColumn": "key"}, {"sourceColumn": "name", "targetColumn": "title"}]), json!({"supportPartUpdate": true})),
        &pg(),
        &pg(),
    )
    .await
    .unwrap();
    assert_eq!(ok.source_columns, vec!["id", "name"]);
    assert_eq!(ok.target_columns, vec!["key", "title"]);
    assert_eq!(ok.upsert_keys, vec!["key"]);

    let cases = [
        (
            json!([{"sourceColumn": "id", "targetColumn": "foo"}]),
            json!({}),
            "FDI.3037",
            "task_detail.mappingTable[0].targetColumn: column \"foo\" does not exist in target table",
        ),
        (
            json!([{"sourceColumn": "id", "targetColumn": "key"}, {"sourceColumn": "nope", "targetColumn": "title"}]),
            json!({}),
            "FDI.3037",
            "task_detail.mappingTable[1].sourceColumn",
        ),
        (
            json!([{"sourceColumn": "raw", "targetColumn": "qty"}]),
            json!({}),
            "FDI.3037",
            "task_detail.mappingTable[0]: source column \"raw\" (bytea) cannot be converted",
        ),
        (
            json!([{"sourceColumn": "day", "targetColumn": "flag"}]),
            json!({}),
            "FDI.3037",
            "cannot be converted",
        ),
        (
            json!([{"sourceColumn": "id", "targetColumn": "key"}, {"sourceColumn": "name", "targetColumn": "key"}]),
            json!({}),
            "FDI.3037",
            "mapped twice",
        ),
        (
            json!([{"sourceColumn": "name", "targetColumn": "bn"}]),
            json!({"batchNumber": "bn"}),
            "FDI.3002",
            "batchNumber",
        ),
        (
            json!([{"sourceColumn": "id", "targetColumn": "qty"}]),
            json!({"batchNumber": "missing"}),
            "FDI.3002",
            "batchNumber: column \"missing\" does not exist",
        ),
        (
            json!([{"sourceColumn": "name", "targetColumn": "title"}]),
            json!({"supportPartUpdate": true}),
            "FDI.3002",
            "supportPartUpdate",
        ),
    ];
    for (mapping, target, code, needle) in cases {
        let e = fdi_engine::resolve_plan(&base(mapping.clone(), target), &pg(), &pg())
            .await
            .expect_err("must be refused");
        assert_eq!(e.code, code, "{mapping}: {}", e.message);
        assert!(e.message.contains(needle), "{mapping}: {}", e.message);
    }
    // Unique (non-primary) key used for upserts when the primary key is not mapped.
    let p = fdi_engine::resolve_plan(
        &base(
            json!([{"sourceColumn": "name", "targetColumn": "u"}]),
            json!({"supportPartUpdate": true}),
        ),
        &pg(),
        &pg(),
    )
    .await
    .unwrap();
    assert_eq!(p.upsert_keys, vec!["u"]);
    // Missing tables.
    let e = fdi_engine::resolve_plan(
        &detail(json!({"sourceSelectedDatasource": {"sourceTable": "no_such_table_x"}, "targetSelectedDatasource": {"targetTable": dst}})),
        &pg(),
        &pg(),
    )
    .await
    .unwrap_err();
    assert!(
        e.message.contains("sourceTable") && e.message.contains("does not exist"),
        "{}",
        e.message
    );
    // Positional pairing of selected lists, and by-name pairing without lists.
    let p = fdi_engine::resolve_plan(
        &detail(json!({"sourceSelectedDatasource": {"sourceTable": src, "sourceSelectedColumnList": ["id", "n"]},
                      "targetSelectedDatasource": {"targetTable": dst, "targetSelectedColumnList": ["key", "qty"]}})),
        &pg(),
        &pg(),
    )
    .await
    .unwrap();
    assert_eq!(
        (p.source_columns, p.target_columns),
        (
            vec!["id".to_string(), "n".to_string()],
            vec!["key".to_string(), "qty".to_string()]
        )
    );
    exec_pg(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}
