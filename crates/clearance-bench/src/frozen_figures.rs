//! Time to a 503 under a frozen dependency (DESIGN.md, Production edges): a
//! moto server of the run's own is frozen with SIGSTOP while the ledger
//! stays up; a search, a page read and a job read each answer 503
//! `backend_unavailable`, and the figure is the time to that answer
//! (median of `runs` each). Then the server is thawed and the same stack
//! must serve a page again.

use std::path::Path;
use std::time::Instant;

use clearance_local::moto::PrivateMoto;
use clearance_local::{LocalStack, Pools, StackConfig};
use http::Method;
use serde::{Deserialize, Serialize};

use crate::write_figures::call;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrozenFigures {
    pub runs: usize,
    pub search_503_median_ms: f64,
    pub page_503_median_ms: f64,
    pub job_503_median_ms: f64,
    /// The slowest of all the 503s.
    pub max_ms: f64,
    /// Served again after the thaw, without a restart.
    pub recovered: bool,
}

async fn unavailable_ms<A: clearance_http::Api>(
    api: &A,
    method: Method,
    path: &str,
    body: &[u8],
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let (status, answer, _) = call(api, method, path, body, "bench-frozen", None).await;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        status == 503,
        "a frozen DynamoDB answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(ms)
}

/// # Errors
/// When moto cannot be started or an answer is not the expected one.
pub async fn measure(
    pools: Pools,
    venv_bin: &Path,
    filter: &str,
    runs: usize,
) -> anyhow::Result<FrozenFigures> {
    let moto = PrivateMoto::start(venv_bin).await?;
    let (dynamo, events) = (moto.dynamo().await, moto.events().await);
    clearance_dynamo::table::create(&dynamo, "bench-frozen").await?;
    clearance_workflow::events::ensure_bus(&events, "bench-frozen-bus").await?;
    let apis =
        LocalStack::new(pools, &dynamo, &events, &StackConfig::new("bench-frozen", "bench-frozen-bus"));
    let (status, search, _) =
        call(&apis.read, Method::POST, "/v1/searches", filter.as_bytes(), "bench-frozen", None).await;
    anyhow::ensure!(status == 200, "search before the freeze: {status}");
    let search: serde_json::Value = serde_json::from_slice(&search)?;
    let page = format!("/v1/searches/{}/pages/0", search["snapshot_id"].as_str().unwrap_or_default());
    let job = format!("/v1/jobs/{}", uuid::Uuid::new_v4());

    moto.freeze()?;
    let (mut searches, mut pages, mut jobs) = (Vec::new(), Vec::new(), Vec::new());
    let measured = async {
        for _ in 0..runs {
            searches.push(unavailable_ms(&apis.read, Method::POST, "/v1/searches", filter.as_bytes()).await?);
            pages.push(unavailable_ms(&apis.read, Method::GET, &page, b"").await?);
            jobs.push(unavailable_ms(&apis.jobs, Method::GET, &job, b"").await?);
        }
        anyhow::Ok(())
    }
    .await;
    moto.thaw()?;
    measured?;
    let (status, _, _) = call(&apis.read, Method::GET, &page, b"", "bench-frozen", None).await;
    let max_ms = searches.iter().chain(&pages).chain(&jobs).copied().fold(0.0, f64::max);
    Ok(FrozenFigures {
        runs,
        search_503_median_ms: crate::median(searches),
        page_503_median_ms: crate::median(pages),
        job_503_median_ms: crate::median(jobs),
        max_ms,
        recovered: status == 200,
    })
}
