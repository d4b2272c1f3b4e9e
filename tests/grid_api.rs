//! The grid's API over the real PostgreSQL and DynamoDB (moto): every view
//! filter keeps exactly the rows the same predicate keeps in SQL (count and
//! totals, every page), a multi-key sort orders every page, a selection
//! within a view clears exactly the view's open rows (sync and batch), and
//! the selection summary equals SQL and writes nothing.

use std::collections::BTreeSet;

use clearance_core::write::WriteConfig;
use clearance_tests::write_api::{job_when_done, search, send, Apis, Reply, Stack};
use http::Method;
use serde_json::{json, Value};

/// Every status, so the snapshot holds rows a view shows but a selection
/// leaves out.
const FILTER: &str =
    r#"{"treaty_ids": ["TR-0001"], "period_from": "2021-01", "period_to": "2025-12", "status": "all"}"#;
/// The snapshot's own predicate in SQL.
const SCOPE: &str = "treaty_id = 'TR-0001' AND accounting_period BETWEEN '2021-01-01' AND '2025-12-01'";
const OP: Option<(&str, &str)> = Some(("op-grid", "*"));
/// Below the job view's open rows, above the request view's.
const SYNC_ROWS_MAX: usize = 300;

/// (page query, the same predicate in SQL).
const VIEWS: [(&str, &str); 8] = [
    ("cedent_id=CED-002,CED-005", "cedent_id IN ('CED-002', 'CED-005')"),
    ("currency=EUR", "currency = 'EUR'"),
    ("amount_min=-500&amount_max=2500.50", "amount BETWEEN -500 AND 2500.50"),
    ("reference=q3-ced-004", "lower(reference) LIKE '%q3-ced-004%'"),
    ("txn_date_from=2023-02-10&txn_date_to=2023-09-30", "txn_date BETWEEN '2023-02-10' AND '2023-09-30'"),
    ("period_from=2024-11&period_to=2025-02", "accounting_period BETWEEN '2024-11-01' AND '2025-02-01'"),
    (
        "cedent_id=CED-001&currency=USD&amount_min=0&reference=2024&sort=amount:desc,txn_date",
        "cedent_id = 'CED-001' AND currency = 'USD' AND amount >= 0 AND reference LIKE '%2024%'",
    ),
    ("amount_min=10&amount_max=9.99", "false"),
];

async fn get(apis: &Apis, path: &str) -> Reply {
    send(&apis.read, Method::GET, path, b"", OP, None).await
}

