//! The read path end to end through the router, against the real PostgreSQL
//! and DynamoDB (moto): snapshots, hits without ledger reads, 100K-row
//! snapshots within the item and response limits, views, staleness, access
//! and bad input.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use clearance_core::pages::CHUNK_BYTES_MAX;
use clearance_core::ports::SnapshotStore;
use clearance_core::read::ReadConfig;
use clearance_core::snapshot::SnapshotId;
use clearance_loader::generate::Generator;
use clearance_tests::dynamo::TestTable;
use clearance_tests::read_api::{call, read_api, Answer, TestReadApi};
use clearance_tests::TestDb;
use http::Method;
use rust_decimal::Decimal;

/// A bad-input case: name, request, expected status, code and field.
type Case<'a, R> = (&'a str, R, u16, &'a str, Option<&'a str>);

const OP_A: Option<(&str, &str)> = Some(("op-a", "*"));
const OP_B: Option<(&str, &str)> = Some(("op-b", "*"));

fn body(treaties: &str, from: &str, to: &str) -> Vec<u8> {
    format!(r#"{{"treaty_ids": [{treaties}], "period_from": "{from}", "period_to": "{to}"}}"#).into_bytes()
}

async fn search(api: &TestReadApi, body: &[u8], who: Option<(&str, &str)>) -> Answer {
    call(api, Method::POST, "/v1/searches", body, who).await
}

fn page_ids(answer: &Answer) -> Vec<String> {
    answer.json["rows"].as_array().map_or_else(Vec::new, |rows| {
        rows.iter().filter_map(|r| r["id"].as_str().map(str::to_owned)).collect()
    })
}

struct Stack {
    db: TestDb,
    table: TestTable,
}

impl Stack {
    async fn new(rows: u64) -> anyhow::Result<Self> {
        let db = TestDb::new().await?;
        if rows > 0 {
            clearance_pg::load::load(&db.owner, &mut Generator::new(4).with_rows(rows)).await?;
        }
        Ok(Self { db, table: TestTable::new().await? })
    }

    fn api(&self) -> (TestReadApi, std::sync::Arc<clearance_tests::read_api::LedgerCalls>) {
        read_api(self.db.reader.clone(), &self.table.client, &self.table.name, ReadConfig::default())
    }

    async fn drop(self) -> anyhow::Result<()> {
        self.table.delete().await?;
        self.db.drop_db().await
    }
}

#[tokio::test]
async fn the_same_filter_written_differently_is_the_same_snapshot_and_a_hit() -> anyhow::Result<()> {
    let stack = Stack::new(5_000).await?;
    let (api, _) = stack.api();
    let first = search(&api, &body(r#""TR-0001", "TR-0002""#, "2022-01", "2023-06"), OP_A).await;
    assert_eq!(first.status, 200, "{}", first.json);
    assert_eq!(first.json["cache"], "miss");
    let rewritten = br#"{"period_to":" 2023-06 ","status":"open","treaty_ids":["tr-0002","TR-0001","TR-0002"],"period_from":"2022-01","cedent_ids":[]}"#;
    let second = search(&api, rewritten, OP_A).await;
    assert_eq!(second.status, 200, "{}", second.json);
    assert_eq!(second.json["cache"], "hit");
    assert_eq!(second.json["snapshot_id"], first.json["snapshot_id"]);
    assert_eq!(second.json["page"], first.json["page"]);
    let other = search(&api, &body(r#""TR-0001""#, "2022-01", "2023-06"), OP_A).await;
    assert_ne!(other.json["snapshot_id"], first.json["snapshot_id"]);
    stack.drop().await
}

async fn transaction_scans(db: &TestDb) -> anyhow::Result<(i64, i64)> {
    let mut conn = db.owner.acquire().await?;
    sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut *conn).await?;
    Ok(sqlx::query_as(
        "SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)) FILTER (WHERE relname LIKE 'transactions%'), 0)::bigint,
                coalesce(sum(coalesce(idx_scan, 0)) FILTER (WHERE relname = 'scope_versions'), 0)::bigint
         FROM pg_stat_user_tables",
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// Waits (bounded) until the server's statistics show `scope_versions` read
/// more than `after` times: the application backend has flushed its stats.
async fn flushed_scans(db: &TestDb, scope_reads_after: i64) -> anyhow::Result<(i64, i64)> {
    for _ in 0..40 {
        let scans = transaction_scans(db).await?;
        if scans.1 > scope_reads_after {
            return Ok(scans);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the statistics never showed the scope-version read")
}

/// Waits (bounded) until the statistics stop moving: every other backend's
/// counts have landed.
async fn settled_scans(db: &TestDb) -> anyhow::Result<(i64, i64)> {
    let mut last = transaction_scans(db).await?;
    let mut unchanged = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = transaction_scans(db).await?;
        unchanged = if now == last { unchanged + 1 } else { 0 };
        if unchanged >= 3 && now.1 > 0 {
            return Ok(now);
        }
        last = now;
    }
    anyhow::bail!("the statistics never settled")
}

#[tokio::test]
async fn a_hit_reads_only_the_scope_versions_and_never_transactions() -> anyhow::Result<()> {
    let stack = Stack::new(0).await?;
    let options = stack.db.owner.connect_options().as_ref().clone();
    // Load through a connection of its own and close it: a backend flushes its
    // statistics when it exits, so the load's scans land before we count.
    let loader = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect_with(options).await?;
    clearance_pg::load::load(&loader, &mut Generator::new(4).with_rows(5_000)).await?;
    loader.close().await;
    let baseline = settled_scans(&stack.db).await?;

    // One reader connection, so its statistics can be flushed on demand.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(stack.db.reader.connect_options().as_ref().clone())
        .await?;
    let (api, calls) = read_api(pool.clone(), &stack.table.client, &stack.table.name, ReadConfig::default());
    let request = body(r#""TR-0001""#, "2021-01", "2025-12");
    assert_eq!(search(&api, &request, OP_A).await.json["cache"], "miss");
    sqlx::query("SELECT pg_stat_force_next_flush()").execute(&pool).await?;
    let before = flushed_scans(&stack.db, baseline.1).await?;
    let calls_before = calls.total();

    let hit = search(&api, &request, OP_A).await;
    assert_eq!(hit.json["cache"], "hit");
    assert_eq!(calls.total() - calls_before, 1, "one ledger call on a hit");
    assert_eq!(
        calls.stream_rows.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "rows were read once, on the miss"
    );
    sqlx::query("SELECT pg_stat_force_next_flush()").execute(&pool).await?;
    let after = flushed_scans(&stack.db, before.1).await?;
    assert_eq!(
        after.1 - before.1,
        1,
        "exactly one scope-version read (plus the flush query, which scans nothing)"
    );
    assert_eq!(after.0, before.0, "no statement touched transactions on the hit");

    // Page reads by snapshot id make no ledger call at all.
    let id = hit.json["snapshot_id"].as_str().unwrap_or_default().to_owned();
    let page = call(&api, Method::GET, &format!("/v1/searches/{id}/pages/0"), b"", OP_A).await;
    assert_eq!(page.status, 200);
    assert_eq!(calls.total() - calls_before, 1);
    pool.close().await;
    stack.drop().await
}

#[tokio::test]
async fn a_100k_row_snapshot_fits_the_limits_and_holds_every_row_once() -> anyhow::Result<()> {
    // TR-0001 holds 32% of the generated rows: 320,000 rows give it 102,400.
    let stack = Stack::new(320_000).await?;
    let (api, _) = stack.api();
    let first = search(&api, &body(r#""TR-0001""#, "2021-01", "2025-12"), OP_A).await;
    assert_eq!(first.status, 200, "{}", first.json);
    let rows = first.json["row_count"].as_u64().unwrap_or(0);
    assert!(rows >= 100_000, "{rows}");
    let id_text = first.json["snapshot_id"].as_str().unwrap_or_default().to_owned();
    let id = SnapshotId::parse(&id_text)?;
    let pages = first.json["page_count"].as_u64().unwrap_or(0) as u32;
    assert_eq!(u64::from(pages), rows.div_ceil(1_000));

    let store =
        clearance_dynamo::DynamoSnapshotStore::new(stack.table.client.clone(), stack.table.name.clone());
    let mut seen = HashSet::new();
    let mut sums: BTreeMap<String, Decimal> = BTreeMap::new();
    for n in 0..pages {
        let chunk = store.chunk(&id, n).await?.unwrap_or_default();
        assert!(!chunk.is_empty() && chunk.len() < CHUNK_BYTES_MAX, "chunk {n}: {} bytes", chunk.len());
        let page = call(&api, Method::GET, &format!("/v1/searches/{id_text}/pages/{n}"), b"", OP_A).await;
        assert_eq!(page.status, 200);
        assert!(page.bytes < 6 * 1024 * 1024, "page {n}: {} bytes", page.bytes);
        for row in page.json["rows"].as_array().into_iter().flatten() {
            let row_id = row["id"].as_str().unwrap_or_default().to_owned();
            assert!(seen.insert(row_id), "a row appears twice");
            let amount: Decimal = row["amount"].as_str().unwrap_or("x").parse()?;
            *sums.entry(row["currency"].as_str().unwrap_or_default().to_owned()).or_default() += amount;
        }
    }
    assert_eq!(seen.len() as u64, rows);
    let sql: Vec<(String, i64, Decimal)> = sqlx::query_as(
        "SELECT currency::text, count(*), sum(amount) FROM transactions WHERE treaty_id = 'TR-0001' AND status = 'open'
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&stack.db.owner)
    .await?;
    let ids: HashSet<String> =
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM transactions WHERE treaty_id = 'TR-0001'")
            .fetch_all(&stack.db.owner)
            .await?
            .into_iter()
            .map(|u| u.to_string())
            .collect();
    assert_eq!(seen, ids, "exactly the ledger's rows");
    let totals = first.json["totals"].as_array().cloned().unwrap_or_default();
    assert_eq!(totals.len(), sql.len());
    for ((currency, count, sum), total) in sql.iter().zip(&totals) {
        assert_eq!(total["currency"], currency.as_str());
        assert_eq!(total["count"].as_i64(), Some(*count));
        assert_eq!(total["amount"].as_str().map(str::parse::<Decimal>).transpose()?, Some(*sum));
        assert_eq!(sums.get(currency), Some(sum), "pages add up to SQL's sum()");
    }
    stack.drop().await
}

#[tokio::test]
async fn views_sort_across_pages_and_sub_filters_return_exactly_the_matching_rows() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let (api, calls) = stack.api();
    let first = search(&api, &body(r#""TR-0001""#, "2021-01", "2025-12"), OP_A).await;
    let id = first.json["snapshot_id"].as_str().unwrap_or_default().to_owned();
    let calls_after_search = calls.total();

    let mut amounts = Vec::new();
    let mut n = 0;
    loop {
        let page =
            call(&api, Method::GET, &format!("/v1/searches/{id}/pages/{n}?sort=amount%3Adesc"), b"", OP_A)
                .await;
        if page.status == 404 {
            assert_eq!(page.json["error"], "page_out_of_range");
            break;
        }
        assert_eq!(page.status, 200, "{}", page.json);
        for row in page.json["rows"].as_array().into_iter().flatten() {
            amounts.push(row["amount"].as_str().unwrap_or("x").parse::<Decimal>()?);
        }
        n += 1;
        assert!(n < 100, "bounded page walk");
    }
    assert!(n > 1, "the view spans several pages");
    assert_eq!(amounts.len() as u64, first.json["row_count"].as_u64().unwrap_or(0));
    assert!(amounts.windows(2).all(|w| w[0] >= w[1]), "sorted across page boundaries");

    let filtered = call(
        &api,
        Method::GET,
        &format!("/v1/searches/{id}/pages/0?cedent_id=CED-002,ced-005&currency=EUR"),
        b"",
        OP_A,
    )
    .await;
    assert_eq!(filtered.status, 200, "{}", filtered.json);
    let mut got = page_ids(&filtered);
    got.sort();
    let mut expected: Vec<String> = sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT id FROM transactions WHERE treaty_id = 'TR-0001' AND cedent_id IN ('CED-002', 'CED-005') AND currency = 'EUR'",
    )
    .fetch_all(&stack.db.owner)
    .await?
    .into_iter()
    .map(|u| u.to_string())
    .collect();
    expected.sort();
    assert!(!expected.is_empty() && expected.len() < 1_000);
    assert_eq!(got, expected);
    assert_eq!(calls.total(), calls_after_search, "views never query the ledger");
    stack.drop().await
}

#[tokio::test]
async fn after_a_write_to_the_treaty_pages_are_stale_and_a_new_search_is_a_new_snapshot() -> anyhow::Result<()>
{
    let stack = Stack::new(3_000).await?;
    let (api, _) = stack.api();
    let request = body(r#""TR-0001""#, "2021-01", "2025-12");
    let first = search(&api, &request, OP_A).await;
    let id = first.json["snapshot_id"].as_str().unwrap_or_default().to_owned();
    let page = call(&api, Method::GET, &format!("/v1/searches/{id}/pages/0"), b"", OP_A).await;
    assert_eq!(page.json["stale"], false);

    sqlx::query("UPDATE scope_versions SET version = version + 1 WHERE treaty_id = 'TR-0001'")
        .execute(&stack.db.app)
        .await?;
    let again = search(&api, &request, OP_A).await;
    assert_eq!(again.json["cache"], "miss");
    assert_ne!(again.json["snapshot_id"].as_str(), Some(id.as_str()));
    assert_ne!(again.json["version_token"], first.json["version_token"]);
    let old = call(&api, Method::GET, &format!("/v1/searches/{id}/pages/0"), b"", OP_A).await;
    assert_eq!((old.status, &old.json["stale"]), (200, &serde_json::Value::Bool(true)));
    let view = call(&api, Method::GET, &format!("/v1/searches/{id}/pages/0?sort=txn_date"), b"", OP_A).await;
    assert_eq!(view.json["stale"], true, "views of a stale snapshot are stale too");
    stack.drop().await
}

#[tokio::test]
async fn snapshots_belong_to_their_operator_and_treaties_to_the_entitled() -> anyhow::Result<()> {
    let stack = Stack::new(2_000).await?;
    let (api, calls) = stack.api();
    let first = search(&api, &body(r#""TR-0001""#, "2021-01", "2025-12"), OP_A).await;
    let id = first.json["snapshot_id"].as_str().unwrap_or_default().to_owned();

    let foreign = call(&api, Method::GET, &format!("/v1/searches/{id}/pages/0"), b"", OP_B).await;
    assert_eq!((foreign.status, foreign.json["error"].as_str()), (404, Some("snapshot_not_found")));
    let foreign_view =
        call(&api, Method::GET, &format!("/v1/searches/{id}/pages/0?sort=amount"), b"", OP_B).await;
    assert_eq!(foreign_view.status, 404);

    let withdrawn =
        call(&api, Method::GET, &format!("/v1/searches/{id}/pages/0"), b"", Some(("op-a", "TR-0002"))).await;
    assert_eq!(
        (withdrawn.status, withdrawn.json["error"].as_str()),
        (403, Some("not_entitled")),
        "entitlement re-checked on reads"
    );

    let calls_before = calls.total();
    let limited = Some(("op-c", "TR-0002,TR-0003"));
    let denied = search(&api, &body(r#""TR-0002", "TR-0001""#, "2021-01", "2025-12"), limited).await;
    assert_eq!((denied.status, denied.json["error"].as_str()), (403, Some("not_entitled")));
    let unknown = search(&api, &body(r#""TR-9999""#, "2021-01", "2025-12"), limited).await;
    assert_eq!(unknown.status, 403, "a treaty that does not exist answers like one not entitled");
    let anonymous = search(&api, &body(r#""TR-0001""#, "2021-01", "2025-12"), None).await;
    assert_eq!((anonymous.status, anonymous.json["error"].as_str()), (401, Some("unauthenticated")));
    let anonymous_page = call(&api, Method::GET, &format!("/v1/searches/{id}/pages/0"), b"", None).await;
    assert_eq!(anonymous_page.status, 401);
    assert_eq!(calls.total(), calls_before, "refused before any ledger call");
    stack.drop().await
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_a_stable_code_and_field_and_no_database_round_trip() -> anyhow::Result<()> {
    let stack = Stack::new(0).await?;
    let (api, calls) = stack.api();
    let many: Vec<String> = (0..51).map(|i| format!("\"TR-{i:04}\"")).collect();
    let many = body(&many.join(","), "2024-01", "2024-12");
    let big = vec![b' '; 70 * 1024];
    let searches: Vec<Case<'_, Vec<u8>>> = vec![
        ("malformed JSON", b"{\"treaty_ids\": [".to_vec(), 400, "malformed_json", None),
        (
            "trailing garbage",
            [body(r#""TR-0001""#, "2024-01", "2024-12"), b"x".to_vec()].concat(),
            400,
            "malformed_json",
            None,
        ),
        (
            "unknown field",
            br#"{"treaty_ids":["TR-0001"],"period_from":"2024-01","period_to":"2024-02","memo":3}"#.to_vec(),
            400,
            "unknown_field",
            Some("/memo"),
        ),
        (
            "missing field",
            br#"{"treaty_ids":["TR-0001"],"period_from":"2024-01"}"#.to_vec(),
            400,
            "missing_field",
            Some("/period_to"),
        ),
        (
            "wrong type",
            br#"{"treaty_ids":"TR-0001","period_from":"2024-01","period_to":"2024-02"}"#.to_vec(),
            400,
            "invalid_type",
            Some("/treaty_ids"),
        ),
        (
            "from after to",
            body(r#""TR-0001""#, "2024-12", "2024-01"),
            422,
            "invalid_period_range",
            Some("/period_to"),
        ),
        (
            "bad period",
            body(r#""TR-0001""#, "2024-1", "2024-12"),
            400,
            "invalid_period",
            Some("/period_from"),
        ),
        ("too many treaties", many, 400, "too_many_treaties", Some("/treaty_ids")),
        (
            "bad status",
            br#"{"treaty_ids":["TR-0001"],"period_from":"2024-01","period_to":"2024-02","status":"pending"}"#
                .to_vec(),
            400,
            "invalid_status",
            Some("/status"),
        ),
        (
            "bad currency",
            br#"{"treaty_ids":["TR-0001"],"period_from":"2024-01","period_to":"2024-02","currency":"XYZ"}"#
                .to_vec(),
            400,
            "invalid_currency",
            Some("/currency"),
        ),
        ("oversized body", big, 413, "body_too_large", None),
    ];
    for (name, request, status, code, field) in searches {
        let answer = search(&api, &request, OP_A).await;
        assert_eq!(
            (answer.status, answer.json["error"].as_str()),
            (status, Some(code)),
            "{name}: {}",
            answer.json
        );
        assert_eq!(answer.json["field"].as_str(), field, "{name}");
        assert!(answer.json["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}");
    }
    let id = "0".repeat(64);
    let pages: Vec<Case<'_, String>> = vec![
        ("bad snapshot id", "/v1/searches/xyz/pages/0".into(), 400, "invalid_snapshot_id", Some("id")),
        ("negative page", format!("/v1/searches/{id}/pages/-1"), 400, "invalid_page_number", Some("n")),
        ("huge page", format!("/v1/searches/{id}/pages/99999999999"), 400, "invalid_page_number", Some("n")),
        (
            "unknown sort field",
            format!("/v1/searches/{id}/pages/0?sort=row_version:asc"),
            400,
            "invalid_sort",
            Some("sort"),
        ),
        (
            "bad direction",
            format!("/v1/searches/{id}/pages/0?sort=amount:sideways"),
            400,
            "invalid_sort",
            Some("sort"),
        ),
        (
            "unknown parameter",
            format!("/v1/searches/{id}/pages/0?limit=5"),
            400,
            "unknown_parameter",
            Some("limit"),
        ),
        (
            "repeated parameter",
            format!("/v1/searches/{id}/pages/0?sort=amount&sort=txn_date"),
            400,
            "duplicate_parameter",
            Some("sort"),
        ),
        ("unknown snapshot", format!("/v1/searches/{id}/pages/0"), 404, "snapshot_not_found", Some("id")),
        ("unknown route", "/v1/nothing".into(), 404, "route_not_found", None),
    ];
    for (name, path, status, code, field) in pages {
        let answer = call(&api, Method::GET, &path, b"", OP_A).await;
        assert_eq!(
            (answer.status, answer.json["error"].as_str()),
            (status, Some(code)),
            "{name}: {}",
            answer.json
        );
        assert_eq!(answer.json["field"].as_str(), field, "{name}");
    }
    let wrong_method = call(&api, Method::DELETE, "/v1/searches", b"", OP_A).await;
    assert_eq!(wrong_method.status, 405);

    assert_eq!(calls.total(), 0, "no bad input reached the database");
    stack.drop().await
}
