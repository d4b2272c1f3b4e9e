//! Write-path figures: synchronous clears of 1,000 rows by 16 concurrent
//! operators on one treaty, through the same router the Lambda function and
//! the local server run (body parse, idempotency record, snapshot chunks,
//! the PostgreSQL guard, the ledger write and its read-back).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use clearance_core::access::Identity;
use clearance_http::{Api, ApiRequest};
use clearance_local::{LocalStack, Pools, StackConfig};
use clearance_pg::PoolLimits;
use http::{HeaderMap, HeaderValue, Method};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub const OPERATORS: usize = 16;
pub const ROWS_PER_CLEAR: usize = 1_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncClears {
    pub operators: usize,
    pub rows_per_clear: usize,
    pub clears: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Answers other than 201 (must be 0: the selections are disjoint).
    pub refused: usize,
    /// Medians of the server-side split (Server-Timing).
    pub snapshot_p50_ms: f64,
    pub ledger_p50_ms: f64,
    pub ledger_p99_ms: f64,
    pub read_back_p50_ms: f64,
    /// The same clears one at a time (no concurrency): the cost of one.
    pub single_p50_ms: f64,
    /// Its split p50: snapshot, PostgreSQL, read-back.
    pub single_split_p50_ms: [f64; 3],
    /// Peak RSS of the process that ran them (a child of the bench): the
    /// searches and the write path under 16 concurrent 1,000-row clears.
    pub peak_rss_kb: u64,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The `dur` of each metric of a Server-Timing header, by name.
fn server_timing(value: &str) -> Vec<(String, f64)> {
    value
        .split(',')
        .filter_map(|part| {
            let (name, dur) = part.trim().split_once(";dur=")?;
            Some((name.to_owned(), dur.parse().ok()?))
        })
        .collect()
}

/// One request through `api` as `operator` (entitled to every treaty):
/// status, body and the Server-Timing metrics.
pub async fn call<A: Api>(
    api: &A,
    method: Method,
    path: &str,
    body: &[u8],
    operator: &str,
    key: Option<&str>,
) -> (u16, Bytes, Vec<(String, f64)>) {
    let mut headers = HeaderMap::new();
    if let Some(value) = key.and_then(|k| HeaderValue::from_str(k).ok()) {
        headers.insert("idempotency-key", value);
    }
    let (path, query) = path.split_once('?').map_or((path, None), |(p, q)| (p, Some(q)));
    let response = api
        .handle(ApiRequest {
            method: &method,
            base: "",
            path,
            query,
            body,
            headers: &headers,
            identity: Some(Identity::parse(operator, "*")),
            now_secs: now_secs(),
        })
        .await;
    let timing = response
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .map(server_timing)
        .unwrap_or_default();
    (response.status().as_u16(), response.into_body(), timing)
}

/// The clearance body for the first `n` rows of a search answer's page 0,
/// with a check for exactly their total.
fn clearance_for(search: &serde_json::Value, n: usize) -> anyhow::Result<Vec<u8>> {
    let rows = search["page"]["rows"].as_array().context("no rows")?;
    anyhow::ensure!(rows.len() >= n, "only {} rows", rows.len());
    let picked = &rows[..n];
    let mut total = Decimal::ZERO;
    for row in picked {
        total += row["amount"].as_str().context("amount")?.parse::<Decimal>()?;
    }
    let (amount, allow) = if total > Decimal::ZERO { (total, false) } else { (Decimal::ONE, true) };
    Ok(serde_json::json!({
        "snapshot_id": search["snapshot_id"],
        "version_token": search["version_token"],
        "selection": { "ids": picked.iter().map(|r| r["id"].clone()).collect::<Vec<_>>() },
        "check": { "number": "BENCH", "amount": amount.to_string(), "currency": "USD", "received_on": "2024-06-30" },
        "allow_difference": allow,
        "overpayment_to_unapplied": allow,
    })
    .to_string()
    .into_bytes())
}

/// `rounds` rounds in which each of 16 operators searches its own period of
/// `treaty` (open USD rows; not timed) and clears 1,000 of them, all
/// operators at once. Returns the latency of every clear.
pub async fn sync_clears(
    database_url: &str,
    table: &str,
    treaty: &str,
    rounds: usize,
) -> anyhow::Result<SyncClears> {
    let limits = PoolLimits { connections_max: OPERATORS as u32 + 2, ..PoolLimits::default() };
    let pools = Pools::connect_as_roles(database_url, limits).await?;
    let client =
        clearance_dynamo::client(&clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await);
    let events = clearance_workflow::EventBridgePublisher::client(
        &clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await,
    );
    let bus = format!("{table}-bus");
    clearance_workflow::events::ensure_bus(&events, &bus).await?;
    let apis = Arc::new(LocalStack::new(pools, &client, &events, &StackConfig::new(table, bus)));
    let mut latencies = Vec::new();
    let mut single = Vec::new();
    let mut split: Vec<Vec<(String, f64)>> = Vec::new();
    let mut single_split: Vec<Vec<(String, f64)>> = Vec::new();
    let mut refused = 0;
    // The concurrent rounds, then one round of the same clears one at a time.
    for round in 0..=rounds {
        let concurrent = round < rounds;
        let mut bodies = Vec::new();
        for op in 0..OPERATORS {
            let period = format!("{}-{:02}", 2021 + op / 12, op % 12 + 1);
            let filter = format!(
                r#"{{"treaty_ids":["{treaty}"],"period_from":"{period}","period_to":"{period}","currency":"USD","status":"open"}}"#
            );
            let operator = format!("bench-op-{op}");
            let (status, body, _) =
                call(&apis.read, Method::POST, "/v1/searches", filter.as_bytes(), &operator, None).await;
            anyhow::ensure!(status == 200, "search: {}", String::from_utf8_lossy(&body));
            bodies.push(clearance_for(&serde_json::from_slice(&body)?, ROWS_PER_CLEAR)?);
        }
        let clear = |op: usize, body: Vec<u8>| {
            let apis = Arc::clone(&apis);
            async move {
                let key = format!("bench-{round}-{op}");
                let operator = format!("bench-op-{op}");
                let started = Instant::now();
                let (status, answer, timing) =
                    call(&apis.write, Method::POST, "/v1/clearances", &body, &operator, Some(&key)).await;
                (started.elapsed().as_secs_f64() * 1e3, status, answer, timing)
            }
        };
        let mut outcomes = Vec::new();
        if concurrent {
            let tasks: Vec<_> =
                bodies.into_iter().enumerate().map(|(op, body)| tokio::spawn(clear(op, body))).collect();
            for task in tasks {
                outcomes.push(task.await?);
            }
        } else {
            for (op, body) in bodies.into_iter().enumerate() {
                outcomes.push(clear(op, body).await);
            }
        }
        for (ms, status, answer, timing) in outcomes {
            if status != 201 {
                refused += 1;
                eprintln!("bench: clear answered {status}: {}", String::from_utf8_lossy(&answer));
            } else if concurrent {
                latencies.push(ms);
                split.push(timing);
            } else {
                single.push(ms);
                single_split.push(timing);
            }
        }
    }
    let metric_of = |runs: &[Vec<(String, f64)>], name: &str| -> Vec<f64> {
        runs.iter().filter_map(|t| t.iter().find(|(n, _)| n == name).map(|(_, d)| *d)).collect()
    };
    let metric = |name: &str| metric_of(&split, name);
    Ok(SyncClears {
        operators: OPERATORS,
        rows_per_clear: ROWS_PER_CLEAR,
        clears: latencies.len(),
        p50_ms: crate::percentile(&latencies, 50.0),
        p99_ms: crate::percentile(&latencies, 99.0),
        max_ms: latencies.iter().copied().fold(0.0, f64::max),
        refused,
        snapshot_p50_ms: crate::percentile(&metric("snapshot"), 50.0),
        ledger_p50_ms: crate::percentile(&metric("ledger"), 50.0),
        ledger_p99_ms: crate::percentile(&metric("ledger"), 99.0),
        read_back_p50_ms: crate::percentile(&metric("read_back"), 50.0),
        single_p50_ms: crate::percentile(&single, 50.0),
        single_split_p50_ms: ["snapshot", "ledger", "read_back"]
            .map(|name| crate::percentile(&metric_of(&single_split, name), 50.0)),
        peak_rss_kb: crate::read_figures::peak_rss_kb(),
    })
}
