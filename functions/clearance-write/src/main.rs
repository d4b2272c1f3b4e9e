//! Lambda: the write path (`POST /v1/clearances`, `GET /v1/clearances/{id}`,
//! `POST /v1/clearances/{id}/reversal`). Selections above the sync limit
//! start the batch state machine (`CLEARANCE_STATE_MACHINE_ARN`); postings
//! and reversals go to the bus (`CLEARANCE_EVENT_BUS`).

use clearance_core::idempotency::IdempotencyConfig;
use clearance_core::write::{WriteConfig, WritePorts, WriteService};
use clearance_dynamo::{DynamoIdempotencyStore, DynamoJobStore, DynamoScopeMirror, DynamoSnapshotStore};
use clearance_http::config::WriteFunctionEnv;
use clearance_http::WriteApi;
use clearance_lambda::{configured, database_pool, sdk_config};
use clearance_pg::clear::PgClearanceLedger;
use clearance_workflow::{EventBridgePublisher, StepFunctionsStarter};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    clearance_lambda::init_logs();
    let WriteFunctionEnv { write: env, state_machine_arn, event_bus } =
        configured(WriteFunctionEnv::from_env()).await;
    let pool = configured(database_pool(&env.database, env.db_connections_max, &env.timeouts)).await;
    let sdk = sdk_config(&env.timeouts).await;
    let dynamo = clearance_dynamo::client(&sdk);
    let service = WriteService::new(
        WritePorts {
            store: DynamoSnapshotStore::new(dynamo.clone(), env.table.clone()),
            ledger: PgClearanceLedger::new(pool),
            mirror: DynamoScopeMirror::new(dynamo.clone(), env.table.clone()),
            jobs: DynamoJobStore::new(dynamo.clone(), env.table.clone()),
            starter: StepFunctionsStarter::new(StepFunctionsStarter::client(&sdk), state_machine_arn),
            events: EventBridgePublisher::new(EventBridgePublisher::client(&sdk), event_bus),
        },
        WriteConfig { sync_rows_max: env.sync_rows_max, tolerance: env.tolerance, ..WriteConfig::default() },
    );
    let idempotency =
        IdempotencyConfig { ttl_secs: env.idempotency_ttl_secs, lease_secs: env.idempotency_lease_secs };
    clearance_lambda::run(WriteApi::new(service, DynamoIdempotencyStore::new(dynamo, env.table), idempotency))
        .await
}
