//! The local server: the API on `CLEARANCE_ADDR` (127.0.0.1:8080), calling
//! the same handlers as the Lambda functions. Identity comes from the dev
//! headers `x-dev-operator` and `x-dev-treaties`, honoured here only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use clearance_core::access::Identity;
use clearance_core::batch::JobStarter;
use clearance_core::idempotency::IdempotencyConfig;
use clearance_core::read::ReadConfig;
use clearance_core::snapshot::InputError;
use clearance_core::write::WriteConfig;
use clearance_http::config::{ReadEnv, WriteEnv};
use clearance_http::{Api, ApiError, ApiRequest, CLEARANCE_BODY_BYTES_MAX};
use clearance_local::{LocalStack, Pools, StackConfig};
use clearance_pg::PoolLimits;
use http::StatusCode;

type App = LocalStack;

/// The largest body any route takes; each route checks its own limit.
const BODY_BYTES_MAX: usize = CLEARANCE_BODY_BYTES_MAX;

fn dev_identity(headers: &http::HeaderMap) -> Option<Result<Identity, InputError>> {
    let operator = headers.get("x-dev-operator")?.to_str().ok()?;
    let treaties = headers.get("x-dev-treaties").and_then(|v| v.to_str().ok()).unwrap_or("");
    Some(Identity::parse(operator, treaties))
}

async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let response = match axum::body::to_bytes(body, BODY_BYTES_MAX).await {
        Err(_) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is over {BODY_BYTES_MAX} bytes"),
        )
        .into_response(),
        Ok(body) => {
            let now_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            let request = ApiRequest {
                method: &parts.method,
                path: parts.uri.path(),
                query: parts.uri.query(),
                body: &body,
                headers: &parts.headers,
                identity: dev_identity(&parts.headers),
                now_secs,
            };
            app.handle(request).await
        }
    };
    response.map(Body::from)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let env = ReadEnv::from_env()?;
    let write_env = WriteEnv::from_env()?;
    let addr: SocketAddr = std::env::var("CLEARANCE_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8080".into())
        .parse()
        .context("CLEARANCE_ADDR")?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the local server listens on loopback only (dev identity headers)"
    );
    let limits =
        PoolLimits { connections_max: 16, statement_timeout: env.statement_timeout, ..PoolLimits::default() };
    // Each path as the role it has in AWS: reads cannot write the ledger.
    let pools = Pools {
        reader: clearance_pg::connect(&env.database_url, limits).await?,
        app: clearance_pg::connect(&write_env.database_url, limits).await?,
    };
    let dynamo = clearance_dynamo::client_from_env().await;
    clearance_dynamo::table::ensure(&dynamo, &env.table)
        .await
        .context("creating the local DynamoDB table")?;
    let events = clearance_workflow::EventBridgePublisher::client_from_env().await;
    let event_bus = std::env::var("CLEARANCE_EVENT_BUS").unwrap_or_else(|_| "clearance-local".into());
    clearance_workflow::events::ensure_bus(&events, &event_bus)
        .await
        .context("creating the local event bus")?;
    let config = StackConfig {
        read: ReadConfig { snapshot_ttl_secs: env.snapshot_ttl_secs, ..ReadConfig::default() },
        write: WriteConfig { sync_rows_max: write_env.sync_rows_max, ..WriteConfig::default() },
        idempotency: IdempotencyConfig {
            ttl_secs: write_env.idempotency_ttl_secs,
            lease_secs: write_env.idempotency_lease_secs,
        },
        ..StackConfig::new(env.table.clone(), event_bus)
    };
    let app = Arc::new(LocalStack::new(pools, &dynamo, &events, &config));
    // Jobs run in this process: those a previous run left running resume
    // (their steps are idempotent), as Step Functions would carry them on.
    let jobs = clearance_dynamo::DynamoJobStore::new(dynamo.clone(), env.table.clone());
    let runner = clearance_workflow::LocalRunner::new(Arc::clone(&app.steps));
    for job_id in jobs.running_jobs(100).await.context("finding running jobs")? {
        eprintln!("clearance-local: resuming job {job_id}");
        runner.start(job_id).await.context("resuming a job")?;
    }
    let router = axum::Router::new().fallback(handle).with_state(app);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    eprintln!("clearance-local: serving on http://{addr}");
    axum::serve(listener, router).await?;
    Ok(())
}
