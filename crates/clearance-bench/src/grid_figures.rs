//! The grid's API figures (DESIGN.md, "The grid's API"), server side through
//! the same router the local server runs: a 1,000-row page on the wire
//! (plain, gzip, br), a view of a ~100K-row snapshot built from its chunks
//! (a 2-key sort and 3 filters; each run on a fresh snapshot, so each build
//! is cold), and the selection summary: every open row of the snapshot and
//! of that view (answered from the meta), the view but 10 exceptions and
//! 1,000 named ids (resolved over the snapshot's pages).

use std::time::Instant;

use anyhow::Context;
use clearance_core::write::WriteConfig;
use clearance_http::encoding::{encode, Coding};
use clearance_local::{LocalStack, Pools, StackConfig};
use clearance_pg::PoolLimits;
use http::Method;
use serde::{Deserialize, Serialize};

use crate::read_figures::ms;
use crate::write_figures::call;

/// The view measured: two sort keys, three filters.
pub const VIEW_QUERY: &str = "sort=cedent_id,amount:desc&currency=USD&amount_min=0&txn_date_from=2022-01-01";
/// Its filter as a selection's `view`.
const VIEW_FILTER: &str = r#"{"currency": "USD", "amount_min": "0", "txn_date_from": "2022-01-01"}"#;
/// Cold view builds (each on its own snapshot).
const VIEW_RUNS: usize = 3;
/// Summaries of the whole view, answered from its meta.
const SUMMARY_RUNS: usize = 20;
/// Summaries that resolve over the snapshot's pages.
const SCAN_RUNS: usize = 5;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GridFigures {
    pub snapshot_rows: u64,
    pub page_rows: u64,
    pub page_plain_bytes: u64,
    pub page_gzip_bytes: u64,
    pub page_br_bytes: u64,
    pub view_query: String,
    pub view_rows: u64,
    pub view_build_ms: Vec<f64>,
    /// The whole snapshot (the unfiltered view): every open row.
    pub summary_rows: u64,
    pub summary_view_ms: Vec<f64>,
    /// The filtered view's open rows.
    #[serde(default)]
    pub summary_filtered_rows: u64,
    #[serde(default)]
    pub summary_filtered_ms: Vec<f64>,
    pub summary_except_ms: Vec<f64>,
    pub summary_ids_ms: Vec<f64>,
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or(serde_json::Value::Null)
}

/// The whole system in this process over the bench ledger, each path as its
/// role, for figures that read (searches, pages, summaries): no job is
/// started, no event published.
///
/// # Errors
/// When a role cannot connect.
pub async fn read_only_stack(database_url: &str, table: &str) -> anyhow::Result<LocalStack> {
    let limits = PoolLimits { connections_max: 4, ..PoolLimits::default() };
    let pools = Pools::connect_as_roles(database_url, limits).await?;
    let sdk = clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await;
    let dynamo = clearance_dynamo::client(&sdk);
    let events = clearance_workflow::EventBridgePublisher::client(&sdk);
    let config = StackConfig {
        write: WriteConfig::default(),
        ..StackConfig::new(table, format!("{table}-reads-bus"))
    };
    Ok(LocalStack::new(pools, &dynamo, &events, &config))
}