/// `[(currency, count, amount)]` as the API spells totals.
fn totals(value: &Value) -> Vec<(String, u64, String)> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["currency"].as_str().unwrap_or_default().to_owned(),
                t["count"].as_u64().unwrap_or(0),
                t["amount"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn sql_totals(stack: &Stack, predicate: &str) -> anyhow::Result<Vec<(String, u64, String)>> {
    let rows: Vec<(String, i64, rust_decimal::Decimal)> = sqlx::query_as(&format!(
        "SELECT currency::text, count(*), sum(amount) FROM transactions WHERE {SCOPE} AND ({predicate}) \
         GROUP BY currency ORDER BY currency"
    ))
    .fetch_all(&stack.db.owner)
    .await?;
    Ok(rows.into_iter().map(|(c, n, a)| (c, n as u64, format!("{a:.2}"))).collect())
}

async fn sql_ids(stack: &Stack, predicate: &str) -> anyhow::Result<BTreeSet<String>> {
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar(&format!("SELECT id FROM transactions WHERE {SCOPE} AND ({predicate})"))
            .fetch_all(&stack.db.owner)
            .await?;
    Ok(ids.into_iter().map(|id| id.to_string()).collect())
}

/// Clears every tenth row of CED-001..CED-003 so the snapshot shows rows
/// that are not open.
async fn clear_some(stack: &Stack, apis: &Apis) -> anyhow::Result<()> {
    let snap = search(apis, "op-setup", FILTER).await?;
    let ids: Vec<String> = sql_ids(stack, "cedent_id <= 'CED-003' AND currency = 'USD' AND amount > 0")
        .await?
        .into_iter()
        .step_by(10)
        .take(150)
        .collect();
    let total: rust_decimal::Decimal =
        snap.rows.iter().filter(|r| ids.contains(&r.id)).map(|r| r.amount).sum();
    let body = json!({
        "snapshot_id": snap.id, "version_token": snap.token, "selection": { "ids": ids },
        "check": { "number": "CHK-SETUP", "amount": format!("{total:.2}"), "currency": "USD", "received_on": "2024-07-01" },
    });
    let posted = send(
        &apis.write,
        Method::POST,
        "/v1/clearances",
        body.to_string().as_bytes(),
        Some(("op-setup", "*")),
        Some("setup"),
    )
    .await;
    anyhow::ensure!(posted.status == 201, "setup clearance: {}", posted.json);
    Ok(())
}

#[tokio::test]
async fn each_view_keeps_exactly_what_its_sql_predicate_keeps_on_every_page() -> anyhow::Result<()> {
    let stack = Stack::new(30_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    clear_some(&stack, &apis).await?;
    let snap = search(&apis, "op-grid", FILTER).await?;
    for (query, predicate) in VIEWS {
        let first = get(&apis, &format!("/v1/searches/{}/pages/0?{query}", snap.id)).await;
        assert_eq!(first.status, 200, "{query}: {}", first.json);
        let expected = sql_totals(&stack, predicate).await?;
        assert_eq!(totals(&first.json["totals"]), expected, "{query}: the view's totals");
        let count: u64 = expected.iter().map(|t| t.1).sum();
        assert_eq!(first.json["row_count"].as_u64(), Some(count), "{query}");
        assert_eq!(first.json["page_count"].as_u64(), Some(count.div_ceil(1_000).max(1)), "{query}");
        // Every page: exactly the predicate's rows, each once.
        let mut seen = BTreeSet::new();
        let mut rows = Vec::new();
        for n in 0..first.json["page_count"].as_u64().unwrap_or(0) {
            let page = get(&apis, &format!("/v1/searches/{}/pages/{n}?{query}", snap.id)).await;
            assert_eq!(totals(&page.json["totals"]), expected, "{query}: every page carries the totals");
            for row in page.json["rows"].as_array().into_iter().flatten() {
                assert!(
                    seen.insert(row["id"].as_str().unwrap_or_default().to_owned()),
                    "{query}: a row twice"
                );
                rows.push(row.clone());
            }
        }
        assert_eq!(seen, sql_ids(&stack, predicate).await?, "{query}: the view's rows");
        if query.contains("sort=amount:desc,txn_date") {
            let key = |r: &Value| {
                let amount: rust_decimal::Decimal =
                    r["amount"].as_str().unwrap_or("0").parse().unwrap_or_default();
                (std::cmp::Reverse(amount), r["txn_date"].as_str().unwrap_or_default().to_owned())
            };
            assert!(rows.windows(2).all(|w| key(&w[0]) <= key(&w[1])), "sorted by amount desc, then date");
        }
    }
    // The unfiltered view's totals are the snapshot's.
    let plain = get(&apis, &format!("/v1/searches/{}/pages/0", snap.id)).await;
    assert_eq!(totals(&plain.json["totals"]), sql_totals(&stack, "true").await?);
    // Bad parameters: 400 naming the parameter, before any IO.
    for (query, code, field) in [
        ("reference=".to_owned() + &"x".repeat(65), "invalid_reference", "reference"),
        ("sort=amount,currency,txn_date,status".to_owned(), "invalid_sort", "sort"),
        ("amount_min=1.001".to_owned(), "invalid_amount", "amount_min"),
        ("txn_date_to=2024-02-30".to_owned(), "invalid_date", "txn_date_to"),
        ("period_from=2024-1".to_owned(), "invalid_period", "period_from"),
        ("colour=red".to_owned(), "unknown_parameter", "colour"),
    ] {
        let reply = get(&apis, &format!("/v1/searches/{}/pages/0?{query}", snap.id)).await;
        assert_eq!(
            (reply.status, reply.json["error"].as_str(), reply.json["field"].as_str()),
            (400, Some(code), Some(field)),
            "{query}"
        );
    }
    stack.drop().await
}

async fn summary(apis: &Apis, snapshot: &str, selection: &Value) -> Reply {
    let body = json!({ "selection": selection }).to_string();
    let path = format!("/v1/searches/{snapshot}/selection-summary");
    send(&apis.write, Method::POST, &path, body.as_bytes(), OP, None).await
}

async fn clear_selection(
    apis: &Apis,
    snap: &clearance_tests::write_api::Snapshot,
    selection: &Value,
    amount: &str,
    key: &str,
) -> Reply {
    let body = json!({
        "snapshot_id": snap.id, "version_token": snap.token, "selection": selection,
        "check": { "number": "CHK-VIEW", "amount": amount, "currency": "USD", "received_on": "2024-07-01" },
    });
    send(&apis.write, Method::POST, "/v1/clearances", body.to_string().as_bytes(), OP, Some(key)).await
}

/// What a view selection was answered, the rows it had to take, and the
/// mode its summary announced.
struct ViewClear {
    reply: Reply,
    expected: BTreeSet<String>,
    mode: String,
}

/// The summary of a view selection equals SQL and writes nothing; the
/// clearance of it takes exactly the view's open rows but the exception.
async fn summarize_then_clear(
    stack: &Stack,
    apis: &Apis,
    view: Value,
    predicate: &str,
    key: &str,
) -> anyhow::Result<ViewClear> {
    let snap = search(apis, "op-grid", FILTER).await?;
    let open = format!("status = 'open' AND {predicate}");
    let except = sql_ids(stack, &open).await?.into_iter().next().unwrap_or_default();
    let selection = json!({ "all": true, "view": view, "except": [except] });
    let before = (stack.ledger_counts().await?, stack.db.scope_versions().await?);
    let whole = summary(apis, &snap.id, &json!({ "all": true, "view": view })).await;
    assert_eq!(whole.status, 200, "{}", whole.json);
    assert_eq!(totals(&whole.json["totals"]), sql_totals(stack, &open).await?, "the summary's totals");
    let not_open = sql_ids(stack, &format!("status <> 'open' AND {predicate}")).await?;
    assert_eq!(whole.json["not_open"]["count"].as_u64(), Some(not_open.len() as u64));
    assert!(!not_open.is_empty(), "the view shows rows that are not open");
    for id in whole.json["not_open"]["ids"].as_array().into_iter().flatten() {
        assert!(not_open.contains(id.as_str().unwrap_or_default()));
    }
    assert_eq!(whole.json["treaty_id"], "TR-0001");
    let previewed = summary(apis, &snap.id, &selection).await;
    assert_eq!(previewed.status, 200, "{}", previewed.json);
    let taken: Vec<(String, u64, String)> =
        sql_totals(stack, &format!("{open} AND id <> '{except}'")).await?;
    assert_eq!(totals(&previewed.json["totals"]), taken, "the summary with an exception");
    assert_eq!(
        (stack.ledger_counts().await?, stack.db.scope_versions().await?),
        before,
        "a summary writes nothing"
    );

    let expected = sql_ids(stack, &format!("{open} AND id <> '{except}'")).await?;
    assert_eq!(previewed.json["row_count"].as_u64(), Some(expected.len() as u64));
    let amount = taken.first().map(|t| t.2.clone()).unwrap_or_default();
    let reply = clear_selection(apis, &snap, &selection, &amount, key).await;
    let mode = previewed.json["mode"].as_str().unwrap_or_default().to_owned();
    Ok(ViewClear { reply, expected, mode })
}

async fn cleared_by(stack: &Stack, clearance_id: &str) -> anyhow::Result<BTreeSet<String>> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(&format!(
        "SELECT id FROM transactions WHERE clearance_id = '{clearance_id}' AND status = 'cleared'"
    ))
    .fetch_all(&stack.db.owner)
    .await?;
    Ok(ids.into_iter().map(|id| id.to_string()).collect())
}

#[tokio::test]
async fn a_view_selection_clears_exactly_the_views_open_rows_in_the_request_and_as_a_job(
) -> anyhow::Result<()> {
    let stack = Stack::new(30_000).await?;
    let apis = stack.apis(WriteConfig { sync_rows_max: SYNC_ROWS_MAX, ..WriteConfig::default() }).await?;
    clear_some(&stack, &apis).await?;

    // In the request: one cedent, USD, a reference and an amount floor.
    let view =
        json!({ "cedent_id": ["CED-002"], "currency": "USD", "reference": "2023q3", "amount_min": "0.01" });
    let predicate =
        "cedent_id = 'CED-002' AND currency = 'USD' AND lower(reference) LIKE '%2023q3%' AND amount >= 0.01";
    let sync = summarize_then_clear(&stack, &apis, view, predicate, "view-sync").await?;
    assert!((2..=SYNC_ROWS_MAX).contains(&sync.expected.len()), "{} rows", sync.expected.len());
    assert_eq!((sync.mode.as_str(), sync.reply.status), ("sync", 201), "{}", sync.reply.json);
    let id = sync.reply.json["clearance_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(cleared_by(&stack, &id).await?, sync.expected, "exactly the view's open rows");

    // As a job: two cedents over a period range, above the sync limit.
    let view = json!({ "cedent_id": ["CED-001", "CED-003"], "currency": "USD", "amount_min": "0.01", "period_from": "2022-01", "period_to": "2024-12" });
    let predicate = "cedent_id IN ('CED-001', 'CED-003') AND currency = 'USD' AND amount >= 0.01 \
                     AND accounting_period BETWEEN '2022-01-01' AND '2024-12-01'";
    let batch = summarize_then_clear(&stack, &apis, view, predicate, "view-job").await?;
    assert!(batch.expected.len() > SYNC_ROWS_MAX, "{} rows", batch.expected.len());
    assert_eq!((batch.mode.as_str(), batch.reply.status), ("job", 202), "{}", batch.reply.json);
    let status =
        job_when_done(&apis, "op-grid", batch.reply.json["job_id"].as_str().unwrap_or_default()).await;
    assert_eq!(status["state"], "succeeded", "{status}");
    let id = status["clearance_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(cleared_by(&stack, &id).await?, batch.expected, "exactly the view's open rows");
    for (invariant, broken) in clearance_pg::audit::violations(&stack.db.owner).await? {
        assert_eq!(broken, 0, "{invariant}");
    }
    stack.drop().await
}

#[tokio::test]
async fn a_summary_shows_named_rows_not_open_and_refuses_what_a_clearance_refuses() -> anyhow::Result<()> {
    let stack = Stack::new(20_000).await?;
    let apis = stack.apis(WriteConfig::default()).await?;
    clear_some(&stack, &apis).await?;
    let snap = search(&apis, "op-grid", FILTER).await?;
    let cleared = sql_ids(&stack, "status = 'cleared'").await?;
    let open = sql_ids(&stack, "status = 'open' AND currency = 'USD'").await?;
    let named: Vec<&String> = cleared.iter().take(2).chain(open.iter().take(3)).collect();
    let reply = summary(&apis, &snap.id, &json!({ "ids": named })).await;
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(
        (reply.json["row_count"].as_u64(), reply.json["not_open"]["count"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(reply.json["mode"], "sync");
    let unknown = uuid::Uuid::new_v4().to_string();
    for (selection, status, code, field) in [
        (json!({ "ids": [unknown] }), 422, "unknown_ids", "/selection/ids"),
        (json!({ "all": true, "view": { "sort": "amount" } }), 400, "unknown_field", "/selection/view/sort"),
        (
            json!({ "all": true, "view": { "amount_min": "1.001" } }),
            400,
            "invalid_amount",
            "/selection/view/amount_min",
        ),
        (
            json!({ "all": true, "view": { "cedent_id": "CED-001" } }),
            400,
            "invalid_type",
            "/selection/view/cedent_id",
        ),
        (json!({ "ids": [], "all": true }), 400, "invalid_selection", "/selection"),
    ] {
        let reply = summary(&apis, &snap.id, &selection).await;
        assert_eq!(
            (reply.status, reply.json["error"].as_str(), reply.json["field"].as_str()),
            (status, Some(code), Some(field)),
            "{selection}"
        );
    }
    // Another operator's snapshot does not exist for them.
    let path = format!("/v1/searches/{}/selection-summary", snap.id);
    let body = json!({ "selection": { "all": true } }).to_string();
    let foreign =
        send(&apis.write, Method::POST, &path, body.as_bytes(), Some(("op-other", "*")), None).await;
    assert_eq!((foreign.status, foreign.json["error"].as_str()), (404, Some("snapshot_not_found")));
    stack.drop().await
}
