//! Read-path figures: cold search split, peak memory of a search (in a
//! child process, so its RSS is the search's own), warm page latency, and
//! the naive OFFSET/LIMIT baseline and the `COPY ... TO STDOUT` floor on
//! the same rows.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use clearance_core::access::Identity;
use clearance_core::read::{ReadConfig, ReadService};
use clearance_core::snapshot::{FilterInput, SearchFilter};
use clearance_core::views::{ViewFilter, ViewSpec};
use clearance_dynamo::{DynamoScopeMirror, DynamoSnapshotStore};
use clearance_pg::read::PgLedgerReader;
use clearance_pg::PoolLimits;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// One cold search, as the child process reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColdSearch {
    pub rows: u64,
    pub pages: u32,
    pub sql_ms: f64,
    pub encode_ms: f64,
    pub store_ms: f64,
    /// SQL and encoding overlap (encoder thread): their wall time together.
    pub read_encode_wall_ms: f64,
    pub total_ms: f64,
    pub peak_rss_kb: u64,
    /// With `--view`: page 0 of the snapshot sorted by amount, descending,
    /// read right after the search (the view is built from the snapshot's
    /// chunks); the peak RSS then covers both.
    #[serde(default)]
    pub view_ms: Option<f64>,
}

pub fn filter(treaty: &str) -> anyhow::Result<SearchFilter> {
    Ok(SearchFilter::parse(&FilterInput {
        treaty_ids: vec![treaty.to_owned()],
        period_from: "2021-01".into(),
        period_to: "2025-12".into(),
        ..FilterInput::default()
    })?)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

pub fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub type Service = ReadService<PgLedgerReader, DynamoSnapshotStore, DynamoScopeMirror>;

pub async fn service(database_url: &str, table: &str) -> anyhow::Result<Service> {
    let limits = PoolLimits { connections_max: 2, ..PoolLimits::default() };
    let pool = clearance_pg::connect_as(database_url, clearance_pg::READER_ROLE, limits).await?;
    let client =
        clearance_dynamo::client(&clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await);
    Ok(ReadService::new(
        PgLedgerReader::new(pool),
        DynamoSnapshotStore::new(client.clone(), table),
        DynamoScopeMirror::new(client, table),
        ReadConfig::default(),
    ))
}

/// The child: one cold search as `operator`, printed as JSON on stdout.
pub async fn search_once(
    database_url: &str,
    table: &str,
    treaty: &str,
    operator: &str,
    view: bool,
) -> anyhow::Result<()> {
    let service = service(database_url, table).await?;
    let who = Identity::parse(operator, "*")?;
    let started = Instant::now();
    let outcome = service.search(&who, &filter(treaty)?, now_secs()).await?;
    let total = started.elapsed();
    anyhow::ensure!(outcome.cache.as_str() == "miss", "the bench search was not cold");
    let report = ColdSearch {
        rows: outcome.meta.row_count,
        pages: outcome.meta.page_count,
        sql_ms: ms(outcome.timings.sql),
        encode_ms: ms(outcome.timings.encode),
        store_ms: ms(outcome.timings.store),
        read_encode_wall_ms: ms(outcome.timings.read_encode_wall),
        total_ms: ms(total),
        peak_rss_kb: 0,
        view_ms: None,
    };
    let view_ms = if view {
        let by_amount = ViewSpec::parse(Some("amount:desc"), ViewFilter::default())?;
        let started = Instant::now();
        service.page(&who, &outcome.meta.id, 0, &by_amount, now_secs()).await?;
        Some(ms(started.elapsed()))
    } else {
        None
    };
    let report = ColdSearch { view_ms, peak_rss_kb: peak_rss_kb(), ..report };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the cold search in a child process (its peak RSS is the search's
/// alone) and reads its report.
pub fn cold_search_in_child(
    database_url: &str,
    table: &str,
    treaty: &str,
    operator: &str,
    view: bool,
) -> anyhow::Result<ColdSearch> {
    let mut args = vec!["search-once", "--table", table, "--treaty", treaty, "--operator", operator];
    if view {
        args.push("--view");
    }
    in_child(database_url, &args)
}

/// Runs this binary's subcommand `args` as a child process on
/// `database_url` and parses the JSON it prints.
pub fn in_child<T: serde::de::DeserializeOwned>(database_url: &str, args: &[&str]) -> anyhow::Result<T> {
    let exe = std::env::current_exe()?;
    let output = std::process::Command::new(exe)
        .args(["--database-url", database_url])
        .args(args)
        .output()
        .with_context(|| format!("running the child {}", args.first().unwrap_or(&"")))?;
    anyhow::ensure!(
        output.status.success(),
        "child {} failed: {}",
        args.first().unwrap_or(&""),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Latencies of `reads` warm page reads of one snapshot, server side.
pub async fn warm_pages(service: &Service, treaty: &str, reads: u32) -> anyhow::Result<Vec<f64>> {
    let who = Identity::parse("bench-warm", "*")?;
    let outcome = service.search(&who, &filter(treaty)?, now_secs()).await?;
    let pages = outcome.meta.page_count.max(1);
    let view = ViewSpec::default();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(reads as usize);
    for _ in 0..reads {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let number = ((state >> 33) % u64::from(pages)) as u32;
        let started = Instant::now();
        let page = service.page(&who, &outcome.meta.id, number, &view, now_secs()).await?;
        out.push(ms(started.elapsed()));
        anyhow::ensure!(!page.rows_json.is_empty());
    }
    Ok(out)
}

/// The naive baseline: every page of the result as OFFSET/LIMIT on the
/// unpartitioned copy. Returns (all pages ms, per-page ms).
pub async fn naive_pages(pool: &PgPool, treaty: &str, rows: u64) -> anyhow::Result<(f64, Vec<f64>)> {
    let pages = rows.div_ceil(1_000);
    let started = Instant::now();
    let mut per_page = Vec::with_capacity(pages as usize);
    for page in 0..pages {
        let one = Instant::now();
        let got: Vec<(uuid::Uuid, String, rust_decimal::Decimal)> = sqlx::query_as(
            "SELECT id, cedent_id, amount FROM transactions_flat
             WHERE treaty_id = $1 AND accounting_period BETWEEN '2021-01-01' AND '2025-12-01' AND status = 'open'
             ORDER BY treaty_id, accounting_period, id OFFSET $2 LIMIT 1000",
        )
        .bind(treaty)
        .bind((page * 1_000) as i64)
        .fetch_all(pool)
        .await?;
        per_page.push(ms(one.elapsed()));
        anyhow::ensure!(!got.is_empty());
    }
    Ok((ms(started.elapsed()), per_page))
}

/// The floor: PostgreSQL's own COPY of the same rows to the client.
pub async fn copy_floor(pool: &PgPool, treaty: &str) -> anyhow::Result<(f64, u64)> {
    let mut conn = pool.acquire().await?;
    let started = Instant::now();
    let mut stream = conn
        .copy_out_raw(&format!(
            "COPY (SELECT id, treaty_id, cedent_id, accounting_period, txn_date, amount, currency, reference, status, row_version
                   FROM transactions WHERE treaty_id = '{treaty}' AND accounting_period BETWEEN '2021-01-01' AND '2025-12-01'
                   AND status = 'open' ORDER BY treaty_id, accounting_period, id) TO STDOUT"
        ))
        .await?;
    let mut bytes = 0_u64;
    while let Some(chunk) = stream.next().await {
        bytes += chunk?.len() as u64;
    }
    Ok((ms(started.elapsed()), bytes))
}

/// One clear of many rows in PostgreSQL, its identical retry and its
/// reversal, and this machine's floor for writing that many rows.
#[derive(Debug, Clone, Copy)]
pub struct BigClear {
    pub ms: f64,
    pub rows: u64,
    pub retry_ms: f64,
    pub retry_rows_changed: u64,
    pub reversal_ms: f64,
    pub floor_ms: f64,
}

/// One clear of `rows` open rows of a treaty in PostgreSQL (the guard, the
/// ledger and the journal in one transaction), then the identical retry,
/// which the guard answers without changing a row, then its reversal; and
/// the floor, measured in the same run: a COPY of as many narrow rows into
/// a table with a primary key.
pub async fn big_clear(pool: &PgPool, treaty: &str, currency: &str, rows: i64) -> anyhow::Result<BigClear> {
    use clearance_core::clearance::{Check, Posting};
    use clearance_core::ports::LedgerWriteError;
    use clearance_pg::clear::{post_clearance, ClearanceHeader, SnapshotRowRef};
    let selected: Vec<(uuid::Uuid, chrono::NaiveDate, i64, rust_decimal::Decimal)> = sqlx::query_as(
        "SELECT id, accounting_period, row_version, amount FROM transactions
         WHERE treaty_id = $1 AND currency = $2 AND status = 'open' ORDER BY id LIMIT $3",
    )
    .bind(treaty)
    .bind(currency)
    .bind(rows)
    .fetch_all(pool)
    .await?;
    let currency = clearance_core::Currency::parse(currency)?;
    let amounts = selected.iter().map(|s| clearance_core::Amount::from_decimal(s.3).map(|a| (a, currency)));
    let amounts = amounts.collect::<Result<Vec<_>, _>>()?;
    let total: rust_decimal::Decimal = selected.iter().map(|s| s.3).sum();
    let check = Check {
        number: "BENCH-1".into(),
        amount: clearance_core::Amount::from_decimal(total)?,
        currency,
        received_on: chrono::NaiveDate::from_ymd_opt(2024, 5, 31).unwrap_or_default(),
    };
    let posting = Posting::plan(&check, amounts, false)?;
    let refs: Vec<SnapshotRowRef> = selected
        .iter()
        .map(|s| SnapshotRowRef { id: s.0, accounting_period: s.1, row_version: s.2 })
        .collect();
    let header = |key: &str| ClearanceHeader {
        clearance_id: clearance_core::clearance::clearance_id_for("bench", key),
        operator_id: "bench".into(),
        snapshot_id: "b".repeat(64),
        snapshot_filter: "{}".into(),
        version_token: "v1.".into(),
        idempotency_key: key.into(),
        request_hash: clearance_core::idempotency::request_hash("POST", "/v1/clearances", key.as_bytes()),
    };
    let treaty = clearance_core::TreatyId::parse(treaty)?;
    let started = Instant::now();
    let posted = post_clearance(pool, &treaty, &refs, &check, &posting, &header("bench-1")).await?;
    let first_ms = ms(started.elapsed());
    let started = Instant::now();
    // The identical retry (same idempotency key): the ledger answers with
    // the posted clearance and changes nothing.
    let retry = post_clearance(pool, &treaty, &refs, &check, &posting, &header("bench-1")).await;
    let retry_ms = ms(started.elapsed());
    let changed = match retry {
        Ok(p) if p.already_posted => 0,
        Ok(p) => p.rows,
        Err(LedgerWriteError::StaleRows(moved)) => {
            anyhow::bail!("the retry was refused as stale ({} rows)", moved.len())
        }
        Err(e) => return Err(e.into()),
    };
    let reversal = clearance_core::clearance::ReversalHeader {
        reversal_id: uuid::Uuid::new_v4(),
        clearance_id: posted.clearance_id,
        reason: clearance_core::clearance::ReversalReason::parse("bench: the 100K clear reversed")?,
        operator_id: "bench".into(),
        idempotency_key: "bench-1-reversal".into(),
        request_hash: String::new(),
    };
    let started = Instant::now();
    let reversed = clearance_pg::clear::reverse_clearance(pool, &reversal).await?;
    let reversal_ms = ms(started.elapsed());
    anyhow::ensure!(
        reversed.rows == posted.rows,
        "the reversal reopened {} of {} rows",
        reversed.rows,
        posted.rows
    );
    let floor_ms = copy_floor_with_key(pool, selected.len()).await?;
    Ok(BigClear {
        ms: first_ms,
        rows: posted.rows,
        retry_ms,
        retry_rows_changed: changed,
        reversal_ms,
        floor_ms,
    })
}

/// This machine's floor for writing `rows` rows: a COPY of as many narrow
/// rows (id, clearance id, version) into a fresh table with a primary key,
/// in one transaction.
async fn copy_floor_with_key(pool: &PgPool, rows: usize) -> anyhow::Result<f64> {
    let mut data = Vec::with_capacity(rows * 80);
    let clearance = uuid::Uuid::new_v4();
    for n in 0..rows {
        writeln!(data, "{}\t{clearance}\t{}", uuid::Uuid::new_v4(), n + 1)?;
    }
    let mut tx = pool.begin().await?;
    sqlx::query("CREATE TEMP TABLE write_floor (id uuid PRIMARY KEY, clearance_id uuid, row_version bigint) ON COMMIT DROP")
        .execute(&mut *tx)
        .await?;
    let started = Instant::now();
    let mut copy = tx.copy_in_raw("COPY write_floor FROM STDIN").await?;
    copy.send(data).await?;
    let copied = copy.finish().await?;
    let floor_ms = ms(started.elapsed());
    anyhow::ensure!(copied == rows as u64, "the floor copied {copied} of {rows} rows");
    tx.rollback().await?;
    Ok(floor_ms)
}
