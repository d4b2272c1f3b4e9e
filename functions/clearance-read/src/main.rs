//! Lambda: the read path (`POST /v1/searches`, `GET /v1/searches/{id}/pages/{n}`).

use clearance_core::read::{ReadConfig, ReadService};
use clearance_dynamo::{DynamoScopeMirror, DynamoSnapshotStore};
use clearance_http::config::ReadEnv;
use clearance_http::ReadApi;
use clearance_pg::read::PgLedgerReader;
use clearance_pg::PoolLimits;
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    clearance_lambda::init_logs();
    let env = ReadEnv::from_env()?;
    let limits = PoolLimits {
        connections_max: env.db_connections_max,
        statement_timeout: env.statement_timeout,
        ..PoolLimits::default()
    };
    let pool = clearance_pg::connect_lazy(&env.database_url, limits)?;
    let dynamo = clearance_dynamo::client_from_env().await;
    let service = ReadService::new(
        PgLedgerReader::new(pool),
        DynamoSnapshotStore::new(dynamo.clone(), env.table.clone()),
        DynamoScopeMirror::new(dynamo, env.table.clone()),
        ReadConfig { snapshot_ttl_secs: env.snapshot_ttl_secs, ..ReadConfig::default() },
    );
    clearance_lambda::run(ReadApi::new(service)).await
}
