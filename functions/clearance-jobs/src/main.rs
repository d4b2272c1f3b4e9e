//! Lambda: job status (`GET /v1/jobs/{id}`): one consistent read of the
//! job's status item in DynamoDB, no database connection.

use clearance_dynamo::DynamoJobStore;
use clearance_http::config::JobsEnv;
use clearance_http::JobsApi;
use clearance_lambda::{configured, sdk_config};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    clearance_lambda::init_logs();
    let env = configured(JobsEnv::from_env()).await;
    let dynamo = clearance_dynamo::client(&sdk_config(&env.timeouts).await);
    clearance_lambda::run(JobsApi::new(DynamoJobStore::new(dynamo, env.table))).await
}
