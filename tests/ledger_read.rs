//! The read side of the ledger against the real PostgreSQL: the streamed
//! snapshot read returns exactly the filtered rows, in key order, exact to
//! the cent; the version token follows the scope versions.

use clearance_core::snapshot::{FilterInput, SearchFilter};
use clearance_loader::generate::Generator;
use clearance_tests::TestDb;
use futures_util::TryStreamExt;
use rust_decimal::Decimal;

fn filter(input: FilterInput) -> anyhow::Result<SearchFilter> {
    Ok(SearchFilter::parse(&input)?)
}

#[tokio::test]
async fn a_streamed_read_returns_exactly_the_filtered_rows_in_key_order() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    clearance_pg::load::load(&db.owner, &mut Generator::new(2).with_rows(20_000)).await?;
    let search = filter(FilterInput {
        treaty_ids: vec!["tr-0001".into(), "TR-0003".into()],
        cedent_ids: vec!["CED-001".into(), "CED-002".into(), "CED-013".into()],
        period_from: "2022-01".into(),
        period_to: "2024-06".into(),
        status: None,
        currency: Some("USD".into()),
    })?;
    let rows: Vec<_> = clearance_pg::read::stream_rows(&db.app, &search).try_collect().await?;

    let (count, sum): (i64, Decimal) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(amount), 0) FROM transactions
         WHERE treaty_id IN ('TR-0001', 'TR-0003') AND cedent_id IN ('CED-001', 'CED-002', 'CED-013')
           AND accounting_period BETWEEN '2022-01-01' AND '2024-06-01' AND status = 'open' AND currency = 'USD'",
    )
    .fetch_one(&db.owner)
    .await?;
    assert!(count > 500, "the filter selects a real slice: {count}");
    assert_eq!(rows.len() as i64, count);
    let streamed: Decimal = rows.iter().map(|r| r.amount.as_decimal()).sum();
    assert_eq!(streamed, sum, "exact to the cent");
    assert!(rows.windows(2).all(|w| {
        (w[0].treaty_id.as_str(), w[0].accounting_period, w[0].id)
            < (w[1].treaty_id.as_str(), w[1].accounting_period, w[1].id)
    }));
    assert!(rows.iter().all(|r| r.currency.as_str() == "USD" && r.row_version == 1));
    db.drop_db().await
}

#[tokio::test]
async fn the_version_token_follows_the_scope_versions() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    clearance_pg::load::load(&db.owner, &mut Generator::new(2).with_rows(1_000)).await?;
    let search = filter(FilterInput {
        treaty_ids: vec!["TR-0001".into(), "TR-9999".into()],
        period_from: "2021-01".into(),
        period_to: "2025-12".into(),
        ..FilterInput::default()
    })?;
    let before = clearance_pg::read::version_token(&db.app, &search).await?;
    let versions: Vec<(&str, i64)> = before.versions().iter().map(|(t, v)| (t.as_str(), *v)).collect();
    assert_eq!(versions, [("TR-0001", 1), ("TR-9999", 0)], "a treaty without rows is version 0");

    sqlx::query("UPDATE scope_versions SET version = version + 1 WHERE treaty_id = 'TR-0001'")
        .execute(&db.app)
        .await?;
    let after = clearance_pg::read::version_token(&db.app, &search).await?;
    assert_ne!(before, after);
    assert_eq!(clearance_core::snapshot::VersionToken::parse(&after.to_string())?, after);
    db.drop_db().await
}

#[tokio::test]
async fn the_snapshot_read_prunes_to_the_treaty_leaf_on_every_execution() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    clearance_pg::load::load(&db.owner, &mut Generator::new(2).with_rows(5_000)).await?;
    let mut conn = db.app.acquire().await?;
    let mode: String = sqlx::query_scalar("SHOW plan_cache_mode").fetch_one(&mut *conn).await?;
    assert_eq!(mode, "force_custom_plan");
    let sql = format!("EXPLAIN (ANALYZE, FORMAT JSON) {}", clearance_pg::read::SNAPSHOT_ROWS_SQL);
    // PostgreSQL may switch to a generic plan after five executions; the
    // pool's sessions force custom plans, so the tenth still prunes.
    for execution in 1..=10 {
        let plan: serde_json::Value = sqlx::query_scalar(&sql)
            .bind(vec!["TR-0001"])
            .bind(chrono::NaiveDate::from_ymd_opt(2024, 1, 1))
            .bind(chrono::NaiveDate::from_ymd_opt(2024, 12, 1))
            .bind(Vec::<String>::new())
            .bind(vec!["open"])
            .bind(None::<String>)
            .fetch_one(&mut *conn)
            .await?;
        let leaves = plan.to_string().matches("\"Relation Name\":\"transactions_").count();
        assert_eq!(leaves, 1, "execution {execution} reads one leaf: {plan}");
    }
    drop(conn);
    db.drop_db().await
}

#[tokio::test]
async fn a_snapshot_reads_its_token_and_its_rows_as_of_one_moment() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    clearance_pg::load::load(&db.owner, &mut Generator::new(2).with_rows(5_000)).await?;
    let search = filter(FilterInput {
        treaty_ids: vec!["TR-0001".into()],
        period_from: "2021-01".into(),
        period_to: "2025-12".into(),
        ..FilterInput::default()
    })?;
    let (token, rows) = clearance_pg::read::read_snapshot(&db.reader, &search).await?;
    // A write commits after the token was read and before the rows are:
    // every row moves (a new version) and the scope version goes up, as a
    // clearance does in one transaction.
    let mut tx = db.owner.begin().await?;
    sqlx::query("UPDATE transactions SET row_version = row_version + 1 WHERE treaty_id = 'TR-0001'")
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE scope_versions SET version = version + 1 WHERE treaty_id = 'TR-0001'")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let rows: Vec<_> = rows.try_collect().await?;
    assert!(!rows.is_empty());
    // The rows are the token's: none shows the later write.
    assert!(rows.iter().all(|r| r.row_version == 1), "the rows are as of the token");
    let now = clearance_pg::read::version_token(&db.app, &search).await?;
    assert_ne!(token, now, "the write did move the scope");
    // And a read after the write sees both moved together.
    let (later, rows) = clearance_pg::read::read_snapshot(&db.reader, &search).await?;
    let rows: Vec<_> = rows.try_collect().await?;
    assert_eq!(later, now);
    assert!(rows.iter().all(|r| r.row_version == 2));
    db.drop_db().await
}
