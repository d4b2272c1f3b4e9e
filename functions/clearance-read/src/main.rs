//! Lambda: the read path (`POST /v1/searches`, `GET /v1/searches/{id}/pages/{n}`).

use clearance_core::read::{ReadConfig, ReadService};
use clearance_dynamo::{DynamoScopeMirror, DynamoSnapshotStore};
use clearance_http::config::ReadEnv;
use clearance_http::ReadApi;
use clearance_lambda::{configured, database_pool, sdk_config};
use clearance_pg::read::PgLedgerReader;
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    clearance_lambda::init_logs();
    let env = configured(ReadEnv::from_env()).await;
    let pool = configured(database_pool(&env.database, env.db_connections_max, &env.timeouts)).await;
    let dynamo = clearance_dynamo::client(&sdk_config(&env.timeouts).await);
    let service = ReadService::new(
        PgLedgerReader::new(pool),
        DynamoSnapshotStore::new(dynamo.clone(), env.table.clone()),
        DynamoScopeMirror::new(dynamo, env.table.clone()),
        ReadConfig { snapshot_ttl_secs: env.snapshot_ttl_secs, ..ReadConfig::default() },
    );
    clearance_lambda::run(ReadApi::new(service)).await
}
