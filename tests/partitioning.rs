//! The ledger is natively partitioned, and a query that names one treaty and
//! a period range reads only that treaty's leaves for those years.

use std::collections::BTreeSet;

use clearance_loader::generate::Generator;
use clearance_tests::TestDb;

fn relations(plan: &serde_json::Value, out: &mut BTreeSet<String>) {
    match plan {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(name)) = map.get("Relation Name") {
                out.insert(name.clone());
            }
            map.values().for_each(|v| relations(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| relations(v, out)),
        _ => {}
    }
}

async fn planned_relations(db: &TestDb, sql: &str) -> anyhow::Result<BTreeSet<String>> {
    let plan: serde_json::Value =
        sqlx::query_scalar(&format!("EXPLAIN (FORMAT JSON) {sql}")).fetch_one(&db.owner).await?;
    let mut names = BTreeSet::new();
    relations(&plan, &mut names);
    Ok(names)
}

#[tokio::test]
async fn a_query_naming_one_treaty_and_a_period_range_reads_only_its_leaves() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    clearance_pg::load::load(&db.owner, &mut Generator::new(3).with_rows(20_000)).await?;

    let filter = "treaty_id = 'TR-0001' AND accounting_period BETWEEN '2023-01-01' AND '2024-12-01'";
    let planned = planned_relations(&db, &format!("SELECT * FROM transactions WHERE {filter}")).await?;
    let holding: BTreeSet<String> = sqlx::query_scalar(&format!(
        "SELECT DISTINCT tableoid::regclass::text FROM transactions WHERE {filter}"
    ))
    .fetch_all(&db.owner)
    .await?
    .into_iter()
    .collect();
    let leaves = clearance_pg::partitions::leaves(&db.owner).await?;

    // Five years of 8 hash leaves each, plus the default partition.
    assert_eq!(leaves.len(), 5 * 8 + 1);
    // One leaf per year in the range, and exactly the leaves that hold rows.
    assert_eq!(holding.len(), 2, "{holding:?}");
    assert_eq!(planned, holding, "the plan must read only the matching leaves");
    assert!(!planned.contains("transactions_default"));

    // The whole treaty over all years: one leaf per year, never the others.
    let planned = planned_relations(&db, "SELECT * FROM transactions WHERE treaty_id = 'TR-0001'").await?;
    assert_eq!(planned.len(), 5 + 1, "one leaf per year and the default: {planned:?}");

    db.drop_db().await
}

#[tokio::test]
async fn a_prepared_query_prunes_at_execution_time() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    clearance_pg::load::load(&db.owner, &mut Generator::new(3).with_rows(5_000)).await?;
    let mut conn = db.owner.acquire().await?;
    sqlx::query("SET plan_cache_mode = force_generic_plan").execute(&mut *conn).await?;
    sqlx::query(
        "PREPARE by_treaty(text, date, date) AS SELECT * FROM transactions
         WHERE treaty_id = $1 AND accounting_period BETWEEN $2 AND $3",
    )
    .execute(&mut *conn)
    .await?;
    let plan: serde_json::Value = sqlx::query_scalar(
        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE by_treaty('TR-0001', '2024-01-01', '2024-12-01')",
    )
    .fetch_one(&mut *conn)
    .await?;
    let mut planned = BTreeSet::new();
    relations(&plan, &mut planned);
    let text = plan.to_string();
    assert!(text.contains("Subplans Removed"), "expected run-time pruning: {text}");
    assert_eq!(planned.len(), 1, "only the one 2024 leaf of TR-0001 is scanned: {planned:?}");
    drop(conn);
    db.drop_db().await
}

#[tokio::test]
async fn a_new_year_gets_its_partitions_and_rows_move_out_of_the_default() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    sqlx::query(
        "INSERT INTO transactions (id, treaty_id, cedent_id, accounting_period, txn_date, amount, currency, source_ref)
         VALUES (gen_random_uuid(), 'TR-0009', 'CED-001', '2031-05-01', '2031-05-02', 10.00, 'USD', 'X-1')",
    )
    .execute(&db.owner)
    .await?;
    let where_is: String =
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM transactions").fetch_one(&db.owner).await?;
    assert_eq!(where_is, "transactions_default");

    let mut conn = db.owner.acquire().await?;
    let created = clearance_pg::partitions::ensure_years(&mut conn, 2030, 2031).await?;
    assert_eq!(created, 2);
    assert_eq!(clearance_pg::partitions::ensure_years(&mut conn, 2030, 2031).await?, 0, "idempotent");
    drop(conn);

    let where_is: String =
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM transactions").fetch_one(&db.owner).await?;
    assert!(where_is.starts_with("transactions_y2031_h"), "{where_is}");
    assert_eq!(db.transaction_count().await?, 1);
    db.drop_db().await
}
