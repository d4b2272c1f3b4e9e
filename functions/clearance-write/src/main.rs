//! Lambda: the write path (`POST /v1/clearances`, `GET /v1/clearances/{id}`,
//! `POST /v1/clearances/{id}/reversal`). Selections above the sync limit
//! start the batch state machine (`CLEARANCE_STATE_MACHINE_ARN`); postings
//! and reversals go to the bus (`CLEARANCE_EVENT_BUS`).

use clearance_core::idempotency::IdempotencyConfig;
use clearance_core::write::{WriteConfig, WritePorts, WriteService};
use clearance_dynamo::{DynamoIdempotencyStore, DynamoJobStore, DynamoScopeMirror, DynamoSnapshotStore};
use clearance_http::config::WriteEnv;
use clearance_http::WriteApi;
use clearance_pg::clear::PgClearanceLedger;
use clearance_pg::PoolLimits;
use clearance_workflow::{EventBridgePublisher, StepFunctionsStarter};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    clearance_lambda::init_logs();
    let env = WriteEnv::from_env()?;
    let state_machine = std::env::var("CLEARANCE_STATE_MACHINE_ARN")
        .map_err(|_| Error::from("configuration: CLEARANCE_STATE_MACHINE_ARN is not set"))?;
    let limits = PoolLimits {
        connections_max: env.db_connections_max,
        statement_timeout: env.statement_timeout,
        ..PoolLimits::default()
    };
    let pool = clearance_pg::connect_lazy(&env.database_url, limits)?;
    let dynamo = clearance_dynamo::client_from_env().await;
    let starter = StepFunctionsStarter::new(StepFunctionsStarter::client_from_env().await, state_machine);
    let bus = std::env::var("CLEARANCE_EVENT_BUS")
        .map_err(|_| Error::from("configuration: CLEARANCE_EVENT_BUS is not set"))?;
    let service = WriteService::new(
        WritePorts {
            store: DynamoSnapshotStore::new(dynamo.clone(), env.table.clone()),
            ledger: PgClearanceLedger::new(pool),
            mirror: DynamoScopeMirror::new(dynamo.clone(), env.table.clone()),
            jobs: DynamoJobStore::new(dynamo.clone(), env.table.clone()),
            starter,
            events: EventBridgePublisher::new(EventBridgePublisher::client_from_env().await, bus),
        },
        WriteConfig { sync_rows_max: env.sync_rows_max, ..WriteConfig::default() },
    );
    let idempotency =
        IdempotencyConfig { ttl_secs: env.idempotency_ttl_secs, lease_secs: env.idempotency_lease_secs };
    clearance_lambda::run(WriteApi::new(service, DynamoIdempotencyStore::new(dynamo, env.table), idempotency))
        .await
}
