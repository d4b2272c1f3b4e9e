//! The local server: the API on `CLEARANCE_ADDR` (127.0.0.1:8080), calling
//! the same handlers as the Lambda functions. Identity comes from the dev
//! headers `x-dev-operator`, `x-dev-treaties` and `x-dev-roles`, honoured here only; a
//! browser app may call it from the origins in `CLEARANCE_CORS_ORIGINS`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clearance_core::batch::JobStarter;
use clearance_core::idempotency::IdempotencyConfig;
use clearance_core::read::ReadConfig;
use clearance_core::write::WriteConfig;
use clearance_http::config::{ConfigError, ReadEnv, WriteEnv};
use clearance_local::{LocalStack, Pools, StackConfig};
use clearance_pg::PoolLimits;

/// The local server serves one machine's operators: more connections than
/// a Lambda instance's two.
const DB_CONNECTIONS_MAX: u32 = 16;

/// `CLEARANCE_OUTBOX_DRAIN_SECS`: 1 to 3600 seconds between drains.
fn outbox_drain_every() -> Result<Duration, ConfigError> {
    let Ok(raw) = std::env::var("CLEARANCE_OUTBOX_DRAIN_SECS") else {
        return Ok(clearance_local::OUTBOX_DRAIN_EVERY_DEFAULT);
    };
    match raw.trim().parse::<u64>() {
        Ok(secs @ 1..=3600) => Ok(Duration::from_secs(secs)),
        _ => Err(ConfigError::new("CLEARANCE_OUTBOX_DRAIN_SECS", "a whole number of seconds from 1 to 3600")),
    }
}

fn cors_origins() -> Result<Vec<String>, ConfigError> {
    let list = std::env::var("CLEARANCE_CORS_ORIGINS")
        .unwrap_or_else(|_| clearance_http::cors::LOCAL_ORIGINS_DEFAULT.to_owned());
    clearance_http::cors::parse_origins(&list)
        .map_err(|rule| ConfigError::new("CLEARANCE_CORS_ORIGINS", rule))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let env = ReadEnv::from_env()?;
    let write_env = WriteEnv::from_env()?;
    let origins = cors_origins()?;
    let drain_every = outbox_drain_every()?;
    let addr: SocketAddr = std::env::var("CLEARANCE_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8080".into())
        .parse()
        .context("CLEARANCE_ADDR")?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the local server listens on loopback only (dev identity headers)"
    );
    let limits = PoolLimits {
        connections_max: DB_CONNECTIONS_MAX,
        acquire_timeout: env.timeouts.db_acquire,
        statement_timeout: env.timeouts.db_statement,
    };
    // Each path as the role it has in AWS: reads cannot write the ledger.
    let pools = Pools {
        reader: clearance_pg::connect(&env.database.url, limits).await?,
        app: clearance_pg::connect(&write_env.database.url, limits).await?,
    };
    let sdk = clearance_aws::sdk_config(clearance_aws::AwsLimits {
        attempt_timeout: env.timeouts.aws_attempt,
        operation_timeout: env.timeouts.aws_operation,
        attempts_max: env.timeouts.aws_attempts_max,
        ..clearance_aws::AwsLimits::default()
    })
    .await;
    let dynamo = clearance_dynamo::client(&sdk);
    clearance_dynamo::table::ensure(&dynamo, &env.table)
        .await
        .context("creating the local DynamoDB table")?;
    let events = clearance_workflow::EventBridgePublisher::client(&sdk);
    let event_bus = std::env::var("CLEARANCE_EVENT_BUS").unwrap_or_else(|_| "clearance-local".into());
    clearance_workflow::events::ensure_bus(&events, &event_bus)
        .await
        .context("creating the local event bus")?;
    let config = StackConfig {
        read: ReadConfig { snapshot_ttl_secs: env.snapshot_ttl_secs, ..ReadConfig::default() },
        write: WriteConfig {
            sync_rows_max: write_env.sync_rows_max,
            tolerance: write_env.tolerance,
            ..WriteConfig::default()
        },
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
    tokio::spawn(clearance_local::drain_outbox_every(Arc::clone(&app.steps), drain_every));
    // The reference grid's build, served at /app/ (DESIGN.md, "The reference grid").
    let dist = std::env::var("CLEARANCE_WEB_DIST").unwrap_or_else(|_| "web/dist".to_owned());
    let router =
        clearance_local::server::with_app(clearance_local::server::router(app, &origins), dist.as_ref());
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    eprintln!("clearance-local: serving on http://{addr} (CORS origins: {})", origins.join(", "));
    axum::serve(listener, router).await?;
    Ok(())
}