/// Runs every grid figure on `treaty` of the bench database.
///
/// # Errors
/// When a request is not answered 200, or a backend is unreachable.
pub async fn run(database_url: &str, table: &str, treaty: &str) -> anyhow::Result<GridFigures> {
    let stack = read_only_stack(database_url, table).await?;
    let filter =
        format!(r#"{{"treaty_ids": ["{treaty}"], "period_from": "2021-01", "period_to": "2025-12"}}"#);
    let mut figures = GridFigures { view_query: VIEW_QUERY.to_owned(), ..GridFigures::default() };
    let mut snapshot = String::new();
    for run in 0..VIEW_RUNS {
        let operator = format!("bench-grid-{run}");
        let (status, body, _) =
            call(&stack.read, Method::POST, "/v1/searches", filter.as_bytes(), &operator, None).await;
        anyhow::ensure!(status == 200, "grid search: {status}");
        let searched = json(&body);
        snapshot = searched["snapshot_id"].as_str().unwrap_or_default().to_owned();
        figures.snapshot_rows = searched["row_count"].as_u64().unwrap_or(0);
        let path = format!("/v1/searches/{snapshot}/pages/0?{VIEW_QUERY}");
        let started = Instant::now();
        let (status, body, _) = call(&stack.read, Method::GET, &path, b"", &operator, None).await;
        figures.view_build_ms.push(ms(started.elapsed()));
        anyhow::ensure!(status == 200, "grid view: {status}");
        figures.view_rows = json(&body)["row_count"].as_u64().unwrap_or(0);
    }
    let operator = format!("bench-grid-{}", VIEW_RUNS - 1);
    page_on_the_wire(&stack, &snapshot, &operator, &mut figures).await?;
    summaries(&stack, &snapshot, &operator, &mut figures).await?;
    Ok(figures)
}

async fn page_on_the_wire(
    stack: &LocalStack,
    snapshot: &str,
    operator: &str,
    figures: &mut GridFigures,
) -> anyhow::Result<()> {
    let (status, body, _) =
        call(&stack.read, Method::GET, &format!("/v1/searches/{snapshot}/pages/1"), b"", operator, None)
            .await;
    anyhow::ensure!(status == 200, "grid page: {status}");
    figures.page_rows = json(&body)["rows"].as_array().map_or(0, |r| r.len() as u64);
    figures.page_plain_bytes = body.len() as u64;
    figures.page_gzip_bytes = encode(Coding::Gzip, &body).context("gzip")?.len() as u64;
    figures.page_br_bytes = encode(Coding::Brotli, &body).context("br")?.len() as u64;
    Ok(())
}

async fn summaries(
    stack: &LocalStack,
    snapshot: &str,
    operator: &str,
    figures: &mut GridFigures,
) -> anyhow::Result<()> {
    let path = format!("/v1/searches/{snapshot}/selection-summary");
    let view: serde_json::Value = serde_json::from_str(VIEW_FILTER)?;
    let summarize = |selection: serde_json::Value| {
        let path = path.clone();
        async move {
            let body = serde_json::json!({ "selection": selection }).to_string();
            let started = Instant::now();
            let (status, answer, _) =
                call(&stack.write, Method::POST, &path, body.as_bytes(), operator, None).await;
            anyhow::ensure!(status == 200, "summary: {status} {}", String::from_utf8_lossy(&answer));
            anyhow::Ok((ms(started.elapsed()), json(&answer)))
        }
    };
    for _ in 0..SUMMARY_RUNS {
        let (took, answer) = summarize(serde_json::json!({ "all": true })).await?;
        figures.summary_view_ms.push(took);
        figures.summary_rows = answer["row_count"].as_u64().unwrap_or(0);
        let (took, answer) = summarize(serde_json::json!({ "all": true, "view": view })).await?;
        figures.summary_filtered_ms.push(took);
        figures.summary_filtered_rows = answer["row_count"].as_u64().unwrap_or(0);
    }
    // Ten exceptions and 1,000 named ids: the first rows of the view.
    let (_, body, _) = call(
        &stack.read,
        Method::GET,
        &format!("/v1/searches/{snapshot}/pages/0?{VIEW_QUERY}"),
        b"",
        operator,
        None,
    )
    .await;
    let ids: Vec<serde_json::Value> = json(&body)["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "open")
        .map(|r| r["id"].clone())
        .collect();
    anyhow::ensure!(!ids.is_empty(), "the view {VIEW_QUERY} has no open row");
    for _ in 0..SCAN_RUNS {
        let except = &ids[..ids.len().min(10)];
        let (took, _) = summarize(serde_json::json!({ "all": true, "view": view, "except": except })).await?;
        figures.summary_except_ms.push(took);
        let (took, _) = summarize(serde_json::json!({ "ids": ids })).await?;
        figures.summary_ids_ms.push(took);
    }
    Ok(())
}
