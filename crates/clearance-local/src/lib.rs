//! The whole system composed in one process, as the local server, the tests
//! and the benchmark run it: the read, write and job-status APIs over
//! PostgreSQL and DynamoDB, and the batch steps run by the in-process runner
//! (or any other [`JobStarter`]).

pub mod moto;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use clearance_core::batch::{BatchSteps, JobStarter};
use clearance_core::idempotency::IdempotencyConfig;
use clearance_core::read::{ReadConfig, ReadService};
use clearance_core::write::{WriteConfig, WritePorts, WriteService};
use clearance_dynamo::{DynamoIdempotencyStore, DynamoJobStore, DynamoScopeMirror, DynamoSnapshotStore};
use clearance_http::{Api, ApiError, ApiRequest, JobsApi, ReadApi, WriteApi};
use clearance_pg::batch::PgBatchLedger;
use clearance_pg::clear::PgClearanceLedger;
use clearance_pg::read::PgLedgerReader;
use clearance_workflow::{EventBridgePublisher, LocalRunner};

pub type Steps = BatchSteps<DynamoJobStore, PgBatchLedger, EventBridgePublisher, DynamoScopeMirror>;
pub type Runner = LocalRunner<DynamoJobStore, PgBatchLedger, EventBridgePublisher, DynamoScopeMirror>;
pub type Read = ReadApi<PgLedgerReader, DynamoSnapshotStore, DynamoScopeMirror>;
pub type Write<R = Runner> = WriteApi<
    DynamoSnapshotStore,
    PgClearanceLedger,
    DynamoScopeMirror,
    DynamoJobStore,
    R,
    EventBridgePublisher,
    DynamoIdempotencyStore,
>;
pub type Jobs = JobsApi<DynamoJobStore>;

/// How often the local server drains the event outbox when
/// `CLEARANCE_OUTBOX_DRAIN_SECS` does not say (in AWS an EventBridge
/// schedule invokes the batch function every minute).
pub const OUTBOX_DRAIN_EVERY_DEFAULT: Duration = Duration::from_secs(10);

/// Drains the event outbox every `every`, as the schedule does in AWS,
/// for as long as the process runs: what a request could not publish
/// (the bus down) goes out once the bus is back.
pub async fn drain_outbox_every(steps: Arc<Steps>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        match steps.drain_outbox(clearance_workflow::task::SCHEDULED_DRAIN_ROUNDS).await {
            Ok(drained) if drained.published > 0 || drained.left > 0 => {
                tracing::info!(published = drained.published, left = drained.left, "outbox drained");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the outbox could not be drained: next round"),
        }
    }
}

/// Where things live and the limits they run with.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub table: String,
    pub event_bus: String,
    pub read: ReadConfig,
    pub write: WriteConfig,
    pub idempotency: IdempotencyConfig,
}

impl StackConfig {
    pub fn new(table: impl Into<String>, event_bus: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            event_bus: event_bus.into(),
            read: ReadConfig::default(),
            write: WriteConfig::default(),
            idempotency: IdempotencyConfig::default(),
        }
    }
}

pub struct LocalStack<R = Runner> {
    pub read: Read,
    pub write: Write<R>,
    pub jobs: Jobs,
    /// The batch steps, for a runner (or a test) to drive.
    pub steps: Arc<Steps>,
}

/// The two PostgreSQL pools, one per role, as the functions connect in AWS.
#[derive(Clone)]
pub struct Pools {
    /// The read-only role (`clearance_reader`): the read path.
    pub reader: sqlx::PgPool,
    /// The application role (`clearance_app`): the write path and the batch steps.
    pub app: sqlx::PgPool,
}

impl Pools {
    /// Both pools on the server and database of `url`, each as its role
    /// (trust or peer authentication: the benchmark's way in).
    ///
    /// # Errors
    /// When either role cannot connect.
    pub async fn connect_as_roles(url: &str, limits: clearance_pg::PoolLimits) -> anyhow::Result<Self> {
        Ok(Self {
            reader: clearance_pg::connect_as(url, clearance_pg::READER_ROLE, limits).await?,
            app: clearance_pg::connect_as(url, clearance_pg::APP_ROLE, limits).await?,
        })
    }
}

impl LocalStack<Runner> {
    /// The stack with the in-process runner starting jobs.
    pub fn new(
        pools: Pools,
        dynamo: &aws_sdk_dynamodb::Client,
        events: &aws_sdk_eventbridge::Client,
        config: &StackConfig,
    ) -> Self {
        Self::with_starter(pools, dynamo, events, config, LocalRunner::new)
    }
}

impl<R: JobStarter> LocalStack<R> {
    /// The stack with `starter(steps)` starting jobs.
    pub fn with_starter(
        pools: Pools,
        dynamo: &aws_sdk_dynamodb::Client,
        events: &aws_sdk_eventbridge::Client,
        config: &StackConfig,
        starter: impl FnOnce(Arc<Steps>) -> R,
    ) -> Self {
        let table = config.table.as_str();
        let store = DynamoSnapshotStore::new(dynamo.clone(), table);
        let mirror = DynamoScopeMirror::new(dynamo.clone(), table);
        let jobs = DynamoJobStore::new(dynamo.clone(), table);
        let publisher = EventBridgePublisher::new(events.clone(), config.event_bus.clone());
        let steps = Arc::new(BatchSteps {
            jobs: jobs.clone(),
            ledger: PgBatchLedger::new(pools.app.clone()),
            events: publisher.clone(),
            mirror: mirror.clone(),
        });
        let read =
            ReadService::new(PgLedgerReader::new(pools.reader), store.clone(), mirror.clone(), config.read);
        let write = WriteService::new(
            WritePorts {
                store,
                ledger: PgClearanceLedger::new(pools.app),
                mirror,
                jobs: jobs.clone(),
                starter: starter(Arc::clone(&steps)),
                events: publisher,
            },
            config.write,
        );
        Self {
            read: ReadApi::new(read),
            write: WriteApi::new(
                write,
                DynamoIdempotencyStore::new(dynamo.clone(), table),
                config.idempotency,
            ),
            jobs: JobsApi::new(jobs),
            steps,
        }
    }
}

/// The router of the local server (and of tests that want one door): each
/// path goes to the API that serves it, as API Gateway routes each to its
/// function; any other path is 404 `route_not_found`.
impl<R: JobStarter + 'static> Api for LocalStack<R> {
    fn serves(&self, path: &str) -> bool {
        self.read.serves(path) || self.write.serves(path) || self.jobs.serves(path)
    }

    async fn handle(&self, request: ApiRequest<'_>) -> http::Response<bytes::Bytes> {
        if self.read.serves(request.path) {
            self.read.handle(request).await
        } else if self.write.serves(request.path) {
            self.write.handle(request).await
        } else if self.jobs.serves(request.path) {
            self.jobs.handle(request).await
        } else {
            ApiError::new("route_not_found", "no such route").into_response()
        }
    }
}
