//! Batch figures: one job end to end through the router (search not
//! counted; POST /v1/clearances → 202, then the workflow run by the
//! in-process runner's `run_job` until it succeeds) and the time spent in
//! PostgreSQL by its steps (every call of the batch ledger, summed).

use clearance_core::outbox::{ClearanceEvent, EventOutbox};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::write_figures::call;
use clearance_core::batch::{BatchLedger, BatchSteps, JobScope, JobStarter, Release};
use clearance_core::clearance::{Check, ClearanceHeader, Posting, SnapshotRowRef};
use clearance_core::ports::{BackendError, LedgerWriteError, Posted};
use clearance_dynamo::{DynamoJobStore, DynamoScopeMirror};
use clearance_local::{LocalStack, Pools, StackConfig};
use clearance_pg::batch::PgBatchLedger;
use clearance_pg::PoolLimits;
use clearance_workflow::{run_job, EventBridgePublisher, RunOutcome};
use http::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const OPERATOR: &str = "bench-batch";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchFigure {
    pub filter: String,
    pub rows: u64,
    pub chunks: u64,
    /// POST /v1/clearances until the 202 (snapshot read, plan, job stored).
    pub accept_ms: f64,
    /// The workflow, plan to finalize.
    pub run_ms: f64,
    pub end_to_end_ms: f64,
    /// Time inside PostgreSQL calls of the steps (reserve, finalize).
    pub db_ms: f64,
    pub reserve_ms: f64,
    pub finalize_ms: f64,
    /// Peak RSS of the process that ran it (a child of the bench): job
    /// creation and every batch step.
    pub peak_rss_kb: u64,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Uuid>>>);

impl JobStarter for Recorder {
    async fn start(&self, job_id: Uuid) -> Result<(), BackendError> {
        self.0.lock().map_err(|_| BackendError::new("poisoned"))?.push(job_id);
        Ok(())
    }
}

/// The real batch ledger, timing its calls.
struct Timed {
    inner: PgBatchLedger,
    reserve_us: AtomicU64,
    finalize_us: AtomicU64,
}

impl BatchLedger for Timed {
    async fn reserve(&self, scope: &JobScope, rows: &[SnapshotRowRef]) -> Result<u64, LedgerWriteError> {
        let started = Instant::now();
        let out = self.inner.reserve(scope, rows).await;
        self.reserve_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        out
    }

    async fn finalize(
        &self,
        scope: &JobScope,
        row_count: u64,
        check: &Check,
        posting: &Posting,
        header: &ClearanceHeader,
    ) -> Result<Posted, LedgerWriteError> {
        let started = Instant::now();
        let out = self.inner.finalize(scope, row_count, check, posting, header).await;
        self.finalize_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        out
    }

    async fn release(&self, scope: &JobScope, failed: &ClearanceEvent) -> Result<Release, LedgerWriteError> {
        self.inner.release(scope, failed).await
    }
}

impl EventOutbox for Timed {
    async fn claim(
        &self,
        only: Option<Uuid>,
        limit: u32,
        claim_secs: u32,
    ) -> Result<Vec<ClearanceEvent>, BackendError> {
        self.inner.claim(only, limit, claim_secs).await
    }

    async fn settle(&self, published: &[Uuid], unpublished: &[Uuid]) -> Result<(), BackendError> {
        self.inner.settle(published, unpublished).await
    }
}

/// Clears every row `filter` finds (one currency) as one job.
pub async fn batch_clear(database_url: &str, table: &str, filter: &str) -> anyhow::Result<BatchFigure> {
    let limits = PoolLimits { connections_max: 4, ..PoolLimits::default() };
    let pools = Pools::connect_as_roles(database_url, limits).await?;
    let client =
        clearance_dynamo::client(&clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await);
    let events =
        EventBridgePublisher::client(&clearance_aws::sdk_config(clearance_aws::AwsLimits::default()).await);
    let bus = format!("{table}-bus");
    clearance_workflow::events::ensure_bus(&events, &bus).await?;
    let recorder = Recorder::default();
    let apis = LocalStack::with_starter(
        pools.clone(),
        &client,
        &events,
        &StackConfig::new(table, bus.clone()),
        |_| recorder.clone(),
    );
    let (status, body, _) =
        call(&apis.read, Method::POST, "/v1/searches", filter.as_bytes(), OPERATOR, None).await;
    anyhow::ensure!(status == 200, "search: {}", String::from_utf8_lossy(&body));
    let search: serde_json::Value = serde_json::from_slice(&body)?;
    let total = search["totals"][0]["amount"].as_str().unwrap_or("0").to_owned();
    anyhow::ensure!(search["totals"].as_array().map_or(0, Vec::len) == 1, "one currency");
    let request = serde_json::json!({
        "snapshot_id": search["snapshot_id"],
        "version_token": search["version_token"],
        "selection": { "all": true, "except": [] },
        "check": { "number": "BENCH-BATCH", "amount": total, "currency": search["totals"][0]["currency"], "received_on": "2024-06-30" },
    })
    .to_string();

    let started = Instant::now();
    let (status, body, _) =
        call(&apis.write, Method::POST, "/v1/clearances", request.as_bytes(), OPERATOR, Some("bench-batch"))
            .await;
    let accept_ms = started.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(status == 202, "expected a job: {}", String::from_utf8_lossy(&body));
    let job: serde_json::Value = serde_json::from_slice(&body)?;
    let job_id = Uuid::try_parse(job["job_id"].as_str().unwrap_or_default())?;
    let steps = BatchSteps {
        jobs: DynamoJobStore::new(client.clone(), table),
        ledger: Timed {
            inner: PgBatchLedger::new(pools.app.clone()),
            reserve_us: AtomicU64::new(0),
            finalize_us: AtomicU64::new(0),
        },
        events: EventBridgePublisher::new(events, bus),
        mirror: DynamoScopeMirror::new(client, table),
    };
    let running = Instant::now();
    let outcome = run_job(&steps, job_id, clearance_workflow::PRODUCTION).await;
    let run_ms = running.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(matches!(outcome, RunOutcome::Succeeded(_)), "the bench job ended {outcome:?}");
    let end_to_end_ms = started.elapsed().as_secs_f64() * 1e3;
    let reserve_ms = steps.ledger.reserve_us.load(Ordering::Relaxed) as f64 / 1e3;
    let finalize_ms = steps.ledger.finalize_us.load(Ordering::Relaxed) as f64 / 1e3;
    pools.app.close().await;
    pools.reader.close().await;
    Ok(BatchFigure {
        filter: filter.to_owned(),
        rows: job["row_count"].as_u64().unwrap_or(0),
        chunks: job["chunks_total"].as_u64().unwrap_or(0),
        accept_ms,
        run_ms,
        end_to_end_ms,
        db_ms: reserve_ms + finalize_ms,
        reserve_ms,
        finalize_ms,
        peak_rss_kb: crate::read_figures::peak_rss_kb(),
    })
}
